"""Shared pytest configuration: quiet TensorFlow and seed NumPy and TensorFlow for every test."""

import os

# Must be set before TensorFlow is first imported (by a test module or by calozoo).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

SEED = 1234


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from the same global NumPy and TensorFlow seeds, whatever ran before it."""
    np.random.seed(SEED)
    tf.random.set_seed(SEED)
    yield


@pytest.fixture
def tiny_artifact(tmp_path, monkeypatch):
    """A tiny CaloFlow DS1 photon student saved as the only artifact of `caloflow-ds1-photon-student`, in a temporary
    root that stands in for the shipped artifacts (those of the repository are ignored)."""
    from calozoo import registry
    from calozoo.artifacts import write_artifact
    from calozoo.models.caloflow import CaloFlow, CaloFlowConfig

    config = CaloFlowConfig(role="student", hidden=16, energy_hidden=8, num_blocks=2, energy_blocks=2)
    root = tmp_path / "artifacts"
    write_artifact(CaloFlow(config), root, "caloflow-ds1-photon-student", "caloflow", config.to_dict(), metadata={},
                   card="tiny test model")
    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(root))
    monkeypatch.setattr(registry, "artifact_roots", lambda: {"shipped": root, "user": tmp_path / "user"})
    return root
