"""Shared pieces of the model tests (the CaloFlow ones: dataset 1 and CaloGAN build the same family)."""

import numpy as np

from calozoo.models.caloflow import CaloFlow
from calozoo.training.caloflow import train_caloflow


def train_tiny_teacher(config, data, directory, settings, epochs=3):
    """A teacher (energy flow + Flow-II) of `config` trained for a few epochs on `data` = (energies, showers)."""
    energies, showers = data
    teacher = CaloFlow(config)
    results = train_caloflow(teacher, showers, energies, directory, settings=settings, epochs=epochs, progress=False)
    return teacher, results


def assert_validation_nll_decreases(results, parts=("energy_flow", "teacher")):
    """Each part's validation NLL ends lower than after its first epoch."""
    for part in parts:
        history = results[part].history
        assert history[-1]["validation_nll"] < history[0]["validation_nll"], f"{part}: {history}"


def randomize(model, scale=0.1, seed=0):
    """Adds seeded noise to every trainable weight, keeping the MADE masks (the variables' constraints): a freshly
    built flow zeroes some output layers, which would hide its conditions (and a condition fed the wrong layer)."""
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign_add(scale * rng.standard_normal(variable.shape))
        if variable.constraint is not None:
            variable.assign(variable.constraint(variable))
    return model
