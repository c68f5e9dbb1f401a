"""Convolutional L2LFlows against the reference PyTorch code, in float64, through calozoo's state_dict mapping.

The golden files in l2lflow/ were written by make_l2lflow_fixtures.py, which ran the reference code
(FLC-QU-hep/ConvL2LFlow @ f7f92a5 with its nflows fork ThorstenBuss/nflows @ 138f868) at small sizes: two layer flows
on 6 x 8 images (squeeze 2, 2 blocks, U-Net hidden 2 with down-sampling (3, 2), (1, 2); one with the context
embedding, one without, as the reference's layer 0), a 45-feature energy flow, and the reference's preprocessing
chains from its conf/causal.yaml and conf/energy.yaml. These tests need no PyTorch: they load the reference state_dicts
(numpy arrays, reference keys) into calozoo modules (calozoo.bijectors.l2l_state_dict) and compare every quantity with
`relative_difference` <= `RTOL` (max |calozoo - reference| / max |reference|), as the CaloFlow reference tests do.

What the fixtures found (docs in the modules named): calozoo's original layer-flow forms differ from the reference in
three places, each now available exactly behind `ConvLayerFlow(exact_reference=True)` with the defaults unchanged
(calozoo's trained models keep their outputs); `test_calozoo_default_forms_differ_from_the_reference` measures each:
the 1x1 convolution permutes its output instead of its input (`LUInvertibleConv1x1(permute_inputs=)`); the spline
slopes are min_d + softplus(raw + c) instead of the fork's min_d + softplus(beta raw) / beta, whose boundary slopes
are 1.2950, not 1 (`SplineSettings(parametrization="nflows-identity-init")`); the U-Net has no LeakyReLU at its
bottleneck (`UNet(bottleneck_activation=)`). The energy flow's permutations come before its MADE blocks in the
reference and after them in calozoo (`assign_permuted_maf`: the first one is applied to the input).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.conv_flow import ConvLayerFlow
from calozoo.bijectors.l2l_state_dict import assign_conv_layer_flow, assign_permuted_maf
from calozoo.bijectors.rq_spline import SplineSettings, identity_init_boundary_slope
from calozoo.errors import CheckpointError
from calozoo.models.l2lflow import L2LFlow, L2LFlowConfig
from calozoo.preprocessing import inverse_logit_transform
from calozoo.registry import get_entry
from tests.reference.comparisons import RTOL, assert_matches, read_npz, relative_difference

FIXTURES = Path(__file__).resolve().parent / "l2lflow"
META = json.loads((FIXTURES / "fixtures.json").read_text())
SIZES = META["sizes"]
REFERENCE_COMMIT = "f7f92a5e12311313f6f91a0c847cb3afabb3f09e"
NFLOWS_COMMIT = "138f86830e161bb0095dbb5cdd51871b769ea5b7"


def state_dict(name: str) -> dict:
    return read_npz(FIXTURES / f"{name}.npz")


def nhwc(array):
    """A reference (N, C, r, alpha) array as calozoo's (N, r, alpha, C)."""
    return np.transpose(np.asarray(array), (0, 2, 3, 1))


def layer_flow(context_channels: int, embedding: bool, exact: bool = True) -> ConvLayerFlow:
    spline = SplineSettings(META["constants"]["coupling_num_bins"], META["constants"]["coupling_tail_bound"],
                            *META["constants"]["coupling_min"])
    return ConvLayerFlow(tuple(META["image"]), context_channels, squeeze=(SIZES["squeeze"],) * 2,
                         num_blocks=SIZES["num_blocks"], hidden=SIZES["hidden"],
                         down_factors=tuple(tuple(f) for f in SIZES["downsamples"]),
                         embedding_channels=SIZES["out_features_embed"] if embedding else 0, spline=spline,
                         dtype=tf.float64, exact_reference=exact)


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def flow() -> ConvLayerFlow:
    """The reference's layer-`LAYER` flow (context embedding, min(5, LAYER) + 2 context channels)."""
    built = layer_flow(min(5, META["layer"]) + 2, embedding=True)
    assign_conv_layer_flow(built, state_dict("layer_flow"))
    return built


@pytest.fixture(scope="module")
def first_flow() -> ConvLayerFlow:
    """The reference's layer-0 flow: no embedding, its 2 context channels subsampled."""
    built = layer_flow(2, embedding=False)
    assign_conv_layer_flow(built, state_dict("first_layer_flow"))
    return built


@pytest.fixture(scope="module")
def model() -> L2LFlow:
    """A small DS3 L2LFlow with the registered preprocessing constants and the fixture's energy-flow sizes."""
    config = {**get_entry("l2lflow-ds3-electron").config, "dtype": "float64", "layer_flows": "shared",
              "num_blocks": 1, "hidden": 2, "energy_hidden": SIZES["energy_hidden"],
              "energy_blocks": SIZES["energy_blocks"], "energy_made_hidden_blocks": SIZES["energy_num_layers"],
              "energy_num_bins": SIZES["energy_num_bins"]}
    return L2LFlow(L2LFlowConfig(**config))


def test_fixtures_name_the_reference_commits_and_stay_small():
    assert META["reference"]["commit"] == REFERENCE_COMMIT and META["reference"]["nflows_commit"] == NFLOWS_COMMIT
    assert META["libraries"]["nflows"] == "0.14"
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 300_000


# ----- each transform of the layer flow, both directions ---------------------------------------------------------
def _steps(flow):
    """(calozoo bijector, is coupling) per reference transform index."""
    steps = [(flow.squeeze, False)]
    for norm, coupling, conv in zip(flow.actnorms, flow.couplings, flow.convs):
        steps += [(norm, False), (coupling, True), (conv, False)]
    return steps


@pytest.mark.parametrize("index", range(1 + 3 * SIZES["num_blocks"]))
def test_each_transform_both_ways(flow, cases, index):
    """Squeeze, ActNorm, RQS coupling (U-Net conditioner; some inputs beyond the tail bound) and LU 1x1 conv:
    output and log-det towards the base from the reference's input, and back from independent inputs."""
    step, coupling = _steps(flow)[index]
    prefix = f"layer_t{index}"
    h, wide = nhwc(cases[f"{prefix}_in"]), nhwc(cases[f"{prefix}_wide"])
    embedded = flow.embed(nhwc(cases["layer_context"]))
    if coupling:
        out, logdet = step.forward_and_log_det(h, embedded)
        back, back_logdet = step.inverse_and_log_det(wide, embedded)
    else:
        out, back = step.forward(h), step.inverse(wide)
        logdet = step.forward_log_det_jacobian(h, event_ndims=3) * np.ones(len(h))
        back_logdet = step.inverse_log_det_jacobian(wide, event_ndims=3) * np.ones(len(h))
    assert_matches(out, nhwc(cases[f"{prefix}_out"]))
    assert_matches(back, nhwc(cases[f"{prefix}_inverse"]))
    if index:  # the squeeze's log-det is 0 on both sides
        assert_matches(logdet, cases[f"{prefix}_logdet"])
        assert_matches(back_logdet, cases[f"{prefix}_inverse_logdet"])


@pytest.mark.parametrize("block", range(SIZES["num_blocks"]))
def test_unet_output(flow, cases, block):
    """The coupling's U-Net on [identity channels, embedded context] (BatchNorm with running statistics)."""
    coupling = flow.couplings[block]
    h = nhwc(cases[f"layer_t{3 * block + 2}_in"])
    inputs = tf.concat([h[..., coupling.transform_channels:], flow.embed(nhwc(cases["layer_context"]))], -1)
    assert_matches(coupling.conditioner(inputs, training=False), nhwc(cases[f"layer_t{3 * block + 2}_unet"]))


def test_context_embedding(flow, first_flow, cases):
    assert_matches(flow.embed(nhwc(cases["layer_context"])), nhwc(cases["layer_embedded"]))
    assert_matches(first_flow.embed(nhwc(cases["first_context"])), nhwc(cases["first_embedded"]))


# ----- whole layer flows ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("prefix", ["layer", "first"])
def test_layer_flow_log_density(flow, first_flow, cases, prefix):
    built = flow if prefix == "layer" else first_flow
    assert_matches(built.log_prob(cases[f"{prefix}_x"][:, 0], nhwc(cases[f"{prefix}_context"])),
                   cases[f"{prefix}_log_prob"])


@pytest.mark.parametrize("prefix", ["layer", "first"])
def test_layer_flow_sample_from_fixed_noise(flow, first_flow, cases, prefix):
    """The reference's `Flow.sample` with its base draw replaced by the recorded noise; calozoo's generation path
    (cached inverse weights of the 1x1 convolutions)."""
    built = flow if prefix == "layer" else first_flow
    sample, _ = built.to_data(nhwc(cases[f"{prefix}_noise"]), nhwc(cases[f"{prefix}_context"]),
                              built.cached_weights())
    assert_matches(sample, cases[f"{prefix}_sample"][:, 0])


def test_calozoo_default_forms_differ_from_the_reference(flow, cases):
    """calozoo's original forms (the defaults, kept for its trained models) against the reference, one at a time
    on the imported weights: each changes the layer flow's log-density far beyond RTOL. Measured relative
    differences of the log-density (max |difference| / max |log p|) at the fixture's sizes: 1x1-conv permutation
    side 0.28, U-Net bottleneck LeakyReLU 0.14, spline slopes 2.1e-3 (boundary slope 1 instead of 1.2950 and
    softplus(raw + c) instead of softplus(beta raw) / beta). (Before the fixtures, calozoo's U-Net LeakyReLU also
    used tf.nn.leaky_relu, whose float32 slope 0.0099999998 gave float64 differences of 1.6e-9 in the log-density,
    9e-9 in a U-Net output and 2.8e-8 in a sample; `calozoo.bijectors.unet.leaky_relu` fixed that.)"""
    x, context = cases["layer_x"][:, 0], nhwc(cases["layer_context"])
    assert_matches(flow.log_prob(x, context), cases["layer_log_prob"])
    default_spline = SplineSettings(**{**flow.spline.as_dict(), "parametrization": "nflows"})
    offset = float(np.log(np.expm1(1.0 - default_spline.min_derivative)))
    changes = {
        "conv permutation": [(conv, "permute_inputs", False) for conv in flow.convs],
        "spline slopes": [(c, name, value) for c in flow.couplings
                          for name, value in (("spline", default_spline), ("_slope_offset", offset))],
        "bottleneck": [(c.conditioner, "bottleneck_activation", False) for c in flow.couplings],
    }
    measured = {}
    for label, edits in changes.items():
        kept = [(obj, name, getattr(obj, name)) for obj, name, _ in edits]
        try:
            for obj, name, value in edits:
                setattr(obj, name, value)
            measured[label] = relative_difference(flow.log_prob(x, context), cases["layer_log_prob"])
        finally:
            for obj, name, value in kept:
                setattr(obj, name, value)
    assert_matches(flow.log_prob(x, context), cases["layer_log_prob"])
    assert all(value > 1e3 * RTOL for value in measured.values()), measured
    assert identity_init_boundary_slope(1e-3) == pytest.approx(1.2949913110606215, rel=1e-14)


def test_mapping_refuses_calozoos_default_forms():
    with pytest.raises(CheckpointError, match="exact_reference"):
        assign_conv_layer_flow(layer_flow(min(5, META["layer"]) + 2, True, exact=False), state_dict("layer_flow"))
    with pytest.raises(CheckpointError, match="embedding"):
        assign_conv_layer_flow(layer_flow(min(5, META["layer"]) + 2, False), state_dict("layer_flow"))


# ----- energy flow ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def energy_flow(model):
    return model.energy_flow


@pytest.fixture(scope="module")
def first_permutation(energy_flow):
    return assign_permuted_maf(energy_flow, state_dict("energy_flow"))


def test_energy_flow_log_density(energy_flow, first_permutation, cases):
    """The reference MAF ([Permutation, MADE-RQS] per block) through calozoo's MAF ([MADE-RQS, Permutation]), the
    reference's first permutation applied to the input."""
    x = cases["energy_x"][:, first_permutation]
    assert_matches(energy_flow.log_prob(x, cases["energy_c"]), cases["energy_log_prob"])
    ignored = relative_difference(energy_flow.log_prob(cases["energy_x"], cases["energy_c"]),
                                  cases["energy_log_prob"])
    assert ignored > 1e3 * RTOL  # without it the density is another one (0.11 relative here)


def test_energy_flow_sample_from_fixed_noise(energy_flow, first_permutation, cases):
    sample = energy_flow.sample_from_noise(cases["energy_noise"], cases["energy_c"])
    assert_matches(np.asarray(sample)[:, np.argsort(first_permutation)], cases["energy_sample"])


# ----- preprocessing -------------------------------------------------------------------------------------------
def test_voxel_transform_and_its_inverse(model, cases):
    """conf/causal.yaml's samples_trafo (NormLayer(1e-6), Clamp, Log10(x + 1e-7), x / 7 + 1, LogIt(1e-2)) and its
    inverse against calozoo's `transform_voxels` / `inverse_transform_voxels` with the same per-layer maximum."""
    layer_max = float(cases["pre_layer_max_gev"].reshape(-1)[0]) - 1e-6
    maxima = np.ones(model.n_layers)
    maxima[0] = layer_max
    model.layer_maxima_gev.assign(maxima)
    index = np.zeros(len(cases["pre_voxels_gev"]), np.int32)
    assert_matches(model.transform_voxels(cases["pre_voxels_gev"][:, 0], index), cases["pre_transformed"][:, 0])
    assert_matches(model.inverse_transform_voxels(cases["pre_generated"][:, 0], index),
                   cases["pre_generated_gev"][:, 0])


def test_condition_channels(model, cases):
    assert_matches(model.energy_channel(cases["pre_energies_gev"]), cases["pre_energy_channel"])
    assert_matches(model.incident_condition(cases["pre_incident_gev"]), cases["pre_incident_condition"])
    assert_matches(model.incident_condition(cases["pre_incident_gev"]), cases["pre_energy_incident_condition"])


def test_energy_flow_inputs(model, cases):
    """conf/energy.yaml's samples_trafo (x 0.015721663736086636, clamp, LogIt(1e-6)) against calozoo's
    `energy_flow_x` (whose `seed=None` adds the noise mean 1e-6 GeV, removed here) and its inverse. calozoo clamps
    the inverse logit to [0, 1]; the reference does not, so beyond |logit| = ln((1 - alpha) / alpha) = 13.8155 (the
    energy flow's tail bound) it returns energies below 0 or above 1 / scale (at -14: -1.07e-5 GeV, calozoo 0; at
    +14: 63.6065 GeV x (1 + 1.7e-7), calozoo 63.6065 GeV): those two entries are left out."""
    energies = cases["pre_layer_energies_gev"]
    energy_x = model.energy_flow_x(energies - model.config.energy_noise_mean_gev, None, None)  # "layers": no E_inc
    assert_matches(energy_x, cases["pre_energy_x"])
    logits, expected = cases["pre_energy_logits"], cases["pre_energy_logits_gev"]
    inside = np.abs(logits) <= np.log((1 - model.config.energy_logit_alpha) / model.config.energy_logit_alpha)
    assert inside.sum() == logits.size - 2
    energies = inverse_logit_transform(logits, model.config.energy_logit_alpha, clamp=True) / \
        model.config.energy_scale_gev
    assert_matches(np.asarray(energies)[inside], expected[inside])


def test_preprocessing_constants_are_the_reference_ones():
    """The registered DS3 config against conf/causal.yaml, conf/energy.yaml and the reference code's settings."""
    meta, config = META["constants"], get_entry("l2lflow-ds3-electron").config
    data, energy = meta["causal_dataset"], meta["energy_dataset"]
    steps = {step[0]: step[1:] for step in data["samples_trafo"]}
    assert config["voxel_noise_gev"] == 2 * data["noise_mean"] and data["noise_mode"] == "uniform"
    assert (config["fill_log10_mean"], config["fill_log10_std"]) == (data["extra_noise_mean"],
                                                                      data["extra_noise_std"])
    assert config["cut_gev"] == data["energy_threshold"] and data["apply_cut_depos_energy"]
    assert steps["NormLayer"] == [1e-6] and steps["Clamp"] == [0.0, 1.0]
    assert steps["Log"] == [10.0, config["log_offset"]] and steps["Affine"] == [1 / config["log_divisor"], 1]
    assert steps["LogIt"] == [config["voxel_logit_alpha"]]
    assert data["cond_trafo"] == energy["cond_trafo"] == [["Log", 10.0, 1e-6], ["Affine", 2.0, -3.0]]
    assert data["cond_trafo2"] == [["Log", 10.0, 1e-6], ["Affine", 1.0, 1.0]]
    assert (config["energy_noise_mean_gev"], config["energy_noise_std_gev"]) == (energy["noise_mean"],
                                                                                 energy["noise_std"])
    scale = energy["samples_trafo"][0][1]  # 0.015721663736086636; the registry rounds it to 12 digits
    assert config["energy_scale_gev"] == pytest.approx(scale, rel=RTOL)
    assert energy["samples_trafo"][2] == ["LogIt", config["energy_logit_alpha"]]
    flow, energy_flow = meta["causal_flow"], meta["energy_flow"]
    assert tuple(config["squeeze"]) == (flow["squeeze"],) * 2 and config["num_blocks"] == flow["num_blocks"]
    assert config["previous_layers"] == flow["num_layers_cond"]
    assert config["embedding_channels"] == flow["out_features_embed"]
    assert config["hidden"] == flow["subnet_args"]["hidden"] and flow["subnet_args"]["cyclic_padding"]
    assert [list(f) for f in config["down_factors"]] == flow["subnet_args"]["downsamples"]
    assert (config["num_bins"], config["tail_bound"]) == (meta["coupling_num_bins"], meta["coupling_tail_bound"])
    assert [config["min_bin"]] * 3 == meta["coupling_min"] and meta["coupling_tails"] == "linear"
    assert meta["lu_eps"] == 1e-3
    assert (config["energy_blocks"], config["energy_hidden"], config["energy_num_bins"]) == (
        energy_flow["num_blocks"], energy_flow["hidden_features"], energy_flow["num_bins"])
    assert config["energy_made_hidden_blocks"] == energy_flow["num_layers"]
    assert config["energy_min_bin"] == energy_flow["min_bin_width"] == energy_flow["min_derivative"]
    assert config["energy_tail_bound"] == meta["energy_tail_bound"]
