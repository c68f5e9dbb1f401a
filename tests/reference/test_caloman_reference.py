"""CaloMan DS1 against the reference PyTorch code, in float64, through calozoo's state_dict converter.

The golden files in caloman/ were written by make_caloman_fixtures.py, which ran the reference code
(layer6ai-labs/calo-man @ 5547f23, nflows 0.14) at small sizes on the real DS1 geometries. These tests need no
PyTorch: they load the reference state_dicts (numpy arrays, reference keys) into a calozoo CaloMan and compare every
quantity with `relative_difference` <= `RTOL` (max |calozoo - reference| / max |reference|), except where a
deviation of calozoo is documented (docs/models.md section 5.5): then the test pins its size.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from calozoo.artifacts import read_artifact_config
from calozoo.errors import CheckpointError
from calozoo.models.caloman import CaloMan, CaloManConfig, snap_to_ds1_energies
from calozoo.models.caloman_checkpoint import (
    REFERENCE_COMMIT,
    caloman_config_from_state_dicts,
    caloman_from_state_dicts,
)
from calozoo.preprocessing import energies_from_fractions, inverse_logit_transform
from calozoo.registry import find_artifact, get_entry
from tests.reference.comparisons import assert_matches, read_npz, relative_difference

FIXTURES = Path(__file__).resolve().parent / "caloman"
ALPHA = 1e-6


def state_dicts() -> tuple[dict, dict, dict]:
    """The reference EPL flow, VAE and DE flow state_dicts (float16-exact weights stay float16)."""
    return tuple(read_npz(FIXTURES / f"{name}.npz") for name in ("epl", "gae", "de"))


def reference_model(**changes) -> CaloMan:
    """The registered photon config with the fixture's sizes (read from the state_dicts) and weights, float64."""
    base = {**get_entry("caloman-ds1-photon").config, "dtype": "float64", **changes}
    config, _ = caloman_config_from_state_dicts(base, *state_dicts())
    return caloman_from_state_dicts(config, *state_dicts())


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def model() -> CaloMan:
    """As the reference multiplies the clipped decoder output by the layer energies: no renormalisation."""
    return reference_model(renormalize_layers=False)


def test_fixtures_name_the_reference_commit_sizes_and_constants():
    meta = json.loads((FIXTURES / "fixtures.json").read_text())
    assert meta["reference"]["commit"] == REFERENCE_COMMIT
    assert meta["libraries"]["nflows"] == "0.14"
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 300_000
    constants = meta["constants"]
    for name, dataset in (("caloman-ds1-photon", "photons1"), ("caloman-ds1-pion", "pions1")):
        config = get_entry(name).config
        assert config["max_deposited_ratio"] == constants[dataset]["epl_max_deposited_ratio"]
        assert config["max_deposited_ratio"] == constants[dataset]["shared_max_deposited_ratio"]
        assert (config["logit_alpha"], config["num_bins"], config["tail_bound"]) == (
            constants["alpha"], constants["num_bins"], constants["tail_bound"])
    defaults = CaloManConfig()
    assert (defaults.de_hidden, defaults.de_layers, defaults.de_blocks, defaults.epl_hidden) == (
        constants["hidden_units"], constants["num_layers"], constants["num_blocks_per_layer"],
        constants["epl_hidden_units"])
    assert defaults.latent_dim == constants["latent_dim_default"]


def test_shapes_give_the_fixture_configuration(model):
    sizes = json.loads((FIXTURES / "fixtures.json").read_text())["sizes"]
    config = model.config
    assert (config.epl_hidden, config.epl_layers, config.epl_blocks) == (
        sizes["epl_hidden"], sizes["epl_layers"], sizes["epl_blocks"])
    assert (config.de_hidden, config.de_layers, config.de_blocks) == (
        sizes["de_hidden"], sizes["de_layers"], sizes["de_blocks"])
    assert (config.gae, config.latent_dim, config.use_labels) == ("vae", sizes["latent_dim"], True)
    assert (config.encoder_hidden, config.decoder_hidden) == (sizes["encoder_hidden"], sizes["decoder_hidden"])


@pytest.mark.parametrize("dataset, prefix", [("1-photons", "photon"), ("1-pions", "pion")])
def test_preprocessing(cases, dataset, prefix):
    """u-space logits and EPL condition, layer-normalised voxels (an empty layer stays 0) and the labels y."""
    model = CaloMan(CaloManConfig(dataset=dataset, max_deposited_ratio=3.1 if prefix == "photon" else 7.0,
                                  latent_dim=2, encoder_hidden=[4], decoder_hidden=[4], epl_hidden=4, de_hidden=4,
                                  epl_layers=1, de_layers=1, epl_blocks=1, de_blocks=1, dtype="float64"))
    energies = cases["incident_energies_mev" if prefix == "photon" else "pion_incident_energies_mev"]
    inputs = model.preprocess(cases["showers_mev" if prefix == "photon" else "pion_showers_mev"], energies)
    for ours, theirs in (("energy_x", "u"), ("energy_c", "c"), ("voxels", "voxels"), ("labels", "labels")):
        assert_matches(inputs[ours], cases[f"{prefix}_{theirs}"])


def test_scaling_buffers(model, cases):
    """The flows' divisors max |data_min|, |data_max| and the clip range, as the reference trainers set them."""
    epl, gae, de = state_dicts()
    assert float(model.voxel_range[1]) == float(gae["data_max"]) and float(model.voxel_range[0]) == 0.0
    assert float(model.energy_scale) == max(abs(float(epl["data_min"])), abs(float(epl["data_max"])))
    assert float(model.latent_scale) == max(abs(float(de["data_min"])), abs(float(de["data_max"])))


def test_epl_flow_log_density_and_samples(model, cases):
    scale = model.energy_scale.numpy()
    log_prob = model.energy_flow.log_prob(cases["photon_u"] / scale, cases["photon_c"])
    assert_matches(log_prob, cases["epl_log_prob"][:, 0])
    samples = model.energy_flow.sample_from_noise(cases["epl_noise"], cases["photon_c"]) * scale
    assert_matches(samples, cases["epl_samples"])


def test_autoencoder_encoder_and_decoder(model, cases):
    mean, log_sigma = model.autoencoder.encode(cases["photon_voxels"], cases["photon_labels"])
    assert_matches(mean, cases["encoder_mean"])
    assert_matches(log_sigma, cases["encoder_log_sigma"])
    x_mean, x_log_sigma = model.autoencoder.decode(cases["latents"], cases["photon_labels"])
    assert_matches(x_mean, cases["decoder_mean"])
    assert_matches(x_log_sigma, cases["decoder_log_sigma"])
    error = model.autoencoder.reconstruction_error(cases["photon_voxels"], cases["photon_labels"])
    assert_matches(error, cases["rec_error"].mean())


def test_elbo_differs_only_by_the_kl_estimator(model, cases):
    """calozoo's -ELBO takes KL(q || N(0, I)) in closed form; the reference's log p(z) + H(q) at the drawn z. With
    the reference's draw, the two differ by exactly beta * (|z|^2 - |mean|^2 - |sigma|^2) / 2 per row."""
    mean, log_sigma, noise = cases["encoder_mean"], cases["encoder_log_sigma"], cases["elbo_noise"]
    ours = model.autoencoder.negative_elbo(cases["photon_voxels"], cases["photon_labels"], noise).numpy()
    z = mean + np.exp(log_sigma) * noise
    estimator_gap = 0.5 * model.config.beta * np.sum(z**2 - mean**2 - np.exp(2.0 * log_sigma), axis=1)
    assert_matches(-(ours + estimator_gap), cases["elbo"][:, 0])
    assert relative_difference(-ours, cases["elbo"][:, 0]) > 1e-6  # the documented deviation is real


def test_latent_flow_log_density_and_samples(model, cases):
    scale = model.latent_scale.numpy()
    assert_matches(model.autoencoder.encode(cases["photon_voxels"], cases["photon_labels"])[0], cases["latents"])
    assert_matches(model.latent_flow.log_prob(cases["latents"] / scale, cases["photon_labels"]),
                   cases["de_log_prob"][:, 0])
    samples = model.latent_flow.sample_from_noise(cases["de_noise"], cases["photon_labels"]) * scale
    assert_matches(samples, cases["de_samples"])


def unclamped_layer_energies(model, energies, noise):
    """The reference's u-space inversion: the fractions are not clamped to [0, 1], only the energies at 0."""
    logits = model.energy_flow.sample_from_noise(noise, model.energy_condition(energies)) * model.energy_scale
    fractions = inverse_logit_transform(logits, ALPHA, clamp=False)
    return tf.maximum(energies_from_fractions(fractions, energies, model.config.max_deposited_ratio), 0.0)


def test_generation_step_end_to_end(model, cases):
    """One batch of the reference's `main-sample-fast.py`: EPL flow -> layer energies -> y -> DE flow -> decoder mean
    -> clip -> times the layer energies; E_inc snapped to the DS1 energies."""
    energies = tf.constant(cases["incident_energies_mev"])
    layer_energies = unclamped_layer_energies(model, energies, cases["generation_energy_noise"])
    assert_matches(layer_energies, cases["generation_layer_energies"])
    labels = model.labels(energies, layer_energies)
    assert_matches(labels, cases["generation_labels"])
    latents = model.latent_flow.sample_from_noise(cases["generation_latent_noise"], labels)
    assert_matches(model.autoencoder.decode(latents * model.latent_scale, labels)[0], cases["generation_decoder_means"])
    showers = model.showers_from_shapes(model.decode_latents(latents, labels), layer_energies)
    assert_matches(showers, cases["generation_showers_mev"])
    assert_matches(snap_to_ds1_energies(energies), cases["generation_incident_energies_mev"])
    # calozoo's own path clamps the fractions: it moves the layer energies by at most ~alpha of f E_inc where the
    # flow's sample lies beyond |logit(alpha)| = 13.8 (one entry of this batch does)
    ours = model.showers_from_noise(energies, cases["generation_energy_noise"], cases["generation_latent_noise"])
    assert 1e-9 < relative_difference(ours, cases["generation_showers_mev"]) < 2 * ALPHA


def test_renormalised_layers_are_a_documented_deviation(cases):
    """The registered (paper) configurations scale the decoded layers as the reference does; the shipped artifacts
    rescale each decoded layer to sum 1 before it takes its energy, which with this untrained decoder, whose clipped
    layers do not sum to 1, changes the showers entirely."""
    assert not reference_model().config.renormalize_layers
    for name in ("caloman-ds1-photon", "caloman-ds1-pion"):
        assert read_artifact_config(find_artifact(name))["config"]["renormalize_layers"]
    model = reference_model(renormalize_layers=True)
    ours = model.showers_from_noise(cases["incident_energies_mev"], cases["generation_energy_noise"],
                                    cases["generation_latent_noise"])
    assert relative_difference(ours, cases["generation_showers_mev"]) > 0.5


def test_u_space_inversion_beyond_the_logit_range(model, cases):
    """Logits beyond logit(1 - alpha): the reference's unclamped fractions (up to 1 + alpha) leave the layer energies
    up to a few alpha (relative) away from calozoo's clamped ones (the only difference)."""
    energies = 10.0 ** cases["extreme_condition"] * 33.3e3
    fractions = inverse_logit_transform(tf.constant(cases["extreme_logits"]), ALPHA, clamp=False)
    unclamped = tf.maximum(energies_from_fractions(fractions, energies, 3.1), 0.0)
    assert_matches(unclamped, cases["extreme_layer_energies"])
    clamped = inverse_logit_transform(tf.constant(cases["extreme_logits"]), ALPHA, clamp=True)
    ours = tf.maximum(energies_from_fractions(clamped, energies, 3.1), 0.0).numpy()
    assert 1e-9 < relative_difference(ours, cases["extreme_layer_energies"]) < 3 * ALPHA


def test_incident_energy_snapping_differs_off_the_grid(cases):
    """The reference snaps to the nearest DS1 energy in linear distance (bin edges 1.5 x 2^n), calozoo in log
    (sqrt(2) x 2^n): they agree on the 15 DS1 energies and differ for E in (sqrt(2), 1.5) x 2^n."""
    energies = cases["snap_energies"]
    ours = snap_to_ds1_energies(tf.constant(energies)).numpy()
    differ = ours[:, 0] != cases["snap_reference"][:, 0]
    assert energies[differ, 0].tolist() == [370.0, 380.0, 1500.0]
    grid = np.isin(energies[:, 0], 2.0 ** np.arange(8, 23))
    np.testing.assert_array_equal(ours[grid], cases["snap_reference"][grid])


def test_converter_refuses_mismatched_state_dicts():
    epl, gae, de = state_dicts()
    base = {**get_entry("caloman-ds1-pion").config, "dtype": "float64"}
    with pytest.raises(CheckpointError, match="models 5 layer energies; dataset 1-pions has 7 layers"):
        caloman_config_from_state_dicts(base, epl, gae, de)
    broken = {k: v for k, v in de.items() if not k.endswith("final_layer.bias")}
    config, _ = caloman_config_from_state_dicts({**get_entry("caloman-ds1-photon").config, "dtype": "float64"},
                                                epl, gae, de)
    with pytest.raises(CheckpointError, match="final_layer.bias"):
        caloman_from_state_dicts(config, epl, gae, broken)
