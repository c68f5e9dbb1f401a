"""The shared generation machinery of `ShowerGenerator`: slices of `micro_batch` showers inside the compiled sampler."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.models.base import ShowerGenerator


class Noise(ShowerGenerator):
    """Showers of seeded uniform noise scaled by the incident energy; records how many slices it was asked for."""

    micro_batch = 2

    def sample_showers(self, incident_energies, seed):
        noise = tf.random.stateless_uniform([tf.shape(incident_energies)[0], 3], seed=seed, dtype=tf.float64)
        return noise * incident_energies


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_sampler_cuts_batches_into_seeded_slices(sequential, jit_compile):
    model = Noise("2")
    model.sequential_slices = sequential
    energies, seed = tf.constant(np.arange(1.0, 6.0).reshape(5, 1)), tf.constant([3, 4])
    showers = model.sampler(jit_compile=jit_compile)(energies, seed).numpy()
    seeds = tf.random.experimental.stateless_split(seed, 3)
    one_slice = tf.function(model.sample_showers, jit_compile=jit_compile)  # XLA draws other stateless numbers
    expected = np.concatenate([one_slice(energies[i : i + 2], seeds[i // 2]).numpy() for i in (0, 2, 4)])
    np.testing.assert_allclose(showers, expected, rtol=1e-12)
    assert len(np.unique(showers[:, 0] / energies.numpy()[:, 0])) == 5  # no slice repeats another's noise


def test_a_family_without_xla_gets_a_plain_graph():
    model = Noise("2")
    model.supports_xla = False
    assert model.sampler(jit_compile=True) is model.sampler(jit_compile=False)
