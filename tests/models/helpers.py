"""Shared pieces of the CaloFlow tests (dataset 1 and CaloGAN build the same family)."""

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
