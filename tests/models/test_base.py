"""The shared generation machinery of `ShowerGenerator`: slices of `micro_batch` showers inside the compiled sampler."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.models.base import ShowerGenerator, sample_in_slices


class Noise(ShowerGenerator):
    """Showers of seeded uniform noise scaled by the incident energy; counts how often its graph is built."""

    micro_batch = 2

    def __init__(self, dataset):
        super().__init__(dataset)
        self.traces = 0

    def sample_showers(self, incident_energies, seed):
        self.traces += 1
        noise = tf.random.stateless_uniform([tf.shape(incident_energies)[0], 3], seed=seed)
        return noise * incident_energies


@pytest.mark.parametrize("sequential", [False, True])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_the_sampler_cuts_batches_into_seeded_slices(sequential, jit_compile):
    model = Noise("2")
    model.sequential_slices = sequential
    energies, seed = tf.constant(np.arange(1.0, 6.0).reshape(5, 1), tf.float32), tf.constant([3, 4])
    showers = model.sampler(jit_compile=jit_compile)(energies, seed).numpy()
    seeds = tf.random.experimental.stateless_split(seed, 3)
    one_slice = tf.function(model.sample_showers, jit_compile=jit_compile)  # XLA draws other stateless numbers
    expected = np.concatenate([one_slice(energies[i : i + 2], seeds[i // 2]).numpy() for i in (0, 2, 4)])
    np.testing.assert_array_equal(showers, expected)
    assert len(np.unique(showers[:, 0] / energies.numpy()[:, 0])) == 5  # no slice repeats another's noise


@pytest.mark.parametrize("rows", [6, 7, 61])
def test_the_compiled_sampler_holds_one_slice_whatever_the_batch(rows):
    model = Noise("2")
    energies = tf.ones([rows, 1])
    showers = model.sampler(jit_compile=False)(energies, tf.constant([1, 2]))
    assert showers.shape == (rows, 3)
    assert model.traces == 1 + rows % 2  # the loop's body, and the last, shorter slice where there is one


@pytest.mark.parametrize("jit_compile", [False, True])
def test_slices_chosen_when_the_graph_runs_are_the_static_ones(jit_compile):
    """A SavedModel signature does not know its batch size: its plain graph must cut the same slices with the same
    seeds as the sampler, whose slices XLA compiles or not."""
    seed, model = tf.constant([5, 6]), Noise("2")
    one_slice = tf.function(model.sample_showers, jit_compile=jit_compile)
    unknown = tf.function(lambda energies, seed: sample_in_slices(one_slice, energies, seed, 2),
                          input_signature=[tf.TensorSpec([None, 1]), tf.TensorSpec([2], tf.int32)])
    for rows in (1, 2, 4, 5):
        energies = tf.constant(np.arange(1.0, rows + 1.0).reshape(rows, 1), tf.float32)
        expected = model.sampler(jit_compile=jit_compile)(energies, seed)
        np.testing.assert_array_equal(unknown(energies, seed), expected)


def test_a_family_without_xla_gets_a_plain_graph():
    model = Noise("2")
    model.supports_xla = False
    assert model.sampler(jit_compile=True) is model.sampler(jit_compile=False)
