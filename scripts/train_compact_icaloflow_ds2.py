"""Trains the compact iCaloFlow DS2 teacher and student shipped under artifacts/ (a demonstration, not the paper run).

Training split: rows of /work/shared/geant4/ds2_electrons_g4_train.h5 given by
`train_validation_split(4000, 0.25, seed=0)`; the 1 000 validation rows are only used for the model-card metrics.

    PYTHONPATH=. nice -n 15 python scripts/train_compact_icaloflow_ds2.py [--part teacher|student|both]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

import calozoo as zoo
from calozoo.artifacts import library_versions, write_artifact
from calozoo.data.files import read_showers, train_validation_split
from calozoo.models.icaloflow import ICaloFlow, ICaloFlowConfig
from calozoo.training.icaloflow import train_icaloflow
from calozoo.training.model_card import render_model_card

DATA = Path("/work/shared/geant4/ds2_electrons_g4_train.h5")
ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = Path("/tmp/icaloflow-ds2-checkpoints")
COMPACT = dict(energy_hidden=64, first_layer_hidden=64, layer_hidden=64, num_blocks=4, dtype="float32")
# Batch sizes divide the 2 100 fitting showers (x 44 for Flow-3), so that XLA compiles one step per flow.
TEACHER_SETTINGS = {
    "energy_flow": {"batch_size": 300, "epochs": 40, "jit_compile": True,
                    "schedule": {"name": "onecycle", "max_lr": 3e-3, "div_factor": 10.0, "three_phase": True}},
    "first_layer_flow": {"batch_size": 300, "epochs": 40, "jit_compile": True,
                         "schedule": {"name": "onecycle", "max_lr": 2e-3, "div_factor": 10.0, "three_phase": True}},
    "layer_flow": {"batch_size": 600, "epochs": 4, "jit_compile": True,
                   "schedule": {"name": "onecycle", "max_lr": 2e-3, "div_factor": 10.0, "three_phase": True}},
}
STUDENT_SETTINGS = {
    "first_layer_flow": {"batch_size": 300, "epochs": 15, "jit_compile": True,
                         "schedule": {"name": "onecycle", "max_lr": 1e-3}},
    "layer_flow": {"batch_size": 600, "epochs": 2, "jit_compile": True,
                   "schedule": {"name": "onecycle", "max_lr": 5e-4}},
}


def config_changes(name: str, config: ICaloFlowConfig) -> dict:
    """The entries where `config` differs from the registered paper configuration."""
    paper = ICaloFlowConfig.from_dict(zoo.get_entry(name).config).to_dict()
    return {k: v for k, v in config.to_dict().items() if paper.get(k) != v}


def training_metadata(results: dict) -> dict:
    return {part: {k: v for k, v in result.to_dict().items() if k != "history"} | {"history": result.history}
            for part, result in results.items()}


def shower_summary(showers, energies) -> dict:
    """A few numbers to compare generated with held-out showers."""
    layers = showers.reshape(len(showers), 45, 144).sum(-1)
    return {"mean_etot_over_einc": float(np.mean(showers.sum(-1) / energies[:, 0])),
            "mean_nonzero_voxel_fraction": float(np.mean(showers > 0)),
            "mean_layer_energy_mev": [float(v) for v in layers.mean(0)]}


def save(model, name, description, results, metrics, split, root=ROOT / "artifacts"):
    metadata = {"num_params": model.num_params, "config": model.config.to_dict(),
                "config_changes": config_changes(name, model.config), "training": training_metadata(results),
                "metrics": metrics,
                "training_data": {"file": str(DATA), "n_showers": 4000, "n_train": int(len(split[0])),
                                  "n_heldout": int(len(split[1])), "synthetic": False,
                                  "description": "GEANT4 DS2 electrons, train_validation_split(4000, 0.25, seed=0) "
                                                 "train rows (70/30 again inside for model selection)"}}
    card = render_model_card(name, description, metadata | {"version": 1, "libraries": library_versions()},
                             "PYTHONPATH=. nice -n 15 python scripts/train_compact_icaloflow_ds2.py")
    return write_artifact(model, root, name, "icaloflow", model.config.to_dict(), metadata, card,
                          version=1, float_dtype="float16")


def heldout_log_prob(model, showers, energies) -> float:
    return float(np.mean(np.concatenate([model.log_prob(showers[i : i + 250], energies[i : i + 250]).numpy()
                                         for i in range(0, len(showers), 250)])))


def main(part: str):
    energies, showers = read_showers(DATA, n_voxels=6480)
    split = train_validation_split(4000, 0.25, seed=0)
    train, held = split
    checkpoints = CHECKPOINTS
    teacher = ICaloFlow(ICaloFlowConfig(role="teacher", **COMPACT))
    timings = {}
    if part in ("teacher", "both"):
        started = time.perf_counter()
        results = train_icaloflow(teacher, showers[train], energies[train], checkpoints / "teacher",
                                  settings=TEACHER_SETTINGS, seed=0, progress=False)
        timings["teacher_training_s"] = time.perf_counter() - started
        metrics = {"heldout_log_prob": heldout_log_prob(teacher, showers[held], energies[held]),
                   "log_prob_space": "Flow-1 + Flow-2 + 44 Flow-3 terms, logit space, float32",
                   "n_heldout_for_log_prob": int(len(held))}
        path = save(teacher, "icaloflow-ds2-electron-teacher",
                    "Compact iCaloFlow DS2 teacher (MAF Flow-2/3; 4 blocks, H 64, float32), a demonstration trained for "
                    "minutes on 2 CPU cores on 3 000 GEANT4 showers: it is not the paper's model.",
                    results, metrics, split)
        print("teacher", path, json.dumps({k: v for k, v in metrics.items()}), timings)
    if part in ("student", "both"):
        teacher = zoo.load("icaloflow-ds2-electron-teacher", dtype="float32")
        student = ICaloFlow(ICaloFlowConfig(role="student", **COMPACT))
        started = time.perf_counter()
        results = train_icaloflow(student, showers[train], energies[train], checkpoints / "student", teacher=teacher,
                                  settings=STUDENT_SETTINGS, seed=0, progress=False)
        timings["student_training_s"] = time.perf_counter() - started
        started = time.perf_counter()
        generated = student.generate(energies[held], seed=12345, batch_size=1000)
        timings["student_generation_s"] = time.perf_counter() - started
        metrics = {"n_showers": int(len(held)), "generated": shower_summary(generated, energies[held]),
                   "heldout": shower_summary(showers[held], energies[held]),
                   "generation_s_for_1000_incl_compile": timings["student_generation_s"]}
        summary = (f"On the {len(held)} held-out showers' incident energies: mean E_tot/E_inc "
                   f"{metrics['generated']['mean_etot_over_einc']:.3f} generated vs "
                   f"{metrics['heldout']['mean_etot_over_einc']:.3f} GEANT4; non-zero voxel fraction "
                   f"{metrics['generated']['mean_nonzero_voxel_fraction']:.4f} vs "
                   f"{metrics['heldout']['mean_nonzero_voxel_fraction']:.4f}.")
        path = save(student, "icaloflow-ds2-electron-student",
                    summary + " Compact iCaloFlow DS2 student (IAF Flow-2/3 distilled from the compact teacher, whose Flow-1 it "
                    "reuses; 4 blocks, H 64, float32), a demonstration trained for minutes on 2 CPU cores on 3 000 "
                    "GEANT4 showers: it is not the paper's model. See metadata.json for generated vs held-out "
                    "shower summaries.", results, metrics, split)
        print("student", path, json.dumps(metrics["generated"] | {"heldout": metrics["heldout"]})[:800], timings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--part", choices=["teacher", "student", "both"], default="both")
    tf.get_logger().setLevel("ERROR")
    main(parser.parse_args().part)
