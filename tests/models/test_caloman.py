"""CaloMan DS1: paper parameter counts, preprocessing identities, generation and energy rescaling, tiny trainings."""

import numpy as np
import pytest
import tensorflow as tf

import calozoo as zoo
from calozoo.data.synthetic import synthetic_dataset
from calozoo.models.caloman import CaloMan, CaloManConfig, snap_to_ds1_energies
from calozoo.preprocessing.layers import layer_sums
from calozoo.training.caloman import train_caloman

# The challenge's counts (RESULTS.md): generation / training, rounded to 0.1 M; and the exact counts of the
# registered configurations and of the reference code's defaults (MODELS.md 5.2).
PUBLISHED = {"caloman-ds1-photon": (17.1, 19.3), "caloman-ds1-pion": (16.0, 18.5)}
REGISTERED = {"caloman-ds1-photon": (17_095_910, 19_331_920), "caloman-ds1-pion": (16_021_308, 18_461_729)}
TINY = dict(latent_dim=4, encoder_hidden=[32], decoder_hidden=[32], epl_hidden=8, epl_layers=2, epl_blocks=1,
            de_hidden=8, de_layers=2, de_blocks=1)
TINY_TRAINING = {
    "validation_fraction": 0.25,
    "energy_flow": {"batch_size": 64, "schedule": {"name": "constant", "lr": 3e-3}, "jit_compile": False},
    "autoencoder": {"batch_size": 64, "schedule": {"name": "constant", "lr": 3e-3}, "jit_compile": False},
    "latent_flow": {"batch_size": 64, "schedule": {"name": "constant", "lr": 3e-3}, "jit_compile": False},
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_registered_configurations_reproduce_the_published_counts(name):
    counts = CaloMan.expected_param_counts(CaloManConfig.from_dict(zoo.get_entry(name).config))
    assert (counts["generation"], counts["training"]) == REGISTERED[name]
    assert (round(counts["generation"] / 1e6, 1), round(counts["training"] / 1e6, 1)) == PUBLISHED[name]


def test_reference_defaults_give_the_counts_computed_in_models_md():
    """Encoder 2.22 M + decoder 2.01 M for photons (MODELS.md 5.2), by hand from the ParallelMLP shapes."""
    counts = CaloMan.expected_param_counts(CaloManConfig())
    tower = lambda sizes: sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))  # noqa: E731
    encoder = tower([6, 368, 512, 512, 512]) + 736 * 512 + 512 + 2 * (1024 * 512 + 512) + 1024 * 70 + 70
    assert counts["encoder"] == encoder == 2_215_510
    assert counts["decoder"] == 2_008_166
    assert counts["training"] - counts["generation"] == counts["encoder"]


def test_a_built_model_has_the_expected_count():
    config = CaloManConfig(dataset="1-pions", max_deposited_ratio=7.0, **TINY)
    model = CaloMan(config)
    counts = CaloMan.expected_param_counts(config)
    assert model.num_params == counts["training"]
    assert model.energy_flow.num_params == counts["energy_flow"]
    assert model.latent_flow.num_params == counts["latent_flow"]


@pytest.fixture(scope="module")
def photons():
    return synthetic_dataset("1-photons", 320, seed=3)


def test_preprocessing_has_the_reference_constants(photons):
    energies, showers = photons
    model = CaloMan(CaloManConfig(dtype="float64", **TINY))
    inputs = model.preprocess(showers, energies)
    for value in inputs.values():
        assert np.isfinite(value.numpy()).all()
    np.testing.assert_allclose(inputs["energy_c"].numpy(), np.log10(energies / 33.3e3))
    layers = layer_sums(tf.constant(showers, tf.float64), model.layer_sizes).numpy()
    expected_labels = np.concatenate([np.log10(energies + 1e-3), np.log10((layers + 1e-3) / 1e5) - 1.0], axis=1)
    np.testing.assert_allclose(inputs["labels"].numpy(), expected_labels, rtol=1e-12)
    voxel_layer_sums = layer_sums(inputs["voxels"], model.layer_sizes).numpy()
    np.testing.assert_allclose(voxel_layer_sums[layers > 0], 1.0, rtol=1e-12)
    assert (voxel_layer_sums[layers == 0] == 0).all()


def test_snapping_to_the_ds1_energies():
    snapped = snap_to_ds1_energies(tf.constant([[1.0], [300.0], [5000.0], [1e9]], tf.float64)).numpy().ravel()
    np.testing.assert_array_equal(snapped, [256.0, 256.0, 4096.0, 4194304.0])


def test_generation_keeps_the_sampled_layer_energies():
    """With `renormalize_layers` (the shipped artifacts), showers have the layer energies the EPL flow drew for them
    (same seed), and generation is seeded."""
    model = CaloMan(CaloManConfig(dtype="float64", renormalize_layers=True, **TINY))
    energies = np.array([[256.0], [4096.0], [65536.0], [4194304.0]])
    seed = tf.constant([3, 4], tf.int32)
    showers = model.sample_showers(tf.constant(energies, tf.float32), seed).numpy()
    assert showers.shape == (4, 368) and showers.dtype == np.float32 and (showers >= 0).all()
    energy_seed = tf.random.experimental.stateless_split(seed, 2)[0]
    drawn = model.sample_layer_energies(tf.constant(energies, tf.float64), energy_seed).numpy()
    got = layer_sums(tf.constant(showers, tf.float64), model.layer_sizes).numpy()
    np.testing.assert_allclose(got, drawn, rtol=1e-5, atol=1e-3)
    assert np.all(drawn.sum(axis=1) <= 3.1 * energies.ravel() * (1 + 1e-9))
    np.testing.assert_array_equal(model.generate(energies, seed=5), model.generate(energies, seed=5))
    assert not np.array_equal(model.generate(energies, seed=5), model.generate(energies, seed=6))


def test_rescaling_multiplies_each_layer_by_its_energy():
    shapes = tf.ones([2, 368])
    layer_energies = tf.constant([[8.0, 16.0, 19.0, 5.0, 0.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    direct = CaloMan(CaloManConfig(**TINY)).showers_from_shapes(shapes, layer_energies).numpy()  # the reference's
    np.testing.assert_allclose(direct[0, :8], 8.0)
    model = CaloMan(CaloManConfig(renormalize_layers=True, **TINY))
    showers = model.showers_from_shapes(shapes, layer_energies).numpy()
    np.testing.assert_allclose(showers[0, :8], 1.0)  # 8 voxels share 8 MeV
    np.testing.assert_allclose(showers[0, -5:], 0.0)
    np.testing.assert_allclose(layer_sums(showers, model.layer_sizes).numpy(), layer_energies.numpy(), rtol=1e-6)


@pytest.mark.parametrize("gae", ["vae", "ae"])
def test_every_step_trains_and_its_loss_decreases(photons, tmp_path, gae):
    energies, showers = photons
    model = CaloMan(CaloManConfig(gae=gae, **TINY))
    results = train_caloman(model, showers, energies, tmp_path, settings=TINY_TRAINING, epochs=4, progress=False)
    assert set(results) == {"energy_flow", "autoencoder", "latent_flow"}
    for part, result in results.items():
        history = result.history
        assert history[-1]["loss"] < history[0]["loss"], f"{part}: {history}"
    assert 0.0 < model.latent_scale.numpy() < 1e3 and model.latent_scale.numpy() != 1.0
    assert 10.0 < model.energy_scale.numpy() <= 13.9  # |logit(alpha)| = 13.8 for an empty layer
    assert model.voxel_range.numpy()[0] == 0.0 and 0.0 < model.voxel_range.numpy()[1] <= 1.0
    generated = model.generate(energies[:10], seed=1)
    assert generated.shape == (10, 368) and np.isfinite(generated).all()


def test_unknown_settings_and_bad_values_raise():
    with pytest.raises(ValueError, match="Unknown CaloMan setting"):
        CaloManConfig.from_dict({"latent": 3})
    with pytest.raises(ValueError, match="`gae` must be 'vae' or 'ae'; got 'gan'"):
        CaloManConfig(gae="gan")
    with pytest.raises(ValueError, match="dataset '1-photons' or '1-pions'"):
        CaloManConfig(dataset="2")
