"""Tests of calozoo.bijectors.layerwise_permutation: permutations inside calorimeter layers, saved as weights."""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.layerwise_permutation import FixedPermutation, random_within_layers, reverse_within_layers
from tests.bijectors.helpers import assert_bijective

PHOTON_LAYERS = [8, 160, 190, 5, 5]  # CaloFlow DS1 photons, D 368
PION_LAYERS = [8, 100, 100, 5, 150, 160, 10]  # DS1 pions, D 533
LAYER_SETS = [[3, 5, 1, 4], PHOTON_LAYERS, PION_LAYERS]


def layer_of(layer_sizes):
    return np.repeat(np.arange(len(layer_sizes)), layer_sizes)


def assert_layerwise_permutation(permutation, layer_sizes):
    total = sum(layer_sizes)
    assert permutation.shape == (total,)
    np.testing.assert_array_equal(np.sort(permutation), np.arange(total), err_msg="not a permutation")
    layers = layer_of(layer_sizes)
    moved = np.flatnonzero(layers[permutation] != layers)
    assert moved.size == 0, f"positions {moved[:5].tolist()} take a feature from another layer"


def test_reverse_within_layers_by_hand():
    np.testing.assert_array_equal(
        reverse_within_layers([3, 5, 1, 4]), [2, 1, 0, 7, 6, 5, 4, 3, 8, 12, 11, 10, 9]
    )


@pytest.mark.parametrize("layer_sizes", LAYER_SETS, ids=["small", "photons", "pions"])
def test_reverse_within_layers_keeps_layers(layer_sizes):
    permutation = reverse_within_layers(layer_sizes)
    assert_layerwise_permutation(permutation, layer_sizes)
    np.testing.assert_array_equal(permutation[permutation], np.arange(sum(layer_sizes)))  # an involution


@pytest.mark.parametrize("layer_sizes", LAYER_SETS, ids=["small", "photons", "pions"])
def test_random_within_layers_keeps_layers(layer_sizes):
    for seed in range(5):
        assert_layerwise_permutation(random_within_layers(layer_sizes, np.random.default_rng(seed)), layer_sizes)


def test_random_within_layers_is_seeded_and_random():
    a = random_within_layers(PHOTON_LAYERS, np.random.default_rng(0))
    b = random_within_layers(PHOTON_LAYERS, np.random.default_rng(0))
    c = random_within_layers(PHOTON_LAYERS, np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)
    assert np.any(a != np.arange(a.size))
    # One layer spanning all features gives a global permutation, which does cross "layers".
    global_permutation = random_within_layers([12], np.random.default_rng(2))
    np.testing.assert_array_equal(np.sort(global_permutation), np.arange(12))


def test_fixed_permutation_round_trip():
    permutation = random_within_layers([3, 5, 1, 4], np.random.default_rng(3))
    fixed = FixedPermutation(permutation, name="p")
    x = tf.constant(np.random.default_rng(4).normal(size=(6, 13)))
    # nflows convention: towards the base, x[..., perm].
    np.testing.assert_array_equal(fixed.to_base(x).numpy(), x.numpy()[:, permutation])
    np.testing.assert_array_equal(fixed.to_data(fixed.to_base(x)).numpy(), x.numpy())
    np.testing.assert_array_equal(fixed.to_base(fixed.to_data(x)).numpy(), x.numpy())
    # The TFP bijector goes base -> data.
    np.testing.assert_array_equal(fixed.bijector.forward(x).numpy(), fixed.to_data(x).numpy())
    np.testing.assert_array_equal(fixed.bijector.inverse(x).numpy(), fixed.to_base(x).numpy())
    assert_bijective(fixed.bijector, x, event_ndims=1, rtol=1e-15)


def test_fixed_permutation_variables_are_non_trainable():
    fixed = FixedPermutation(reverse_within_layers([2, 3]))
    assert fixed.trainable_variables == ()
    names = sorted({v.name for v in fixed.variables})
    assert names == ["fixed_permutation/inverse:0", "fixed_permutation/permutation:0"]
    assert all(not v.trainable for v in fixed.variables)


def test_fixed_permutation_is_restored_from_a_checkpoint(tmp_path):
    saved = FixedPermutation(random_within_layers(PHOTON_LAYERS, np.random.default_rng(5)))
    path = tf.train.Checkpoint(permutation=saved).save(str(tmp_path / "ckpt"))
    other = FixedPermutation(random_within_layers(PHOTON_LAYERS, np.random.default_rng(6)))
    x = tf.constant(np.random.default_rng(7).normal(size=(4, sum(PHOTON_LAYERS))))
    assert np.any(other.to_base(x).numpy() != saved.to_base(x).numpy())
    tf.train.Checkpoint(permutation=other).restore(path).assert_consumed()
    np.testing.assert_array_equal(other.permutation.numpy(), saved.permutation.numpy())
    np.testing.assert_array_equal(other.inverse_permutation.numpy(), saved.inverse_permutation.numpy())
    np.testing.assert_array_equal(other.to_base(x).numpy(), saved.to_base(x).numpy())
    # The TFP bijector reads the restored variable too.
    np.testing.assert_array_equal(other.bijector.forward(x).numpy(), saved.bijector.forward(x).numpy())


@pytest.mark.parametrize("bad", [[0, 0, 1], [1, 2, 3], [0, 2]])
def test_fixed_permutation_validation(bad):
    with pytest.raises(ValueError, match=rf"`permutation` must contain 0\.\.{len(bad) - 1} once each\."):
        FixedPermutation(bad)
