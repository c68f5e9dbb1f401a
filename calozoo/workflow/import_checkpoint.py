"""A checkpoint of the reference PyTorch code as a calozoo artifact in the user store (`calozoo import`).

The families whose reference training code saves state_dicts are in `IMPORTERS`: CaloFlow DS1 and CaloFlow on
CaloGAN (Flow-II + Flow-I; one converter, two reference repositories), iCaloFlow DS2/DS3 (Flow-3 + Flow-1 + Flow-2,
one file per flow), CaloMan DS1 (GAE + EPL flow + DE flow), CaloPointFlow II DS2/DS3 (one Lightning `.ckpt`) and
convolutional L2LFlows DS2/DS3 (a folder of 45 layer flows and the voxel maxima + the energy flow). Each says which
family and datasets it serves, which files it takes, how the sizes are read from them and how the model is built;
reading, checking and writing the artifact are shared.

Only `read_checkpoint` touches PyTorch, lazily and only for a `.pt` file (`pip install 'calozoo[peers]'`): it
unpickles the file with `weights_only=True` and hands on numpy arrays (the state_dict itself, or the one under
`model_state_dict`, `module_state_dict` or `weights`). A Lightning `.ckpt` (which pickles omegaconf
hyperparameters that `weights_only=True` refuses) is read without PyTorch by `calozoo.workflow.torch_zip`, whose
allowlist runs none of the file's code; its `state_dict` is what is imported. A `.npz` of the same state_dict (keys
as in PyTorch) needs no PyTorch either. Everything is converted and checked before the artifact directory is written,
so a bad checkpoint leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np

from calozoo.artifacts import artifact_versions, write_artifact
from calozoo.bijectors.nflows_state_dict import flow_layout
from calozoo.bijectors.zuko_state_dict import calopointflow_sizes
from calozoo.data.geometry import CALOGAN_DATASETS
from calozoo.errors import CalozooError, CheckpointError, MissingDependencyError
from calozoo.models import (
    caloflow_checkpoint,
    caloman_checkpoint,
    calopointflow_checkpoint,
    icaloflow_checkpoint,
    l2lflow_checkpoint,
)
from calozoo.registry import USER, artifact_roots, get_entry
from calozoo.workflow.torch_zip import plain, read_torch_zip

__all__ = ["read_checkpoint", "read_lightning_checkpoint", "file_sha256", "import_checkpoint", "render_import_card",
           "IMPORTERS"]


@dataclasses.dataclass(frozen=True)
class CheckpointPart:
    """One checkpoint file of a model: the `import_checkpoint` argument (and CLI option) that gives it, the flow of
    the model it fills (the key of the family's `states` dict), and its name in the card, metadata and errors."""

    argument: str  # "checkpoint" (the CLI's CHECKPOINT argument) or a keyword of import_checkpoint
    flow: str  # the model's flow this state_dict fills
    key: str  # metadata key: origin.checkpoints.<key>
    label: str  # the reference's name of the flow: "Flow-II", "Flow-3", ...
    files: str  # what the reference's training script names the file
    check: Callable[[dict], object] = flow_layout  # reads the state_dict's structure; CheckpointError if it fits not
    members: Callable[[Path], dict[str, Path]] | None = None  # a folder: its files by name

    @property
    def option(self) -> str | None:
        return None if self.argument == "checkpoint" else "--" + self.argument.replace("_", "-")


@dataclasses.dataclass(frozen=True)
class Importer:
    """What `calozoo import` needs to know of one reference code that saves state_dicts: the registered models it
    serves (`family` and `datasets`), its files, and how they become a model."""

    title: str  # "CaloFlow DS1"
    family: str  # the registry family of the models it serves
    datasets: tuple[str, ...]  # ... and their datasets
    repository: str
    commit: str
    parts: tuple[CheckpointPart, ...]  # the first one is the CHECKPOINT argument
    role_parts: tuple[str, ...]  # arguments whose blocks (MAF or IAF) say teacher or student
    config_from: Callable[[dict, dict], tuple[dict, dict]]  # (base config, states by flow) -> (config, inferred)
    build: Callable[[dict, dict], object]  # (config, states by flow) -> the model with the weights
    verified: str  # the card's "Verified" paragraph
    # raises CheckpointError on a Lightning checkpoint's hyperparameters (plain dicts) that calozoo cannot follow
    check_hyperparameters: Callable[[dict], None] = lambda hyper_parameters: None
    library: str = "nflows 0.14"  # the flow library of the reference code
    conversion: str = "weights converted to float64 unchanged (nflows masks applied: kernel = (weight * mask)^T)"


def _caloflow_importer(title: str, datasets: tuple[str, ...], repository: str, commit: str, flow_ii_files: str,
                       flow_i_files: str, verified: str) -> Importer:
    """A CaloFlow importer (Flow-II + Flow-I, `calozoo.models.caloflow_checkpoint`): DS1 and CaloGAN differ only in
    the reference code, its file names and what was verified."""
    return Importer(
        title=title, family="caloflow", datasets=datasets, repository=repository, commit=commit,
        parts=(CheckpointPart("checkpoint", "shower_flow", "flow_ii", "Flow-II", flow_ii_files),
               CheckpointPart("energy_flow", "energy_flow", "flow_i", "Flow-I", flow_i_files)),
        role_parts=("checkpoint",),
        config_from=lambda base, states: caloflow_checkpoint.caloflow_config_from_checkpoints(
            base, states["shower_flow"], states["energy_flow"]),
        build=lambda config, states: caloflow_checkpoint.caloflow_from_checkpoints(
            config, states["shower_flow"], states["energy_flow"]),
        verified=verified)


IMPORTERS: dict[str, Importer] = {
    "caloflow": _caloflow_importer(
        "CaloFlow DS1", caloflow_checkpoint.DS1_DATASETS, caloflow_checkpoint.REFERENCE_REPOSITORY,
        caloflow_checkpoint.REFERENCE_COMMIT,
        "model_checkpoint.pt / weight_checkpoint.pt, student.pt / student_weights.pt",
        "rec_energy_flow/gamma.pt or piplus.pt",
        "The mapping is tested against the reference code's own outputs for the DS1 photons "
        "(tests/reference/): MADE outputs, MAF/IAF blocks, log-densities and samples from the same noise "
        "agree to float64 rounding (the pion flows share the code path but were not compared separately)."),
    "caloflow-calogan": _caloflow_importer(
        "CaloFlow CaloGAN", CALOGAN_DATASETS, caloflow_checkpoint.CALOGAN_REFERENCE_REPOSITORY,
        caloflow_checkpoint.CALOGAN_REFERENCE_COMMIT,
        "saved_checkpoints/Flow_II/<particle>.pt or <particle>_full.pt (teacher), <particle>_student.pt or "
        "<particle>_full_student.pt (student)",
        "saved_checkpoints/Flow_I/<particle>.pt",
        "The mapping is tested against the reference code's own outputs on the CaloGAN geometry "
        "(tests/reference/test_caloflow_calogan_reference.py): MADE outputs, MAF/IAF blocks, log-densities, "
        "samples and the generation chain from the same noise agree to float64 rounding; the reference has one "
        "configuration for e+, gamma and pi+."),
    "icaloflow": Importer(
        title="iCaloFlow (DS2, DS3)", family="icaloflow", datasets=("2", "3"),
        repository=icaloflow_checkpoint.REFERENCE_REPOSITORY, commit=icaloflow_checkpoint.REFERENCE_COMMIT,
        parts=(CheckpointPart("checkpoint", "layer_flow", "flow_3", "Flow-3",
                              "ds_{2,3}_flow_3.pt, or ds_{2,3}_flow_3_student.pt for a student"),
               CheckpointPart("energy_flow", "energy_flow", "flow_1", "Flow-1",
                              "ds_{2,3}_flow_1.pt, the teacher's, also for a student"),
               CheckpointPart("first_layer_flow", "first_layer_flow", "flow_2", "Flow-2",
                              "ds_{2,3}_flow_2.pt, or ds_{2,3}_flow_2_student.pt for a student")),
        role_parts=("checkpoint", "first_layer_flow"),
        config_from=icaloflow_checkpoint.icaloflow_config_from_checkpoints,
        build=icaloflow_checkpoint.icaloflow_from_checkpoints,
        verified="The mapping is tested against the reference code's own outputs for the DS2 electrons "
                 "(tests/reference/): the log-densities of Flow-1, Flow-2 and Flow-3 (teacher and student) and an "
                 "inductive generation step of the student from the same noise agree to float64 rounding (DS3 "
                 "shares the code path but was not compared separately)."),
    "caloman": Importer(
        title="CaloMan DS1", family="caloman", datasets=("1-photons", "1-pions"),
        repository=caloman_checkpoint.REFERENCE_REPOSITORY, commit=caloman_checkpoint.REFERENCE_COMMIT,
        parts=(CheckpointPart("checkpoint", "autoencoder", "gae", "GAE", "checkpoints/gae_vae_best_valid.pt (or "
                              "_latest)", caloman_checkpoint.check_autoencoder_state),
               CheckpointPart("energy_flow", "energy_flow", "epl", "EPL flow", "checkpoints/epl_nf_best_valid.pt",
                              caloman_checkpoint.check_flow_state),
               CheckpointPart("latent_flow", "latent_flow", "de", "DE flow", "checkpoints/de_nf_best_valid.pt",
                              caloman_checkpoint.check_flow_state)),
        role_parts=(),
        config_from=lambda base, states: caloman_checkpoint.caloman_config_from_state_dicts(
            base, states["energy_flow"], states["autoencoder"], states["latent_flow"]),
        build=lambda config, states: caloman_checkpoint.caloman_from_state_dicts(
            config, states["energy_flow"], states["autoencoder"], states["latent_flow"]),
        verified="The mapping is tested against the reference code's own outputs for the DS1 photons "
                 "(tests/reference/): preprocessing, both flows' log-densities and samples, the encoder and decoder "
                 "and one generation batch from the same noise agree to float64 rounding, with "
                 "`renormalize_layers=false` and up to the deviations of docs/models.md section 5.5 (the pion "
                 "models share the code path; only their preprocessing was compared).",
        conversion="weights converted to float64 unchanged (kernel = weight^T; nflows MADE masks applied: "
                   "(weight * mask)^T)"),
    "calopointflow": Importer(
        title="CaloPointFlow II (DS2, DS3)", family="calopointflow", datasets=("2", "3"),
        repository=calopointflow_checkpoint.REFERENCE_REPOSITORY, commit=calopointflow_checkpoint.REFERENCE_COMMIT,
        parts=(CheckpointPart("checkpoint", "model", "ckpt", "Lightning",
                              "a .ckpt of its ModelCheckpoint: '{epoch}-{val_loss}.ckpt' or last.ckpt",
                              lambda state: calopointflow_sizes(state, conditional=True)),),
        role_parts=(),
        config_from=calopointflow_checkpoint.calopointflow_config_from_checkpoint,
        build=calopointflow_checkpoint.calopointflow_from_checkpoint,
        verified="The mapping is tested against the reference code's own outputs for a DS2 checkpoint that its "
                 "Lightning training wrote (tests/reference/): the conditional-flow, latent-flow and point-flow "
                 "log-densities, the encoder, and samples of the three flows from the same noise agree to float64 "
                 "rounding (DS3 shares the code path but was not compared separately).",
        check_hyperparameters=calopointflow_checkpoint.check_hyperparameters,
        library="zuko 1.1.0, Lightning",
        conversion="weights converted to float64 unchanged (zuko masks kept: kernel = weight^T, multiplied by the "
                   "mask); the preprocessing statistics its freezables froze in epoch 0 taken as they are "
                   "(std = sqrt(var))"),
    "l2lflow": Importer(
        title="ConvL2LFlow (DS2, DS3)", family="l2lflow", datasets=("2", "3"),
        repository=l2lflow_checkpoint.REFERENCE_REPOSITORY, commit=l2lflow_checkpoint.REFERENCE_COMMIT,
        parts=(CheckpointPart("checkpoint", "layer_flows", "causal", "causal layer flows",
                              "CAUSAL_DIR, the causal result folder: flows/flowXX_final.pt for every layer, trafo.pt",
                              check=l2lflow_checkpoint.check_causal_states, members=l2lflow_checkpoint.causal_files),
               CheckpointPart("energy_flow", "energy_flow", "energy", "energy flow",
                              "ENERGY_DIR/flows/flow.pt, the file the reference's generator.py loads",
                              check=l2lflow_checkpoint.check_energy_state)),
        role_parts=(),
        config_from=l2lflow_checkpoint.l2lflow_config_from_checkpoints,
        build=l2lflow_checkpoint.l2lflow_from_checkpoints,
        verified="The mapping is tested against the reference code's own outputs (tests/reference/): the reference's "
                 "generator.py on a folder of 45 DS2 layer flows and an energy flow saved by the reference's "
                 "`Flow.save` (small sizes), generating from the same noise, and the log-densities of its samples, "
                 "agree to float64 rounding (DS3 shares the code path but was not compared separately).",
        library="nflows fork ThorstenBuss/nflows @ 138f868",
        conversion="weights converted to float64 unchanged (channels-first images and kernels transposed to "
                   "TensorFlow's layout, the reference's forms: `reference_forms`, `energy_input_permutation`)"),
}


def file_sha256(path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_STATE_KEYS = ("model_state_dict", "module_state_dict", "weights")  # CaloFlow's, CaloMan's, ConvL2LFlow's `Flow.save`


def _torch_state_dict(path: Path) -> dict:
    """The tensors of a `torch.save`d checkpoint (the dict under one of `_STATE_KEYS` if it has one) as numpy
    arrays."""
    try:
        import torch
    except ImportError:
        raise MissingDependencyError(f"reading {path} (a PyTorch checkpoint) needs PyTorch: "
                                     "pip install 'calozoo[peers]' (or give the state_dict as a .npz).") from None
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unpickling failure: not a checkpoint this can read
        raise CheckpointError(f"{path} is not a PyTorch checkpoint that loads with weights_only=True: "
                              f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}") from None
    for key in _STATE_KEYS:
        if isinstance(loaded, dict) and isinstance(loaded.get(key), dict):
            loaded = loaded[key]
            break
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} holds neither a dict with {' or '.join(map(repr, _STATE_KEYS))} nor a "
                              "state_dict of tensors.")
    return {key: value.detach().cpu().numpy() for key, value in loaded.items()}


def read_lightning_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """The `state_dict` of a Lightning `.ckpt` as numpy arrays, read without PyTorch (`torch_zip`), and what the
    checkpoint says of its training: `lightning_version`, `epoch`, `global_step` and the `hyper_parameters` (plain
    dicts; the module's `config` repeated there and the `data` section, paths of the training machine, left out)."""
    loaded = read_torch_zip(path)
    state = loaded.get("state_dict") if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, np.ndarray) for v in state.values()):
        raise CheckpointError(f"{path} is a PyTorch file without a Lightning 'state_dict' of tensors.")
    hyper = plain(loaded.get("hyper_parameters"))
    hyper = {k: v for k, v in hyper.items() if k not in ("config", "data")} if isinstance(hyper, dict) else {}
    summary = {"lightning_version": plain(loaded.get("pytorch-lightning_version")), "epoch": plain(loaded.get("epoch")),
               "global_step": plain(loaded.get("global_step")), "hyper_parameters": hyper}
    return dict(state), summary


def _read_with_summary(path) -> tuple[dict[str, np.ndarray], dict]:
    """(state_dict, training summary) of any checkpoint `read_checkpoint` reads; the summary is a Lightning one's
    (`read_lightning_checkpoint`), empty for the other formats."""
    path = Path(path)
    if not path.is_file():
        raise CalozooError(f"checkpoint {path} does not exist (or is not a file).")
    if path.suffix == ".ckpt":
        return read_lightning_checkpoint(path)
    if path.suffix != ".npz":
        return _torch_state_dict(path), {}
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}, {}
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable .npz of a state_dict: {error}") from None


def read_checkpoint(path) -> dict[str, np.ndarray]:
    """A reference checkpoint's state_dict as numpy arrays: from a Lightning `.ckpt` (no PyTorch needed), a `.pt`
    (PyTorch, loaded lazily) or a `.npz`."""
    return _read_with_summary(path)[0]


def _unknown_overrides(base: dict, overrides: dict) -> None:
    """CheckpointError for a --set of an entry the model does not have."""
    for key in overrides:
        if key != "dtype" and key not in base:
            raise CheckpointError(f"--set {key}: not a setting of this model; settings: {sorted(base)}.")


def _contradicting_overrides(inferred: dict, overrides: dict) -> None:
    """CheckpointError for a --set that contradicts a size read from the checkpoints."""
    for key, value in overrides.items():
        if key in inferred and inferred[key] != value:
            raise CheckpointError(f"--set {key}={value} contradicts the checkpoints, whose tensors give {key}="
                                  f"{inferred[key]}.")


def render_import_card(name: str, description: str, metadata: dict) -> str:
    """Markdown: an imported model, where its weights came from, and what was verified for the mapping."""
    origin = metadata["origin"]
    lines = [
        f"# {name} (artifact v{metadata.get('version', '?')}, imported)",
        "",
        description,
        "",
        "## Origin: imported",
        "",
        f"- reference code: {origin['reference_repository']} @ {origin['reference_commit']} ({metadata['library']})",
    ]
    for part, source in origin["checkpoints"].items():
        label = f"{source['flow']} ({part})" if "flow" in source else part
        if "members" in source:
            lines.append(f"- {label}: `{source['file']}`, {len(source['members'])} files:")
            lines += [f"  - `{member}`, SHA-256 `{digest}`" for member, digest in source["members"].items()]
        else:
            lines.append(f"- {label}: `{source['file']}`, SHA-256 `{source['sha256']}`")
        if "training" in source:
            training = source["training"]
            lines.append(f"  (pytorch-lightning {training['lightning_version']}, saved in epoch {training['epoch']} "
                         f"after step {training['global_step']})")
    lines += [
        f"- {metadata['conversion']}",
        "- not trained or measured by calozoo: no held-out metrics; evaluate it with `calozoo generate` and "
        "`calozoo evaluate`",
        "",
        "## Architecture",
        "",
        f"- trainable parameters: {metadata['num_params']:,}",
        f"- read from the tensor shapes: `{json.dumps(metadata['inferred_config'])}`",
        f"- given with --set: `{json.dumps(metadata['config_overrides'])}`",
        f"- differs from the registered (paper) configuration: `{json.dumps(metadata['config_changes'])}`",
        "",
        "## Verified",
        "",
        metadata.get("verified", ""),
        "",
        "## Reproduce",
        "",
        "```",
        metadata["import_command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _import_command(name: str, importer: Importer, files: dict, overrides: dict) -> str:
    import shlex

    parts = ["calozoo", "import", name]
    for part in importer.parts:
        parts += ([part.option] if part.option else []) + [Path(files[part.argument]).name]
    for key, value in overrides.items():
        parts += ["--set", f"{key}={value}"]
    return shlex.join(parts)


def _importer(name: str, entry, files: dict) -> Importer:
    """The Importer of the model's family and dataset, after checking that `files` give exactly its checkpoints."""
    dataset = entry.config.get("dataset")
    importer = next((item for item in IMPORTERS.values()
                     if item.family == entry.family and dataset in item.datasets), None)
    *others, last = [item.title for item in IMPORTERS.values()]
    titles = f"{', '.join(others)} and {last}" if others else last
    if importer is None:
        raise CalozooError(f"calozoo import reads the reference checkpoints of {titles} only; '{name}' is a "
                           f"{entry.family} model of dataset {dataset}.")
    wanted = {part.argument: part for part in importer.parts}
    for argument, path in files.items():
        if path is not None and argument not in wanted:
            option = "--" + argument.replace("_", "-")
            raise CalozooError(f"{option} is not a checkpoint of {importer.title}; '{name}' takes "
                               f"{', '.join(p.option or 'CHECKPOINT' for p in importer.parts)}.")
    for part in importer.parts:
        if files.get(part.argument) is None:
            raise CalozooError(f"'{name}' needs its {part.label} checkpoint too: {part.option} FILE ({part.files}).")
    return importer


def _part_files(part: CheckpointPart, path) -> dict[str, Path]:
    """The files of a part by name: a folder part's `members`, or the one file under its own name."""
    if part.members is None:
        return {Path(path).name: Path(path)}
    try:
        return part.members(Path(path))
    except CheckpointError as error:
        raise CheckpointError(f"{part.option or 'CHECKPOINT'} (the {part.label}): {error}") from None


def _read_part(importer: Importer, part: CheckpointPart, path) -> tuple[dict, dict]:
    """A part's state_dict (a folder part's: its state_dicts by name) and training summary (a Lightning
    checkpoint's), with its structure and hyperparameters checked (the error names the file and the part)."""
    if part.members is None:
        state, summary = _read_with_summary(path)
    else:
        state, summary = {name: read_checkpoint(file) for name, file in _part_files(part, path).items()}, {}
    try:
        part.check(state)
        if summary:
            importer.check_hyperparameters(summary["hyper_parameters"])
    except CheckpointError as error:
        given = f"{part.option} {Path(path).name}" if part.option else Path(path).name
        raise CheckpointError(f"{given} (the {part.label} checkpoint): {error}") from None
    return state, summary


def _provenance(part: CheckpointPart, path, summary: dict) -> dict:
    """The metadata of a part: its file and SHA-256 (or a folder's files, relative to it, and theirs), and a
    Lightning checkpoint's training summary."""
    if part.members is None:
        source = {"flow": part.label, "file": str(path), "sha256": file_sha256(path)}
    else:
        members = {str(file.relative_to(path)): file_sha256(file) for file in _part_files(part, path).values()}
        source = {"flow": part.label, "file": str(path), "members": members}
    return {**source, **({"training": summary} if summary else {})}


def import_checkpoint(name: str, checkpoint, energy_flow=None, overrides: dict | None = None, output_root=None,
                      first_layer_flow=None, latent_flow=None) -> Path:
    """Converts the reference checkpoints of a registered CaloFlow (DS1, CaloGAN), iCaloFlow, CaloMan, CaloPointFlow
    II or L2LFlow model into `<root>/<name>/v<N>/`.

    Args:
        name: a registered CaloFlow name (`caloflow-ds1-photon-teacher`, `...-student`, the pion ones,
            `caloflow-calogan-{eplus,gamma,piplus}-{teacher,student}`), an iCaloFlow one
            (`icaloflow-ds2-electron-teacher`, `...-student`, the DS3 ones), a CaloMan one (`caloman-ds1-photon`,
            `caloman-ds1-pion`), a CaloPointFlow II one or an L2LFlow one (`l2lflow-ds2-electron`, `-ds3-`).
        checkpoint: CaloFlow: the Flow-II checkpoint (DS1: `model_checkpoint.pt` / `weight_checkpoint.pt` for a
            teacher, `student.pt` / `student_weights.pt` for a student; CaloGAN: `saved_checkpoints/Flow_II/eplus.pt`,
            `eplus_student.pt`, or their `_full` versions); iCaloFlow: the Flow-3 checkpoint (`ds_2_flow_3.pt`,
            `ds_2_flow_3_student.pt`); CaloMan: the GAE checkpoint (`checkpoints/gae_vae_best_valid.pt`);
            CaloPointFlow (`calopointflow-ds2-electron`, `-ds3-`): the Lightning `.ckpt` of its training; or a `.npz`
            of its state_dict. L2LFlow: the causal result folder (its `flows/flowXX_final.pt` and `trafo.pt`, each
            may be a `.npz`).
        energy_flow: CaloFlow: the Flow-I checkpoint (DS1 `rec_energy_flow/gamma.pt` or `piplus.pt`, CaloGAN
            `saved_checkpoints/Flow_I/eplus.pt`); iCaloFlow: the Flow-1 checkpoint (`ds_2_flow_1.pt`, the
            teacher's, which the reference's student uses too); CaloMan: the EPL flow
            (`checkpoints/epl_nf_best_valid.pt`); L2LFlow: the energy flow (`ENERGY_DIR/flows/flow.pt`); or a `.npz`.
        overrides: config entries the checkpoints cannot tell (e.g. `tail_bound`, `u0_factor`); the sizes come
            from the tensor shapes and a contradicting override is refused.
        output_root: artifact root (default: the user store).
        first_layer_flow: iCaloFlow only: the Flow-2 checkpoint (`ds_2_flow_2.pt`, `ds_2_flow_2_student.pt`).
        latent_flow: CaloMan only: the DE flow on the latent space (`checkpoints/de_nf_best_valid.pt`).
    Returns:
        the artifact directory. Raises CheckpointError (or CalozooError) before writing anything on bad input.
    """
    overrides = dict(overrides or {})
    entry = get_entry(name)
    files = {"checkpoint": checkpoint, "energy_flow": energy_flow, "first_layer_flow": first_layer_flow,
             "latent_flow": latent_flow}
    importer = _importer(name, entry, files)
    _unknown_overrides(entry.config, overrides)
    read = {part.flow: _read_part(importer, part, files[part.argument]) for part in importer.parts}
    states = {flow: state for flow, (state, _) in read.items()}
    base = {**entry.config, **overrides, "dtype": overrides.get("dtype", "float64")}
    config, inferred = importer.config_from(base, states)
    _contradicting_overrides(inferred, overrides)
    if importer.role_parts and config.get("role") != entry.config.get("role"):
        given = [Path(files[argument]).name for argument in importer.role_parts]
        raise CheckpointError(f"{' and '.join(given)} {'holds' if len(given) == 1 else 'hold'} a {config['role']} "
                              f"(its blocks are {'MAF' if config['role'] == 'teacher' else 'IAF'}); '{name}' is a "
                              f"{entry.config.get('role')}.")
    model = importer.build(config, states)
    root = Path(output_root or artifact_roots()[USER])
    checkpoints = {part.key: _provenance(part, files[part.argument], read[part.flow][1]) for part in importer.parts}
    metadata = {
        "num_params": model.num_params,
        "origin": {"kind": "imported", "reference_repository": importer.repository,
                   "reference_commit": importer.commit, "checkpoints": checkpoints},
        "inferred_config": inferred,
        "config_overrides": overrides,
        "config_changes": {k: v for k, v in config.items() if entry.config.get(k) != v},
        "training_data": {"description": "imported from a PyTorch checkpoint of the reference code",
                          "file": str(checkpoint)},
        "import_command": _import_command(name, importer, files, overrides),
        "verified": importer.verified,
        "library": importer.library,
        "conversion": importer.conversion,
        "version": max(artifact_versions(root / name), default=0) + 1,
    }
    card = render_import_card(name, entry.description, metadata)
    return write_artifact(model, root, name, entry.family, config, metadata, card, version=metadata["version"],
                          float_dtype="float64")
