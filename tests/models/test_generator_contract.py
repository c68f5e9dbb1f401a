"""The `ShowerGenerator` contract, checked for every registered name on a tiny configuration of its family.

Per name: `calozoo.create` builds it; seeded generation gives finite non-negative showers (N, n_voxels), the same
seed the same showers and another seed others; `log_prob_graph` is finite where the model has a density and raises
NotImplementedError otherwise. The SavedModel round trip of every family is in tests/export/test_savedmodel.py.

The per-name checks run the samplers uncompiled (`supports_xla` off on the instance): XLA compiles each model for
seconds, and its code is the family's, not the name's.
"""

import gc
import weakref

import numpy as np
import pytest
import tensorflow as tf

import calozoo
from calozoo.errors import ShowerFileError
from calozoo.models.base import ShowerGenerator, seed_pair, shard_rows, shard_seed

# One tiny override dict per family: each name builds and generates a few showers in about a second.
TINY = {
    "caloflow": dict(hidden=8, num_blocks=1, energy_hidden=4, energy_blocks=1, energy_made_hidden_blocks=1,
                     dropout=0.0),
    "caloman": dict(latent_dim=4, encoder_hidden=[8], decoder_hidden=[8], epl_hidden=4, epl_layers=1, epl_blocks=1,
                    de_hidden=4, de_layers=1, de_blocks=1),
    "calopointflow": dict(latent_dim=4, encoder_point_hidden=[8], encoder_width=8, encoder_latent_hidden=[8],
                          encoder_latent_width=8, conditional_transforms=2, conditional_hidden=8, latent_transforms=2,
                          latent_hidden=8, point_transforms=2, point_hidden=8, set_hidden=[8], set_width=8,
                          summary_hidden=[8], summary_dim=4),
    "icaloflow": dict(energy_hidden=4, first_layer_hidden=4, layer_hidden=4, num_blocks=1, energy_made_hidden_blocks=1,
                      first_layer_made_hidden_blocks=1, layer_made_hidden_blocks=1),
    "l2lflow": dict(layer_flows="shared", num_blocks=1, hidden=2, energy_hidden=4, energy_blocks=1),
}
NAMES = calozoo.list_models()
FAMILIES = {}
for _name in NAMES:
    FAMILIES.setdefault(calozoo.get_entry(_name).family, _name)  # the first name of each family
ENERGIES = np.array([2_000.0, 10_000.0, 60_000.0])  # MeV, inside every dataset's range


def tiny(name: str, xla: bool = True) -> ShowerGenerator:
    model = calozoo.create(name, **TINY[calozoo.get_entry(name).family])
    if not xla:
        model.supports_xla = False
    return model


def test_every_family_has_a_tiny_configuration():
    assert len(NAMES) >= 22
    assert set(FAMILIES) == set(TINY) == set(calozoo.registry.REGISTRY.families)


@pytest.mark.parametrize("name", NAMES)
def test_generator_contract(name):
    model = tiny(name, xla=False)
    assert isinstance(model, ShowerGenerator)
    assert model.artifact_dir is None and model.artifact_origin is None, "a model built in memory has no artifact"
    showers = model.generate(ENERGIES, seed=1)
    assert showers.shape == (len(ENERGIES), model.n_voxels) and showers.dtype == np.float32
    assert np.isfinite(showers).all() and (showers >= 0).all() and (showers.sum(axis=1) > 0).all()
    np.testing.assert_array_equal(model.generate(ENERGIES, seed=1), showers)
    assert not np.array_equal(model.generate(ENERGIES, seed=2), showers)
    if model.has_density:
        log_prob = model.log_prob_graph(showers, ENERGIES[:, None]).numpy()
        assert log_prob.shape == (len(ENERGIES),) and np.isfinite(log_prob).all()
    else:
        with pytest.raises(NotImplementedError, match=f"(?i){type(model).__name__}"):
            model.log_prob_graph(showers, ENERGIES[:, None])


# The SavedModel round trip (signatures, seeded showers equal to the in-process ones, log_prob equal to the graph
# density) is checked once per family on a shipped model by tests/export/test_savedmodel.py, which fails when a
# family with a shipped artifact is missing there.


# ----- iter_generate: batches, shards and their seeds (the family does not matter) ---------------------------------
def test_iter_generate_batches_and_shards():
    model = tiny("caloflow-ds1-photon-student", xla=False)
    energies = np.geomspace(1_000.0, 100_000.0, 7)
    whole = list(model.iter_generate(energies, seed=3, batch_size=3))
    assert [len(e) for e, _ in whole] == [3, 3, 1]
    np.testing.assert_array_equal(np.concatenate([e for e, _ in whole]), energies[:, None])
    np.testing.assert_array_equal(np.concatenate([s for _, s in whole]), model.generate(energies, seed=3, batch_size=3))
    sample = model.sampler()
    np.testing.assert_array_equal(whole[1][1], sample(tf.constant(energies[3:6, None], tf.float32),
                                                      seed_pair(3, 1)).numpy())
    shards = [list(model.iter_generate(energies, seed=3, batch_size=3, shard=(i, 2))) for i in range(2)]
    for index, batches in enumerate(shards):
        rows = energies[shard_rows(len(energies), index, 2)]
        np.testing.assert_array_equal(np.concatenate([e for e, _ in batches])[:, 0], rows)
        first = sample(tf.constant(rows[:3, None], tf.float32), shard_seed(3, 0, index, 2)).numpy()
        np.testing.assert_array_equal(batches[0][1], first)
    assert not np.array_equal(shards[0][0][1], whole[0][1]), "a shard must not reuse the whole run's stream"
    assert list(model.iter_generate([], seed=3)) == [] and model.generate([], seed=3).shape == (0, model.n_voxels)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(batch_size=0), ValueError, "`batch_size` must be >= 1"),
    (dict(shard=(2, 2)), ValueError, "0 <= index < count"),
    (dict(shard=(0, 0)), ValueError, "count >= 1"),
    (dict(shard=3), ValueError, "a pair"),
    (dict(incident_energies=[1_000.0, -5.0]), ShowerFileError, "<= 0"),
])
def test_iter_generate_checks_its_arguments_when_called(kwargs, error, message):
    model = ShowerGenerator("1-photons")  # nothing is sampled: the arguments fail before the first batch
    arguments = {"incident_energies": [1_000.0, 2_000.0], **kwargs}
    with pytest.raises(error, match=message):
        model.iter_generate(**arguments)



def test_the_cache_of_compiled_samplers_keeps_no_model_alive():
    model = tiny("caloflow-ds1-photon-student", xla=False)
    sampler = model.sampler()
    model.generate(ENERGIES, seed=1)
    assert model.sampler() is sampler, "one compiled sampler per model and setting"
    gone = weakref.ref(model)
    del model, sampler
    gc.collect()
    assert gone() is None
