"""Writes a shipped L2LFlow artifact from a finished training work directory (the best checkpoint of every part),
with the same held-out metrics and model card as `recipe.train_to_artifact` would have written.

Used when training finished but writing the artifact did not (e.g. the metrics step failed).

    PYTHONPATH=. python scripts/restore_l2lflow_artifact.py --dataset 3 --workdir runs/l2lflow-ds3-electron
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import tensorflow as tf
from train_compact_l2lflow import COMPACT, DATA, SETTINGS  # noqa: E402

import calozoo as zoo
from calozoo.artifacts import artifact_versions, write_artifact
from calozoo.data.files import read_showers
from calozoo.registry import REGISTRY
from calozoo.training.l2lflow import DEFAULT_TRAINING, _flow, part_names
from calozoo.workflow.model_card import render_model_card
from calozoo.workflow.recipe import heldout_rows, model_card_metrics


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["2", "3"], required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--output-root", default=str(Path(__file__).resolve().parents[1] / "artifacts"))
    parser.add_argument("--layer-epochs", type=int, required=True)
    parser.add_argument("--layer-batch", type=int, default=256)
    args = parser.parse_args()
    name = f"l2lflow-ds{args.dataset}-electron"
    entry = zoo.get_entry(name)
    config = {**entry.config, **COMPACT}
    model = REGISTRY.families["l2lflow"].build(config)
    energies, showers = read_showers(DATA[args.dataset], n_voxels=model.n_voxels)
    train_rows, held_rows = heldout_rows(len(energies), 0.2, 0)
    # the fitting rows of train_l2lflow (seed 0): its validation_fraction of the training rows is kept out
    order = np.random.default_rng(0).permutation(len(train_rows))
    n_val = max(1, int(round(DEFAULT_TRAINING["validation_fraction"] * len(train_rows))))
    model.set_layer_maxima(showers[train_rows][order[n_val:]])
    workdir = Path(args.workdir)
    training = {}
    for part in part_names(model):
        tf.train.Checkpoint(module=_flow(model, part)).read(str(workdir / part / "best" / "weights")) \
            .assert_existing_objects_matched()
        history = json.loads((workdir / part / "history.json").read_text())
        best = min(history["history"], key=lambda h: h["validation_nll"])
        batch = SETTINGS["energy_flow"]["batch_size"] if part == "energy_flow" else args.layer_batch
        n_fit = len(order) - n_val
        steps_per_epoch = -(-n_fit * (1 if part == "energy_flow" else model.n_layers) // batch)
        training[part] = {"epochs": len(history["history"]), "steps": len(history["history"]) * steps_per_epoch,
                          "wall_time_s": history["wall_time_s"], "history": history["history"],
                          "best_epoch": best["epoch"], "best_metric": best["validation_nll"],
                          "metric_name": "validation_nll"}
    settings = {k: dict(v) for k, v in SETTINGS.items()}
    settings["layer_flows"].update(epochs=args.layer_epochs, batch_size=args.layer_batch)
    metadata = {
        "num_params": model.num_params,
        "config_changes": {k: v for k, v in config.items() if entry.config.get(k) != v},
        "training_data": {"file": DATA[args.dataset], "n_showers": int(len(energies)), "n_train": int(len(train_rows)),
                          "n_heldout": int(len(held_rows)), "heldout_fraction": 0.2, "split_seed": 0,
                          "synthetic": False, "description": "GEANT4 showers"},
        "training": training,
        "training_wall_time_s": float(sum(t["wall_time_s"] for t in training.values())),
        "training_settings": settings,
        "metrics": model_card_metrics(model, DATA[args.dataset], 0.2, 0),
    }
    command = (f"PYTHONPATH=. nice -n 10 python scripts/train_compact_l2lflow.py --dataset {args.dataset} "
               f"--layer-epochs {args.layer_epochs} --layer-batch {args.layer_batch}")
    metadata["retrain_command"] = command
    root = Path(args.output_root)
    metadata["version"] = max(artifact_versions(root / name), default=0) + 1
    card = render_model_card(name, entry.description, metadata, command)
    print(write_artifact(model, root, name, "l2lflow", config, metadata, card, version=metadata["version"]))


if __name__ == "__main__":
    main()
