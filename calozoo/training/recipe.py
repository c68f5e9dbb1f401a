"""From a registered name and a shower file to a versioned artifact: split, train, measure, write the card.

The held-out rows (a seeded split of the file) are never seen by training; the model card's metrics come from
them. The split's seed and fraction are stored in the metadata, so the metrics can be recomputed later.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np

from calozoo.artifacts import artifact_versions, write_artifact
from calozoo.data.files import read_showers, train_validation_split
from calozoo.data.geometry import load_geometry
from calozoo.errors import CalozooError
from calozoo.registry import REGISTRY, artifact_roots, get_entry, load
from calozoo.training.model_card import render_model_card

__all__ = ["default_output_root", "heldout_rows", "train_to_artifact", "model_card_metrics", "refresh_model_card",
           "training_with_overrides"]


def default_output_root() -> Path:
    """Where `calozoo train` writes artifacts: $CALOZOO_ARTIFACTS, else the repository's artifacts/."""
    env = os.environ.get("CALOZOO_ARTIFACTS")
    return Path(env) if env else artifact_roots()[-2]


def _file_is_synthetic(path) -> bool:
    with h5py.File(path, "r") as handle:
        return bool(handle.attrs.get("synthetic", False))


def heldout_rows(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, held-out rows) of a file with n showers; the same arguments give the same split."""
    return train_validation_split(n, fraction, seed)


def _config_changes(paper: dict, config: dict) -> dict:
    return {k: v for k, v in config.items() if paper.get(k) != v}


def training_with_overrides(training: dict, overrides: dict | None) -> dict:
    """A deep copy of a YAML `training:` block with dotted-key overrides applied, e.g.
    {"teacher.schedule.lr": 1e-3, "student.batch_size": 100}; an unknown first key (training part) raises ValueError."""
    import copy

    result = copy.deepcopy(training)
    for dotted, value in (overrides or {}).items():
        keys = dotted.split(".")
        if keys[0] not in result:
            raise ValueError(f"Training override '{dotted}': this recipe has no part '{keys[0]}'; "
                             f"parts: {sorted(result)}.")
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ValueError(f"Training override '{dotted}': '{key}' is not a block of settings.")
        node[keys[-1]] = value
    return result


def _teacher_for(entry, teacher, dtype):
    """The trained teacher a student is distilled from: a name (its shipped artifact) or a model."""
    teacher = teacher or entry.extra.get("teacher")
    if teacher is None:
        raise CalozooError(f"'{entry.name}' is a student but names no teacher; pass --teacher NAME.")
    return load(teacher, dtype=dtype) if isinstance(teacher, str) else teacher


def model_card_metrics(model, data_path, heldout_fraction: float, split_seed: int) -> dict:
    """Metrics of `model` on the held-out rows of `data_path` (see calozoo.evaluation.heldout)."""
    from calozoo.evaluation.heldout import heldout_metrics

    energies, showers = read_showers(data_path, n_voxels=model.n_voxels)
    _, rows = heldout_rows(len(energies), heldout_fraction, split_seed)
    return heldout_metrics(model, showers[rows], energies[rows])


def train_to_artifact(name: str, data_path, *, overrides: dict | None = None, epochs: int | None = None,
                      workdir=None, output_root=None, teacher=None, resume: bool = False, heldout_fraction: float = 0.2,
                      seed: int = 0, progress: bool = True, with_metrics: bool = True,
                      strategy: str = "none", training_overrides: dict | None = None) -> Path:
    """Trains the registered model `name` on `data_path` and writes `<output_root>/<name>/v<N>/`.

    Args:
        overrides: config entries that differ from the paper configuration (a compact model: `{"hidden": 32}`).
        epochs: overrides every trained part's epoch count.
        workdir: checkpoints (one per epoch; `resume=True` continues from them).
        teacher: for a student, the teacher's registered name or model (default: the YAML's `teacher`).
        strategy: "none", "mirrored" or "multiworker" (TF_CONFIG), see calozoo.training.distribute.
        training_overrides: dotted-key changes of the YAML's training recipe (`training_with_overrides`), e.g.
            a larger learning rate for a short compact run: {"teacher.schedule.lr": 1e-3}.
    """
    import contextlib

    from calozoo.training.distribute import make_strategy, worker_checkpoint_dir, worker_index

    distribution = make_strategy(strategy)
    entry = get_entry(name)
    family = REGISTRY.families[entry.family]
    config = {**entry.config, **(overrides or {})}
    with distribution.scope() if distribution is not None else contextlib.nullcontext():
        model = family.build(config)
    energies, showers = read_showers(data_path, n_voxels=load_geometry(model.dataset).n_voxels)
    train_rows, held_rows = heldout_rows(len(energies), heldout_fraction, seed)
    workdir = worker_checkpoint_dir(workdir or Path("runs") / name)
    kwargs = {}
    if getattr(model, "config", None) is not None and getattr(model.config, "role", None) == "student":
        kwargs["teacher"] = _teacher_for(entry, teacher, config.get("dtype"))
    started = time.perf_counter()
    training = training_with_overrides(entry.training, training_overrides)
    results = family.train(model, showers[train_rows], energies[train_rows], str(workdir), settings=training,
                           epochs=epochs, resume=resume, seed=seed, progress=progress, strategy=distribution, **kwargs)
    wall = time.perf_counter() - started
    if worker_index() != 0:  # every worker holds the same weights; the chief writes the artifact
        return workdir
    synthetic = _file_is_synthetic(data_path)
    metadata = {
        "num_params": model.num_params,
        "config_changes": _config_changes(entry.config, config),
        "training_changes": dict(training_overrides or {}),
        "training_data": {"file": str(data_path), "n_showers": int(len(energies)), "n_train": int(len(train_rows)),
                          "n_heldout": int(len(held_rows)), "heldout_fraction": heldout_fraction, "split_seed": seed,
                          "synthetic": synthetic,
                          "description": "synthetic showers (calozoo.data.synthetic)" if synthetic else "GEANT4 showers"},
        "training": {part: result.to_dict() for part, result in results.items()},
        "training_wall_time_s": wall,
        "metrics": model_card_metrics(model, data_path, heldout_fraction, seed) if with_metrics else {},
    }
    command = (f"calozoo train {name} --data {data_path} --epochs {epochs} --seed {seed}"
               + "".join(f" --set {k}={v}" for k, v in metadata["config_changes"].items())
               + "".join(f" --train-set {k}={v}" for k, v in metadata["training_changes"].items()))
    metadata["retrain_command"] = command
    root = Path(output_root or default_output_root())
    metadata["version"] = max(artifact_versions(root / name), default=0) + 1
    card = render_model_card(name, entry.description, metadata, command)
    return write_artifact(model, root, name, entry.family, config, metadata, card, version=metadata["version"])


def refresh_model_card(directory, data_path=None) -> dict:
    """Recomputes an artifact's held-out metrics (same file, same split) and rewrites its metadata and card.

    Args:
        directory: an artifact directory `<root>/<name>/v<N>`.
        data_path: the training file, if it moved since training (default: the path in the metadata).
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
    command = metadata.get("retrain_command") or f"calozoo train {metadata['name']} --data {data['file']}"
    (directory / "metadata.json").write_text(json.dumps(metadata, indent=1))
    (directory / "MODEL_CARD.md").write_text(render_model_card(metadata["name"], entry.description, metadata, command))
    return metadata["metrics"]
