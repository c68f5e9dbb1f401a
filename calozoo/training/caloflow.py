"""How CaloFlow is trained (DS1 and CaloGAN): Flow-I and the teacher by likelihood, the student by density
distillation (on CaloGAN with gradient accumulation, set in the YAML's `student.accumulation`)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.data.incident_energies import ds1_energy_list, sample_incident_energies
from calozoo.models.caloflow import CaloFlow
from calozoo.training.distillation import adopt_permutations, copy_variables, train_by_distillation
from calozoo.training.likelihood import train_by_likelihood
from calozoo.training.settings import fit_validation_rows, merged_settings
from calozoo.training.trainer import TrainingResult

__all__ = ["DEFAULT_TRAINING", "train_caloflow"]

# The reference recipes (docs/models.md section 2.3); YAML configs override any entry.
DEFAULT_TRAINING = {
    "validation_fraction": 0.3,
    "energy_flow": {"batch_size": 200, "epochs": 100, "jit_compile": True,
                    "schedule": {"name": "onecycle", "max_lr": 1e-3, "pct_start": 0.4, "three_phase": True}},
    "teacher": {"batch_size": 200, "epochs": 100, "jit_compile": True,
                "schedule": {"name": "cyclic", "base_lr": 5e-5, "max_lr": 2e-3, "step_size_up": 850}},
    "student": {"batch_size": 175, "epochs": 100, "beta": 0.5, "jit_compile": True,
                "schedule": {"name": "onecycle", "max_lr": 1e-3}},
}


def _nll_training(flow, x, c, x_val, c_val, spec, checkpoint_dir, resume, seed, progress, name, strategy=None):
    x_val_t, c_val_t = tf.constant(x_val), tf.constant(c_val)
    validation_nll = tf.function(lambda: -tf.reduce_mean(flow.log_prob(x_val_t, c_val_t)))
    return train_by_likelihood(flow, [x, c], spec, validation_nll=validation_nll, checkpoint_dir=checkpoint_dir,
                               resume=resume, seed=seed, progress=progress, description=name, strategy=strategy)


def distillation_energies(model: CaloFlow, n: int, seed: int) -> np.ndarray:
    """Incident energies (MeV) of the z-pass: the DS1 photon list, uniform (linear) for DS1 pions, and the
    dataset's own spectrum for CaloGAN (uniform 1-100 GeV)."""
    rng = np.random.default_rng(seed)
    if model.config.dataset.startswith("calogan"):
        return sample_incident_energies(model.config.dataset, n, seed)
    if model.config.dataset == "1-photons":
        return rng.permutation(ds1_energy_list("photon"))[:n].reshape(-1, 1)
    return rng.uniform(256.0, 4_194_304.0, size=(n, 1))


def _distill(student: CaloFlow, teacher: CaloFlow, x, c, spec, checkpoint_dir, resume, seed, progress,
            strategy=None):
    cfg = student.config
    energies = distillation_energies(student, len(x), seed) / cfg.energy_unit_mev

    def inputs(generator, xb, cb, eb):
        eb = tf.cast(eb, student.dtype)
        layer_energies = teacher.sample_layer_energies(eb, generator.make_seeds(1)[:, 0])
        return xb, cb, student.shower_condition(eb, layer_energies, cfg.layer_condition_eps)

    return train_by_distillation(teacher.shower_flow, student.shower_flow, [x, c, energies], spec, inputs=inputs,
                                 checkpoint_dir=checkpoint_dir, resume=resume, seed=seed, progress=progress,
                                 description="student", strategy=strategy)


def adopt_teacher_parts(student: CaloFlow, teacher: CaloFlow) -> None:
    """The student reuses the teacher's Flow-I and, position by position, the teacher's permutations."""
    copy_variables(student.energy_flow, teacher.energy_flow)
    adopt_permutations(student.shower_flow, teacher.shower_flow)


def train_caloflow(model: CaloFlow, showers, energies, checkpoint_dir, *, teacher: CaloFlow | None = None,
                   settings: dict | None = None, epochs: int | None = None, resume: bool = False, seed: int = 0,
                   progress: bool = True, strategy=None) -> dict[str, TrainingResult]:
    """Trains `model` on showers/energies in MeV (a training split); returns one result per trained part.

    A teacher trains Flow-I and Flow-II by likelihood on a further `validation_fraction` split (the best
    validation epoch is kept); a student needs a trained `teacher` and is distilled from it.
    `epochs` overrides every part's epoch count. With a tf.distribute `strategy` (build the models in its
    scope) each step runs on per-replica slices of the batch; without one the steps are XLA-compiled.
    """
    settings = merged_settings(DEFAULT_TRAINING, settings)
    if epochs is not None:
        for part in ("energy_flow", "teacher", "student"):
            settings[part]["epochs"] = int(epochs)
    train, val = fit_validation_rows(len(showers), settings["validation_fraction"], seed)
    data = {k: v.numpy() for k, v in model.preprocess(showers[train], energies[train], seed).items()}
    results = {}
    if model.config.role == "teacher":
        valid = {k: v.numpy() for k, v in model.preprocess(showers[val], energies[val], seed + 1).items()}
        results["energy_flow"] = _nll_training(model.energy_flow, data["energy_x"], data["energy_c"],
                                               valid["energy_x"], valid["energy_c"], settings["energy_flow"],
                                               f"{checkpoint_dir}/energy_flow", resume, seed, progress, "flow-I",
                                               strategy)
        results["teacher"] = _nll_training(model.shower_flow, data["shower_x"], data["shower_c"], valid["shower_x"],
                                           valid["shower_c"], settings["teacher"], f"{checkpoint_dir}/shower_flow",
                                           resume, seed, progress, "teacher", strategy)
        return results
    if teacher is None or teacher.config.role != "teacher":
        raise ValueError("Training a CaloFlow student needs a trained teacher: pass `teacher=` "
                         "(see `calozoo train --teacher`).")
    adopt_teacher_parts(student=model, teacher=teacher)
    results["student"] = _distill(model, teacher, data["shower_x"], data["shower_c"], settings["student"],
                                  f"{checkpoint_dir}/student", resume, seed, progress, strategy)
    return results
