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
