"""A checkpoint of the reference PyTorch code as a calozoo artifact in the user store (`calozoo import`).

Only `read_checkpoint` touches PyTorch, lazily and only for a `.pt` file (`pip install 'calozoo[peers]'`): it
unpickles the file with `weights_only=True` and hands on numpy arrays. A `.npz` of the same state_dict (keys as in
PyTorch) needs no PyTorch. Everything is converted and checked before the artifact directory is written, so a bad
checkpoint leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from calozoo.artifacts import artifact_versions, write_artifact
from calozoo.errors import CalozooError, CheckpointError, MissingDependencyError
from calozoo.models.caloflow_checkpoint import (
    REFERENCE_COMMIT,
    REFERENCE_REPOSITORY,
    caloflow_config_from_checkpoints,
    caloflow_from_checkpoints,
)
from calozoo.registry import USER, artifact_roots, get_entry

__all__ = ["read_checkpoint", "file_sha256", "import_checkpoint", "render_import_card"]


def file_sha256(path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _torch_state_dict(path: Path) -> dict:
    """The tensors of a `torch.save`d checkpoint (its `model_state_dict` if it has one) as numpy arrays."""
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
    if isinstance(loaded, dict) and isinstance(loaded.get("model_state_dict"), dict):
        loaded = loaded["model_state_dict"]
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path} holds neither a dict with 'model_state_dict' nor a state_dict of tensors.")
    return {key: value.detach().cpu().numpy() for key, value in loaded.items()}


def read_checkpoint(path) -> dict[str, np.ndarray]:
    """A reference checkpoint's state_dict as numpy arrays: from a `.pt` (PyTorch, loaded lazily) or a `.npz`."""
    path = Path(path)
    if not path.is_file():
        raise CalozooError(f"checkpoint {path} does not exist (or is not a file).")
    if path.suffix != ".npz":
        return _torch_state_dict(path)
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable .npz of a state_dict: {error}") from None


def _checked_overrides(base: dict, inferred: dict, overrides: dict) -> None:
    """CheckpointError for a --set that contradicts a size read from the checkpoint."""
    for key, value in overrides.items():
        if key in inferred and inferred[key] != value:
            raise CheckpointError(f"--set {key}={value} contradicts the checkpoint, whose tensors give {key}="
                                  f"{inferred[key]}.")
        if key != "dtype" and key not in base:
            raise CheckpointError(f"--set {key}: not a setting of this model; settings: {sorted(base)}.")


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
        f"- reference code: {origin['reference_repository']} @ {origin['reference_commit']} (nflows 0.14)",
    ]
    for part, source in origin["checkpoints"].items():
        lines.append(f"- {part}: `{source['file']}`, SHA-256 `{source['sha256']}`")
    lines += [
        "- weights converted to float64 unchanged (nflows masks applied: kernel = (weight * mask)^T)",
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
        "The mapping is tested against the reference code's own outputs for the DS1 photons (tests/reference/): MADE "
        "outputs, MAF/IAF blocks, log-densities and samples from the same noise agree to float64 rounding (the pion "
        "flows share the code path but were not compared separately).",
        "",
        "## Reproduce",
        "",
        "```",
        metadata["import_command"],
        "```",
        "",
    ]
    return "\n".join(lines)


def _import_command(name: str, checkpoint, energy_flow, overrides: dict) -> str:
    import shlex

    parts = ["calozoo", "import", name, Path(checkpoint).name, "--energy-flow", Path(energy_flow).name]
    for key, value in overrides.items():
        parts += ["--set", f"{key}={value}"]
    return shlex.join(parts)


def import_checkpoint(name: str, checkpoint, energy_flow, overrides: dict | None = None, output_root=None) -> Path:
    """Converts the reference checkpoints of a registered CaloFlow DS1 model into `<root>/<name>/v<N>/`.

    Args:
        name: a registered CaloFlow DS1 name (`caloflow-ds1-photon-teacher`, `...-student`, the pion ones).
        checkpoint: the Flow-II checkpoint (`model_checkpoint.pt` / `weight_checkpoint.pt` for a teacher,
            `student.pt` / `student_weights.pt` for a student) or a `.npz` of its state_dict.
        energy_flow: the Flow-I checkpoint (`rec_energy_flow/gamma.pt` or `piplus.pt`) or a `.npz`.
        overrides: config entries the checkpoint cannot tell (e.g. `tail_bound`, `u0_factor`); the sizes come
            from the tensor shapes.
        output_root: artifact root (default: the user store).
    Returns:
        the artifact directory. Raises CheckpointError (or CalozooError) before writing anything on bad input.
    """
    overrides = dict(overrides or {})
    entry = get_entry(name)
    if entry.family != "caloflow":
        raise CalozooError(f"calozoo import reads the reference code of CaloFlow DS1 only; '{name}' is a "
                           f"{entry.family} model.")
    shower_state, energy_state = read_checkpoint(checkpoint), read_checkpoint(energy_flow)
    base = {**entry.config, **overrides, "dtype": overrides.get("dtype", "float64")}
    config, inferred = caloflow_config_from_checkpoints(base, shower_state, energy_state)
    _checked_overrides(entry.config, inferred, overrides)
    if config["role"] != entry.config.get("role"):
        raise CheckpointError(f"{Path(checkpoint).name} holds a {config['role']} (its blocks are "
                              f"{'MAF' if config['role'] == 'teacher' else 'IAF'}); '{name}' is a "
                              f"{entry.config.get('role')}.")
    model = caloflow_from_checkpoints(config, shower_state, energy_state)
    root = Path(output_root or artifact_roots()[USER])
    metadata = {
        "num_params": model.num_params,
        "origin": {"kind": "imported", "reference_repository": REFERENCE_REPOSITORY,
                   "reference_commit": REFERENCE_COMMIT,
                   "checkpoints": {"flow_ii": {"file": str(checkpoint), "sha256": file_sha256(checkpoint)},
                                   "flow_i": {"file": str(energy_flow), "sha256": file_sha256(energy_flow)}}},
        "inferred_config": inferred,
        "config_overrides": overrides,
        "config_changes": {k: v for k, v in config.items() if entry.config.get(k) != v},
        "training_data": {"description": "imported from a PyTorch checkpoint of the reference code",
                          "file": str(checkpoint)},
        "import_command": _import_command(name, checkpoint, energy_flow, overrides),
        "version": max(artifact_versions(root / name), default=0) + 1,
    }
    card = render_import_card(name, entry.description, metadata)
    return write_artifact(model, root, name, entry.family, config, metadata, card, version=metadata["version"],
                          float_dtype="float64")
