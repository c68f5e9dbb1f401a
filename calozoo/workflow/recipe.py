"""From a registered name and a shower file to a versioned artifact: split, train, measure, write the card.

The held-out rows (a seeded split of the file, or of several files' rows one after the other) are never seen by
training; the model card's metrics come from them. The split's seed and fraction are stored in the metadata, so the
metrics can be recomputed later.

Input larger than `STREAM_ABOVE_BYTES` (float32 showers) is streamed from disk for the families that can
(`STREAMING_FAMILIES`): the splits are row indices, and training reads blocks of rows (calozoo.data.stream); the
other families (CaloFlow, CaloMan: DS1 and CaloGAN files of at most a few hundred MB; L2LFlow and CaloPointFlow,
whose preprocessing statistics and per-layer maxima are measured on every training shower at once) read it all.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path

import h5py
import numpy as np

from calozoo.artifacts import artifact_versions, library_versions, read_artifact_config, write_artifact
from calozoo.data.files import SHOWER_KEY, open_hdf5, read_showers, train_validation_split
from calozoo.data.geometry import check_incident_energy_range, load_geometry
from calozoo.errors import CalozooError
from calozoo.registry import PATH, REGISTRY, SHIPPED, USER, artifact_roots, artifact_versions_of, get_entry, load
from calozoo.training import TRAINABLE_PARTS
from calozoo.training.distillation import copy_variables
from calozoo.training.precision import PRECISIONS, network_precision
from calozoo.training.trainer import CHECKPOINTS_ONLY
from calozoo.workflow.model_card import render_model_card

__all__ = ["default_output_root", "heldout_rows", "heldout_sample", "use_streaming", "STREAMING_FAMILIES",
           "STREAM_ABOVE_BYTES", "MAX_HELDOUT_BYTES", "with_training_overrides", "retrain_command", "portable_command",
           "portable_data_path", "train_to_artifact",
           "model_card_metrics", "refresh_model_card"]


DEFAULT_HELDOUT_FRACTION = 0.2


def default_output_root() -> Path:
    """Where `calozoo train` writes artifacts: the user store ($CALOZOO_ARTIFACTS, else $CALOZOO_HOME/artifacts,
    default ~/.local/share/calozoo/artifacts), never the shipped artifacts of the package."""
    return artifact_roots()[USER]


STREAMING_FAMILIES = frozenset({"icaloflow"})
STREAM_ABOVE_BYTES = 2**30  # of float32 showers: the official DS2 (2.6 GB) and DS3 (2 x 8 GB) files stream
MAX_HELDOUT_BYTES = 2**30  # held-out showers the card's metrics read at most (a seeded sample beyond)


def _data_paths(data) -> list[str]:
    """One path or a sequence of paths as a list of path strings (as given)."""
    import os

    return [os.fspath(data)] if isinstance(data, (str, os.PathLike)) else [os.fspath(p) for p in data]


def _file_is_synthetic(path) -> bool:
    with h5py.File(path, "r") as handle:
        return bool(handle.attrs.get("synthetic", False))


def _shower_bytes(paths) -> int | None:
    """float32 bytes of the CaloChallenge files' showers; None if a file is not one (CaloGAN: read in memory)."""
    total = 0
    for path in paths:
        with open_hdf5(path) as handle:
            if SHOWER_KEY not in handle:
                return None
            total += int(np.prod(handle[SHOWER_KEY].shape)) * 4
    return total


def use_streaming(family: str, paths, streaming: str = "auto") -> bool:
    """Whether training streams its input: "never", "always" (a CalozooError for a family that cannot), or
    "auto": a streaming family and more than `STREAM_ABOVE_BYTES` of showers."""
    if streaming not in ("auto", "always", "never"):
        raise CalozooError(f"streaming must be 'auto', 'always' or 'never'; got {streaming!r}.")
    if streaming == "never" or (streaming == "auto" and family not in STREAMING_FAMILIES):
        return False
    size = _shower_bytes(paths)
    if streaming == "always" and (family not in STREAMING_FAMILIES or size is None):
        raise CalozooError(f"the {family} family reads its training showers into memory (streamed: "
                           f"{sorted(STREAMING_FAMILIES)}, CaloChallenge files only); use --streaming auto or never.")
    return streaming == "always" or (size is not None and size > STREAM_ABOVE_BYTES)


def _read_all(paths, n_voxels) -> tuple[np.ndarray, np.ndarray]:
    """(energies, showers) of every file in memory, one file after the other."""
    parts = [read_showers(path, n_voxels=n_voxels) for path in paths]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate([e for e, _ in parts]), np.concatenate([s for _, s in parts])


def _read_rows(paths, rows, n_voxels) -> tuple[np.ndarray, np.ndarray]:
    """(energies, showers) of the global `rows` (sorted) of the files; CaloChallenge files block by block."""
    from calozoo.data.stream import ShowerFiles, ShowerRows

    if _shower_bytes(paths) is None:
        energies, showers = _read_all(paths, n_voxels)
        return energies[rows], showers[rows]
    files = ShowerFiles(paths, n_voxels)
    try:
        return ShowerRows(files, np.asarray(rows)).read_all()
    finally:
        files.close()


def heldout_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of a file with n showers; the same arguments give the same split."""
    return train_validation_split(n, fraction, seed)


def _config_changes(paper: dict, config: dict) -> dict:
    return {k: v for k, v in config.items() if paper.get(k) != v}


def with_training_overrides(recipe: dict, overrides: dict | None) -> dict:
    """A copy of a training recipe with dotted-path overrides applied: `{"layer_flow.batch_size": 600}` changes one
    entry; a dict value (`{"layer_flow.schedule": {"name": "onecycle", "max_lr": 2e-3}}`) replaces the whole entry.

    Raises:
        CalozooError: a path whose parent is not a section of the recipe.
    """
    import copy

    result = copy.deepcopy(recipe)
    for path, value in (overrides or {}).items():
        *parents, leaf = path.split(".")
        node = result
        for depth, key in enumerate(parents):
            if not isinstance(node.get(key), dict):
                sections = sorted(k for k, v in node.items() if isinstance(v, dict))
                raise CalozooError(f"training override '{path}': '{'.'.join(parents[:depth + 1])}' is not a section "
                                   f"of the recipe; sections here: {sections}.")
            node = node[key]
        node[leaf] = copy.deepcopy(value)  # a later dotted path must not change the caller's dict through it
    return result


def _yaml_flow(value) -> str:
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("\n...").strip()


def portable_data_path(path) -> str:
    """A training-file path for a command others can paste: a relative path without '..' as given, else the bare
    file name (never the absolute path of the machine that trained)."""
    text = str(path)
    relative = Path(text)
    if not relative.is_absolute() and ".." not in relative.parts:
        return text
    return relative.name


def retrain_command(name: str, data_path, metadata: dict, epochs: int | None = None, teacher: str | None = None,
                    variant=None) -> str:
    """The `calozoo train` command line that reproduces an artifact from its metadata, shell-quoted (one `--data`
    per training file). With the `Variant` it was trained as, the command names it (`--variant compact`) and
    spells out only what differs from it."""
    data = metadata["training_data"]
    parts = ["calozoo", "train", name]
    if variant is not None:
        parts += ["--variant", variant.name]
    for path in _data_paths(data_path):
        parts += ["--data", portable_data_path(path)]
    if epochs is not None and epochs != getattr(variant, "epochs", None):
        parts += ["--epochs", str(epochs)]
    parts += ["--seed", str(data["split_seed"])]
    if data["heldout_fraction"] != (getattr(variant, "heldout_fraction", None) or DEFAULT_HELDOUT_FRACTION):
        parts += ["--heldout-fraction", str(data["heldout_fraction"])]
    if teacher:
        parts += ["--teacher", teacher]
    init = metadata.get("init_from")
    if init:
        parts += ["--init-from", init["artifact"]]
        if "/" not in init["artifact"]:  # a registered name: which of its versions
            parts += ["--init-version", init["version"].lstrip("v")]
        parts += ["--parts", ",".join(init["parts"])]
    for k, v in metadata["config_changes"].items():
        if variant is None or k not in variant.config or variant.config[k] != v:
            parts += ["--set", f"{k}={_yaml_flow(v)}"]
    for k, v in metadata.get("training_overrides", {}).items():
        if variant is None or k not in variant.training or variant.training[k] != v:
            parts += ["--train-set", f"{k}={_yaml_flow(v)}"]
    return shlex.join(parts)


_VALUE_OPTIONS = ("--set", "--train-set")


def _portable_train_line(line: str) -> str:
    """One `calozoo train ...` line re-quoted: values split at spaces (`--set a=[32, 64]`) are joined and quoted,
    and the --data path made portable."""
    try:
        tokens = shlex.split(line)
    except ValueError:
        return line
    parts, index = [], 0
    while index < len(tokens):
        token = tokens[index]
        if token in _VALUE_OPTIONS + ("--data",) and index + 1 < len(tokens):
            stop = index + 2
            while token in _VALUE_OPTIONS and stop < len(tokens) and not tokens[stop].startswith("--"):
                stop += 1
            value = " ".join(tokens[index + 1 : stop])
            parts += [token, portable_data_path(value) if token == "--data" else value]
            index = stop
        else:
            parts.append(token)
            index += 1
    return shlex.join(parts)


def portable_command(command: str) -> str:
    """A stored reproduce command made pasteable: every `calozoo train` line shell-quoted with a portable data
    path; other lines (comments, `calozoo synthesize`, scripts) unchanged."""
    return "\n".join(_portable_train_line(line) if line.strip().startswith("calozoo train ") else line
                     for line in command.splitlines())


def _teacher_for(entry, teacher, dtype):
    """The trained teacher a student is distilled from: a name, `NAME@user`, an artifact path, or a model.

    Without one, the config's teacher: your own newest training of it (user store) if there is one, since that is
    what you just trained, else the shipped one; the card's reproduce command names which (`--teacher NAME@user`).
    """
    if teacher is None:
        teacher = entry.extra.get("teacher")
        if teacher is None:
            raise CalozooError(f"'{entry.name}' is a student but names no teacher; pass --teacher NAME.")
        if any(found.origin == USER for found in artifact_versions_of(teacher)):
            teacher = f"{teacher}@{USER}"
    return load(teacher, dtype=dtype) if isinstance(teacher, (str, Path)) else teacher


def _check_parts_request(entry, parts, init_from) -> None:
    """What can be said of `parts` / `init_from` before the model is built: the family trains part by part, and
    the two options come together."""
    if parts is None and init_from is None:
        return
    if entry.family not in TRAINABLE_PARTS:
        raise CalozooError(f"--parts: the {entry.family} family trains its parts together; "
                           f"only {', '.join(sorted(TRAINABLE_PARTS))} models train part by part.")
    if not parts or init_from is None:
        raise CalozooError("--parts and --init-from go together: the parts to train, and the trained artifact "
                           f"the others come from (e.g. --parts layer_flow --init-from {entry.name}).")


def _adopt_untrained_parts(entry, model, parts, init_from, init_version, dtype):
    """With `parts` (checked by `_check_parts_request` before the model was built): loads `init_from` and copies
    into `model` the weights of every part that will not train. Returns the loaded source model (None without
    `parts`)."""
    if parts is None:
        return None
    own = TRAINABLE_PARTS[entry.family](model)
    unknown = sorted(set(parts) - set(own))
    if unknown:
        raise CalozooError(f"--parts: {', '.join(unknown)} not a part of '{entry.name}'; its parts: "
                           f"{', '.join(own)}.")
    source = load(init_from, version=init_version, dtype=dtype)
    if read_artifact_config(source.artifact_dir)["family"] != entry.family or source.dataset != model.dataset:
        raise CalozooError(f"--init-from {init_from}: not a {entry.family} model of dataset {model.dataset}.")
    theirs = TRAINABLE_PARTS[entry.family](source)
    for part, module in own.items():
        if part in parts:
            continue
        try:
            copy_variables(module, theirs[part])
        except (KeyError, ValueError):
            raise CalozooError(f"--init-from {init_from}: its part '{part}' does not fit this configuration (other "
                               "sizes); train that part too (--parts) or keep its settings.") from None
    return source


def _artifact_reference(model) -> str:
    """How a command line names a loaded artifact: NAME, NAME@user, or its path."""
    directory, origin = model.artifact_dir, model.artifact_origin
    if origin == PATH:
        return str(directory)
    return directory.parent.name + (f"@{USER}" if origin == USER else "")


def _teacher_reference(teacher) -> str | None:
    """How the reproduce command names the teacher model, version included: NAME@shipped:N, NAME@user:N, or its
    artifact path (a bare NAME@user would name whatever the user trains next)."""
    if teacher is None or teacher.artifact_dir is None:  # no student, or a teacher built in memory
        return None
    if teacher.artifact_origin == PATH:
        return str(teacher.artifact_dir)
    origin = USER if teacher.artifact_origin == USER else SHIPPED
    return f"{teacher.artifact_dir.parent.name}@{origin}:{teacher.artifact_dir.name.lstrip('v')}"


def heldout_sample(rows: np.ndarray, n_voxels: int, seed: int) -> np.ndarray:
    """The held-out rows the card's metrics use: all of them up to `MAX_HELDOUT_BYTES` of float32 showers, else a
    seeded random subset of that size (sorted), so a card of the official DS3 files needs a bounded memory."""
    limit = max(1, MAX_HELDOUT_BYTES // (4 * n_voxels))
    if len(rows) <= limit:
        return rows
    return np.sort(np.random.default_rng([seed, 1]).choice(rows, size=limit, replace=False))


def _row_count(paths) -> int:
    from calozoo.data.files import read_incident_energies

    return sum(len(read_incident_energies(path)) for path in paths)


def model_card_metrics(model, data_path, heldout_fraction: float, split_seed: int) -> dict:
    """Metrics of `model` on the held-out rows of `data_path` (one file or several, one after the other; at most
    `MAX_HELDOUT_BYTES` of them, see `heldout_sample`) (see calozoo.evaluation.heldout)."""
    from calozoo.evaluation.heldout import heldout_metrics

    paths = _data_paths(data_path)
    _, rows = heldout_rows(_row_count(paths), heldout_fraction, split_seed)
    energies, showers = _read_rows(paths, heldout_sample(rows, model.n_voxels, split_seed), model.n_voxels)
    return heldout_metrics(model, showers, energies)


def train_to_artifact(name: str, data_path, *, variant: str | None = None, overrides: dict | None = None,
                      epochs: int | None = None, workdir=None, output_root=None, teacher=None, resume: bool = False,
                      heldout_fraction: float | None = None, seed: int = 0, progress: bool = True,
                      with_metrics: bool = True, strategy: str = "none", training_overrides: dict | None = None,
                      allow_energy_range: bool = False, streaming: str = "auto",
                      from_checkpoints: bool = False, parts: tuple[str, ...] | None = None,
                      init_from=None, init_version: int | None = None) -> Path:
    """Trains the registered model `name` on `data_path` and writes `<output_root>/<name>/v<N>/`.

    Args:
        data_path: a shower file, or several (their rows one after the other: the split is over all of them).
        variant: a named variant of the YAML (e.g. "compact", the recipe of the shipped artifact): its config
            changes, training overrides, epochs and held-out fraction; the other arguments apply on top.
        overrides: config entries that differ from the paper configuration (a compact model: `{"hidden": 32}`).
        epochs: overrides every trained part's epoch count.
        workdir: checkpoints (one per epoch; `resume=True` continues from them).
        teacher: for a student, the teacher's registered name or model (default: the YAML's `teacher`).
        strategy: "none", "mirrored" or "multiworker" (TF_CONFIG), see calozoo.training.distribute.
        training_overrides: dotted paths into the YAML's training recipe (see `with_training_overrides`).
        heldout_fraction: rows kept out of training for the card's metrics (default: the variant's, else 0.2).
        allow_energy_range: accept incident energies outside the dataset's simulated range (see
            calozoo.data.geometry.check_incident_energy_range); otherwise they raise EnergyRangeError.
        streaming: "auto", "always" or "never" (see `use_streaming`): stream the showers from disk rather than
            read them into memory; same split, the same seed gives the same batches (not those of the in-memory
            path).
        from_checkpoints: train nothing; write the artifact from the finished checkpoints in `workdir` (every part
            must have reached its epochs or stopped early; see `train_loop`'s CHECKPOINTS_ONLY).
        parts: train only these parts (iCaloFlow's flows, L2LFlows' energy and layer flows; see
            calozoo.training.TRAINABLE_PARTS); every other part keeps the weights of `init_from`.
        init_from: with `parts`, the trained artifact (NAME, NAME@user or an artifact path) the other parts come
            from, e.g. a shipped model whose energy flow is retrained with other `energy_variables`;
            `init_version` picks its version (default: as `load` resolves the name).
    """
    import contextlib

    from calozoo.training.distribute import make_strategy, worker_checkpoint_dir, worker_index

    distribution = make_strategy(strategy)
    entry = get_entry(name)
    chosen = entry.variant(variant) if variant is not None else None
    if chosen is not None:
        overrides = {**chosen.config, **(overrides or {})}
        training_overrides = {**chosen.training, **(training_overrides or {})}
        epochs = chosen.epochs if epochs is None else epochs
        heldout_fraction = chosen.heldout_fraction if heldout_fraction is None else heldout_fraction
    heldout_fraction = DEFAULT_HELDOUT_FRACTION if heldout_fraction is None else heldout_fraction
    family = REGISTRY.families[entry.family]
    config = {**entry.config, **(overrides or {})}
    recipe = with_training_overrides(entry.training, training_overrides)
    precision = recipe.pop("precision", "default")
    if precision not in PRECISIONS:
        raise CalozooError(f"training setting precision={precision!r}: choose one of {sorted(PRECISIONS)} (mixed "
                           "precision runs the MADE products in bfloat16; see calozoo.training.precision).")
    _check_parts_request(entry, parts, init_from)
    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        model = family.build(config)
    source = _adopt_untrained_parts(entry, model, parts, init_from, init_version, config.get("dtype"))
    paths = _data_paths(data_path)
    n_voxels = load_geometry(model.dataset).n_voxels
    streamed = use_streaming(entry.family, paths, streaming)
    if streamed:
        from calozoo.data.stream import ShowerFiles, ShowerRows

        files = ShowerFiles(paths, n_voxels)
        energies = files.incident_energies()
    else:
        energies, showers = _read_all(paths, n_voxels)
    if not allow_energy_range:
        check_incident_energy_range(energies, model.dataset, f"{', '.join(paths)}: incident_energies")
    train_rows, held_rows = heldout_rows(len(energies), heldout_fraction, seed)
    training_showers = ShowerRows(files, train_rows) if streamed else showers[train_rows]
    workdir = worker_checkpoint_dir(workdir or Path("runs") / name)
    kwargs = {}
    if getattr(model, "config", None) is not None and getattr(model.config, "role", None) == "student":
        kwargs["teacher"] = _teacher_for(entry, teacher, config.get("dtype"))
    if parts is not None:
        kwargs["parts"] = tuple(parts)
    started = time.perf_counter()
    with network_precision(model, precision):
        results = family.train(model, training_showers, energies[train_rows], str(workdir), settings=recipe,
                               epochs=epochs, resume=CHECKPOINTS_ONLY if from_checkpoints else resume, seed=seed,
                               progress=progress, strategy=distribution, **kwargs)
    wall = time.perf_counter() - started
    if streamed:
        files.close()
    if worker_index() != 0:  # every worker holds the same weights; the chief writes the artifact
        return workdir
    synthetic = all(_file_is_synthetic(path) for path in paths)
    metadata = {
        "num_params": model.num_params,
        "variant": variant,
        "config_changes": _config_changes(entry.config, config),
        "training_overrides": dict(training_overrides or {}),
        "training_data": {"file": paths[0] if len(paths) == 1 else paths,
                          "n_showers": int(len(energies)), "n_train": int(len(train_rows)), "streamed": streamed,
                          "n_heldout": int(len(held_rows)), "heldout_fraction": heldout_fraction, "split_seed": seed,
                          "synthetic": synthetic,
                          "description": ("synthetic showers (calozoo.data.synthetic)" if synthetic
                                          else "GEANT4 showers")},
        "training": {part: result.to_dict() for part, result in results.items()},
        "training_wall_time_s": wall,
        "metrics": model_card_metrics(model, paths, heldout_fraction, seed) if with_metrics else {},
    }
    if source is not None:
        reference = _artifact_reference(source)
        version = source.artifact_dir.name
        metadata["init_from"] = {"artifact": reference, "version": version, "parts": list(parts)}
        kept = [part for part in TRAINABLE_PARTS[entry.family](model) if part not in parts]
        metadata["provenance"] = [f"{', '.join(kept)}: the weights of {reference} {version} (`--init-from`); this "
                                  f"run trained {', '.join(parts)} only"]
    command = retrain_command(name, paths, metadata, epochs=epochs,
                              teacher=_teacher_reference(kwargs.get("teacher")), variant=chosen)
    metadata["retrain_command"] = command
    root = Path(output_root or default_output_root())
    metadata["version"] = max(artifact_versions(root / name), default=0) + 1
    metadata["libraries"] = library_versions()
    card = render_model_card(name, entry.description, metadata, command)
    return write_artifact(model, root, name, entry.family, config, metadata, card, version=metadata["version"])


def refresh_model_card(directory, data_path=None) -> dict:
    """Recomputes an artifact's held-out metrics (same file, same split) and rewrites its metadata and card.

    Args:
        directory: an artifact directory `<root>/<name>/v<N>`.
        data_path: the training file (or files), if it moved since training (default: the path(s) in the metadata).
    Returns:
        the new metrics.
    """
    import json

    from calozoo.artifacts import load_weights, read_artifact_config

    directory = Path(directory)
    metadata = json.loads((directory / "metadata.json").read_text())
    stored = read_artifact_config(directory)
    model = REGISTRY.families[stored["family"]].build(stored["config"])
    load_weights(model, directory / "weights.npz")
    data = metadata["training_data"]
    metadata["metrics"] = model_card_metrics(model, data_path or data["file"], data["heldout_fraction"],
                                             data["split_seed"])
    entry = get_entry(metadata["name"])
    command = portable_command(metadata.get("retrain_command")
                               or shlex.join(["calozoo", "train", metadata["name"], "--data", data["file"]]))
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (directory / "MODEL_CARD.md").write_text(render_model_card(metadata["name"], entry.description, metadata, command))
    return metadata["metrics"]
