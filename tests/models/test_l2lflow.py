"""Tests of calozoo.models.l2lflow and calozoo.training.l2lflow: convolutional L2LFlows for DS2/DS3."""

import numpy as np
import pytest
import tensorflow as tf

import calozoo as zoo
from calozoo.data.files import read_showers
from calozoo.models.base import seed_pair
from calozoo.models.l2lflow import L2LFlow, L2LFlowConfig
from calozoo.training.l2lflow import LayerData, part_names, train_l2lflow
from tests._paths import DS2_GEANT4 as DS2_FILE  # noqa: E402

TINY = dict(dataset="2", layer_flows="shared", num_blocks=1, hidden=2, energy_hidden=4, energy_blocks=1)
needs_data = pytest.mark.skipif(not DS2_FILE.is_file(), reason=f"{DS2_FILE} (GEANT4 DS2 subset) is not here")


@pytest.fixture(scope="module")
def ds2():
    """The first 40 real DS2 electron showers: (incident energies (40, 1), showers (40, 6480)) MeV."""
    return read_showers(DS2_FILE, n_voxels=6480, stop=40)


def tiny(**overrides):
    return L2LFlow(L2LFlowConfig(**{**TINY, **overrides}))


@pytest.fixture(scope="module")
def tiny_models():
    """One tiny shared and one tiny causal model, built once (tests that change a model build their own)."""
    tf.random.set_seed(0)
    return {"shared": tiny(), "causal": tiny(layer_flows="causal")}


# ----- parameter counts --------------------------------------------------------------------------------
def test_paper_ds3_parameter_count_without_building():
    """MODELS.md 6.2: energy flow 447 042; 45 layer flows of ~4.32 M (U-Net 540 154 x 8 + small terms), 194.5 M."""
    counts = L2LFlowConfig.from_dict(zoo.get_entry("l2lflow-ds3-electron").config).expected_num_params()
    assert counts["energy_flow"] == 447_042
    assert counts["layer_flows"] == 194_517_440 and round(counts["layer_flows"] / 1e6, 1) == 194.5
    assert counts["total"] == 194_964_482


def test_registered_configs_and_shared_option_counts():
    ds2 = L2LFlowConfig.from_dict(zoo.get_entry("l2lflow-ds2-electron").config)
    assert (ds2.squeeze, ds2.down_factors, ds2.layer_flows) == ((1, 2), ((3, 2), (3, 4)), "causal")
    assert ds2.expected_num_params() == {"energy_flow": 447_042, "layer_flows": 160_418_728, "total": 160_865_770}
    shared = L2LFlowConfig(dataset="3", layer_flows="shared").expected_num_params()
    assert shared["layer_flows"] == 4_323_312  # one flow: ~45x smaller than the causal flows
    assert zoo.get_entry("l2lflow-ds3-electron").family == "l2lflow"


@pytest.mark.parametrize("mode", ["shared", "causal"])
def test_built_tiny_models_have_the_analytic_count(mode, tiny_models):
    model = tiny_models[mode]
    expected = model.config.expected_num_params()
    assert model.num_params == expected["total"]
    assert model.energy_flow.num_params == expected["energy_flow"]
    if mode == "causal":
        assert len(model.layer_flows) == 45 and model.layer_flows[0].embedding is None
        assert [f.context_channels for f in model.layer_flows[:7]] == [2, 3, 4, 5, 6, 7, 7]


def test_paper_configurations_take_the_reference_forms_and_the_shipped_models_keep_their_own():
    for name in ("l2lflow-ds2-electron", "l2lflow-ds3-electron"):
        assert L2LFlowConfig.from_dict(zoo.get_entry(name).config).reference_forms is True
        assert zoo.get_entry(name).variant("compact").config["reference_forms"] is False
    assert L2LFlowConfig().reference_forms is False  # configs written before the option load as they were trained
    model = tiny(layer_flows="shared", reference_forms=True)
    assert model.layer_flow.exact_reference and model.num_params == model.config.expected_num_params()["total"]


def test_config_errors_and_yaml_round_trip():
    with pytest.raises(ValueError, match="dataset '2' or '3'; got '1-photons'"):
        L2LFlowConfig(dataset="1-photons")
    with pytest.raises(ValueError, match="`layer_flows` must be 'causal'"):
        L2LFlowConfig(layer_flows="all")
    with pytest.raises(ValueError, match=r"Unknown L2LFlow setting\(s\) \['hiden'\]"):
        L2LFlowConfig.from_dict({"hiden": 3})
    config = L2LFlowConfig(dataset="2")
    assert config.to_dict()["down_factors"] == [[3, 2], [3, 4]]
    assert L2LFlowConfig.from_dict(config.to_dict()) == config


def test_energy_shares_option_round_trips_and_counts_46_variables(ds2):
    """`energy_variables="shares"`: the energy flow learns E_tot / (f E_inc) and 45 shares; its inputs, turned back
    by the generation path, are the (noise-mean shifted) layer energies; the paper's path is unchanged."""
    energies, showers = ds2
    incident = energies.astype(np.float64) / 1e3
    layers = showers.reshape(len(showers), 45, -1).sum(-1).astype(np.float64) / 1e3
    config = L2LFlowConfig(**{**TINY, "energy_variables": "shares", "dtype": "float64"})
    model = L2LFlow(config)
    assert config.energy_features == 46 and model.num_params == config.expected_num_params()["total"]
    x = model.energy_flow_x(tf.constant(layers), tf.constant(incident), None)
    noisy = layers + config.energy_noise_mean_gev
    np.testing.assert_allclose(model.layer_energies_from_logits(x, tf.constant(incident)).numpy(), noisy, rtol=1e-6)
    paper = tiny(dtype="float64")
    x_paper = paper.energy_flow_x(tf.constant(layers), None, None)
    np.testing.assert_allclose(paper.layer_energies_from_logits(x_paper, None).numpy(), noisy, rtol=1e-5)
    with pytest.raises(ValueError, match="`energy_variables` must be 'layers' or 'shares'"):
        L2LFlowConfig(energy_variables="fractions")


# ----- preprocessing (MODELS.md 6.1) ----------------------------------------------------------------------
def test_layout_is_r_by_alpha_in_gev(tiny_models):
    model = tiny_models["shared"]
    showers = np.random.default_rng(0).uniform(0, 100, size=(2, 6480)).astype(np.float32)
    layers = model.layers_gev(showers).numpy()
    assert layers.shape == (2, 45, 9, 16)
    layer, alpha, r = 7, 11, 4
    np.testing.assert_allclose(layers[1, layer, r, alpha], showers[1, layer * 144 + alpha * 9 + r] / 1e3, rtol=1e-6)
    np.testing.assert_allclose(model.showers_mev(layers).numpy(), showers, rtol=1e-6)


def test_voxel_transform_constants_and_inverse():
    model = tiny(dtype="float64")
    model.layer_maxima_gev.assign(np.full(45, 2.0))
    voxels = np.array([[0.0, 1e-5, 1e-3, 0.5, 2.0]])[:, None, :].repeat(3, 1)  # (1, 3, 5) as (N, r, alpha)
    values = model.transform_voxels(voxels[:, None], np.array([[4]])).numpy()[:, 0]
    x = np.clip(voxels / (2.0 + 1e-6), 0, 1)
    y = np.log10(x + 1e-7) / 7 + 1
    np.testing.assert_allclose(values, np.log((0.01 + 0.98 * y) / (1 - 0.01 - 0.98 * y)), rtol=1e-10)
    back = model.inverse_transform_voxels(values[:, None], np.array([[4]])).numpy()[:, 0]
    np.testing.assert_allclose(back, voxels, rtol=1e-8, atol=1e-15)


def test_noise_fills_empty_voxels_below_the_cut_and_keeps_energies():
    model = tiny(dtype="float64")
    layers = np.zeros((4, 3, 9, 16))
    layers[:, :, 0, 0] = 2.0  # GeV
    noisy = model.noisy_voxels(tf.constant(layers), tf.constant([1, 2])).numpy()
    empty = noisy[:, :, 1:, 1:]
    assert empty.min() > 0 and empty.max() <= 1.515e-5, "filled voxels must stay below the 15.15 keV cut"
    assert 1e-6 < np.median(empty) < 3e-6  # ~ 10^-6 GeV fill + U[0, 1e-6]
    np.testing.assert_allclose(noisy[:, :, 0, 0], 2.0, atol=1.001e-6)
    np.testing.assert_allclose(model.energies_after_cut(tf.constant(noisy)).numpy(), noisy[:, :, 0, 0])


@needs_data
def test_log_prob_is_finite_and_graph_version_deterministic(ds2):
    energies, showers = ds2
    model = tiny()
    model.set_layer_maxima(showers)
    log_prob = model.log_prob(showers[:3], energies[:3]).numpy()
    assert log_prob.shape == (3,) and np.isfinite(log_prob).all()
    a, b = model.log_prob_graph(showers[:3], energies[:3]), model.log_prob_graph(showers[:3], energies[:3])
    np.testing.assert_array_equal(a.numpy(), b.numpy())


# ----- generation (MODELS.md 6.4) -----------------------------------------------------------------------
class _UniformRatioEnergyFlow:
    """Stands in for the energy flow: every row's layer energies sum to r E_inc with r ~ U(0, 5)."""

    def __init__(self, model):
        self.model = model

    def sample(self, condition, seed):
        incident = 10.0 ** ((condition + 3.0) / 2.0) - 1e-6
        ratio = tf.random.stateless_uniform(tf.shape(condition), seed, 0.0, 5.0, condition.dtype)
        fraction = incident * ratio / 45.0 * self.model.config.energy_scale_gev * tf.ones([1, 45], condition.dtype)
        alpha = self.model.config.energy_logit_alpha
        squeezed = alpha + (1 - 2 * alpha) * fraction
        return tf.math.log(squeezed) - tf.math.log1p(-squeezed)


@pytest.mark.parametrize("veto, vetoed", [(2.6, False), (1e9, True)])
def test_veto_redraws_showers_with_too_much_energy(veto, vetoed):
    model = tiny(dtype="float64", veto=veto)
    model.energy_flow = _UniformRatioEnergyFlow(model)
    incident = tf.fill([300, 1], tf.constant(10.0, tf.float64))  # GeV
    ratio = model.sample_layer_energies(incident, seed_pair(3)).numpy().sum(-1) / 10.0
    assert (ratio.max() > 2.6) == vetoed
    assert ratio.min() > 0 and ratio.max() < 5.0


def test_causal_generation_shapes_and_cut(tiny_models):
    """One eager draw of the 45 causal flows (tracing them as a graph takes three times as long); the seeds are
    handled as for the shared flow below, and the causal layer loop is compared with the reference by
    tests/reference/test_import_l2lflow.py."""
    energies = tf.constant([[1_500.0], [700_000.0]], tf.float32)
    showers = tiny_models["causal"].sample_showers(energies, seed_pair(4)).numpy()
    assert showers.shape == (2, 6480) and np.isfinite(showers).all() and (showers > 0).any()
    assert np.all((showers == 0) | (showers >= 1.515e-2)), "a voxel between 0 and 15.15 keV survived the cut"


def test_generation_shapes_cut_and_seeds(tiny_models):
    model = tiny_models["shared"]
    sample = model.sampler(jit_compile=False)
    energies = tf.constant([[1_500.0], [40_000.0], [700_000.0]], tf.float32)
    showers = sample(energies, seed_pair(4)).numpy()
    assert showers.shape == (3, 6480) and showers.dtype == np.float32 and np.isfinite(showers).all()
    assert np.all((showers == 0) | (showers >= 1.515e-2)), "a voxel between 0 and 15.15 keV survived the cut"
    assert (showers > 0).any()
    np.testing.assert_array_equal(showers, sample(energies, seed_pair(4)).numpy())
    assert not np.array_equal(showers, sample(energies, seed_pair(5)).numpy())



def test_renormalized_layers_carry_the_energy_flows_layer_energies():
    """`renormalize_layers` rescales each layer that survives the cut to the energy flow's E_k, voxel ratios kept;
    with `keep_filled_layers` a layer is empty exactly where E_k is below the cut, and a layer the cut emptied keeps
    E_k in one voxel. A 0.5 GeV cut makes the tiny random model lose whole layers to it (98 of the 128 it fills)."""
    plain = tiny(dtype="float64", cut_gev=0.5)
    kept = tiny(dtype="float64", cut_gev=0.5, renormalize_layers=True, keep_filled_layers=True)
    incident = tf.constant([[1_500.0], [40_000.0], [700_000.0]], tf.float64)
    seed = seed_pair(6)
    energy_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))[0]
    layer_energies_mev = plain.sample_layer_energies(incident / 1e3, energy_seed).numpy() * 1e3
    before, after = (tf.function(model.sample_showers)(incident, seed).numpy().reshape(3, 45, -1).astype(np.float64)
                     for model in (plain, kept))  # as graphs: much faster than eagerly
    occupied, filled = before.sum(-1) > 0, layer_energies_mev >= 500.0
    assert occupied.sum() > 10 and (filled & ~occupied).any() and not filled.all()
    np.testing.assert_array_equal(after.sum(-1) > 0, filled)
    np.testing.assert_allclose(after.sum(-1)[filled], layer_energies_mev[filled], rtol=1e-5)
    survived = occupied & filled
    np.testing.assert_array_equal(after[survived] > 0, before[survived] > 0)
    ratio = np.where(before > 0, after / np.where(before > 0, before, 1.0), np.nan)[survived]
    spread = np.nanmax(ratio, axis=-1) - np.nanmin(ratio, axis=-1)
    np.testing.assert_allclose(spread, 0.0, atol=1e-4 * np.nanmax(ratio))
    assert ((after > 0).sum(-1)[filled & ~occupied] == 1).all()


# ----- training ------------------------------------------------------------------------------------------
FAST = {"validation_fraction": 0.25,
        "energy_flow": {"batch_size": 30, "schedule": {"name": "constant", "lr": 5e-3}},
        "layer_flows": {"batch_size": 270, "schedule": {"name": "constant", "lr": 5e-3}}}


@needs_data
def test_shared_training_lowers_each_parts_nll_and_initialises(ds2, tmp_path):
    energies, showers = ds2
    model = tiny()
    results = train_l2lflow(model, showers, energies, tmp_path, settings=FAST, epochs=3, progress=False)
    assert set(results) == {"energy_flow", "layer_flow"} == set(part_names(model))
    for part, result in results.items():
        losses = [h["loss"] for h in result.history]
        assert losses[-1] < losses[0], f"{part}: training NLL did not decrease: {losses}"
    assert all(bool(norm.initialized) for norm in model.layer_flow.actnorms)
    assert np.isclose(model.layer_maxima_gev.numpy().max(), showers.max() / 1e3, rtol=0.3)


@needs_data
def test_alpha_augmentation_rotates_each_window_and_trains(ds2, tmp_path, monkeypatch):
    energies, showers = ds2
    model = tiny()
    model.set_layer_maxima(showers)
    plain, augmented = LayerData(model, showers, energies), LayerData(model, showers, energies, augment_alpha=True)
    windows = []
    monkeypatch.setattr(model, "window_inputs", lambda window, *args: windows.append(window.numpy()))
    rows, layers = np.arange(40), np.full(40, 7)
    plain.inputs("layer_flow", tf.constant([1, 2], tf.int64), rows, layers)
    augmented.inputs("layer_flow", tf.constant([1, 2], tf.int64), rows, layers)
    original, moved = windows
    assert not np.array_equal(original, moved)
    for row in range(40):  # the same window, its alpha bins a rotation or mirror of the original's
        assert any(np.array_equal(moved[row], np.roll(original[row][..., ::sign], shift, axis=-1))
                   for shift in range(model.n_alpha) for sign in (1, -1)), row
    np.testing.assert_allclose(moved.sum(axis=(-2, -1)), original.sum(axis=(-2, -1)), rtol=1e-6)
    monkeypatch.undo()
    results = train_l2lflow(model, showers, energies, tmp_path, settings={**FAST, "augment_alpha": True}, epochs=3,
                            progress=False, parts=("layer_flow",))
    losses = [h["loss"] for h in results["layer_flow"].history]
    assert losses[-1] < losses[0], f"augmented training NLL did not decrease: {losses}"


@needs_data
def test_causal_layer_flows_train_one_by_one(ds2, tmp_path):
    energies, showers = ds2
    model = tiny(layer_flows="causal")
    settings = {**FAST, "layer_flows": {"batch_size": 10, "schedule": {"name": "constant", "lr": 5e-3}}}
    results = train_l2lflow(model, showers, energies, tmp_path, settings=settings, epochs=3, progress=False,
                            parts=("layer_flow00", "layer_flow06"))
    for part, result in results.items():
        losses = [h["loss"] for h in result.history]
        assert losses[-1] < losses[0], f"{part}: training NLL did not decrease: {losses}"
    with pytest.raises(ValueError, match=r"`parts` \['layer_flow'\] are not parts"):
        train_l2lflow(model, showers, energies, tmp_path, parts=("layer_flow",), progress=False)
