"""CaloPointFlow II (DS2) against the reference PyTorch code, in float64, through calozoo.bijectors.zuko_state_dict.

The golden files in calopointflow_ds2/ were written by make_calopointflow_fixtures.py, which ran the reference code
(simonschnake/CaloPointFlow @ 6fca03b, zuko 1.1.0) at small sizes on the real DS2 geometry. These tests need no
PyTorch: they load the reference state_dict (numpy arrays, reference keys) into calozoo's pieces and compare every
quantity with `relative_difference` <= `RTOL` (max |calozoo - reference| / max |reference|), except where the
reference itself computes in float32 (`FLOAT32_RTOL`, named at each use).

The deviation that stays, checked below: the reference's `Normalize` keeps unbiased batch variances
(`test_statistics_measured_by_adapt`). The conditional flow's network is the reference's with
`conditional_network: zuko` (the paper configurations; `test_zuko_conditional_network_is_the_reference_one`, on the
Lightning checkpoint of make_calopointflow_checkpoint.py); the default "nflows" MADE has 1 536 parameters more at
paper size (`test_paper_size_parameter_counts_are_the_reference_ones`).
"""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.composition import Composition, Step
from calozoo.bijectors.gaussian_base import standard_normal_log_prob
from calozoo.bijectors.zuko_made import autoregressive_adjacency
from calozoo.bijectors.zuko_state_dict import (
    assign_conditional_flow,
    assign_encoder,
    assign_preprocessing,
    calopointflow_sizes,
    coupling_from_state_dict,
    coupling_prefixes,
    deepset_coupling_from_state_dict,
    transform_orders,
)
from calozoo.data.point_clouds import grid_shape, segment_mean, showers_to_points
from calozoo.models.calopointflow import CaloPointFlow, CaloPointFlowConfig
from calozoo.networks.masked_mlp import masked_mlp_masks
from calozoo.networks.mlp import mlp_num_params
from calozoo.preprocessing.dequantization import probit
from calozoo.registry import get_entry
from calozoo.workflow.import_checkpoint import read_checkpoint
from tests.reference.comparisons import RTOL, assert_matches, read_npz, relative_difference

FIXTURES = Path(__file__).resolve().parent / "calopointflow_ds2"
META = json.loads((FIXTURES / "fixtures.json").read_text())
# The reference's CDFDequantization.forward writes into a float32 tensor and construct_conditional casts nnz with
# `.float()`, so these two results carry float32 rounding (2^-24 relative) whatever torch's default dtype.
FLOAT32_RTOL = 1e-6


@pytest.fixture(scope="module")
def state() -> dict:
    return read_npz(FIXTURES / "model.npz")


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def model(state) -> CaloPointFlow:
    """A calozoo CaloPointFlow II with the fixture's encoder sizes and the reference's preprocessing statistics and
    encoder (its flows are built separately, with the reference's masks)."""
    sizes = calopointflow_sizes(state)
    config = CaloPointFlowConfig(dataset="2", variant="II", dtype="float64", conditional_transforms=1,
                                 conditional_hidden=4, **sizes)
    built = CaloPointFlow(config)
    assign_preprocessing(built, state)
    assign_encoder(built.encoder, state)
    return built


@pytest.fixture(scope="module")
def latent_flow(state) -> Composition:
    return Composition([Step.of(coupling_from_state_dict(state, prefix, name=f"latent{k}"), conditioned=True)
                        for k, prefix in enumerate(coupling_prefixes(state, "latent_flow"))])


@pytest.fixture(scope="module")
def point_couplings(state) -> list:
    return [deepset_coupling_from_state_dict(state, prefix, name=f"point{k}")
            for k, prefix in enumerate(coupling_prefixes(state, "point_flow"))]


def point_kwargs(cases):
    segment_ids = np.repeat(np.arange(len(cases["nnz"])), cases["nnz"]).astype(np.int32)
    return dict(conditional_input=cases["point_context"], segment_ids=segment_ids, num_segments=len(cases["nnz"]))


def test_fixtures_name_the_reference_commit_and_sizes():
    assert META["reference"]["commit"] == "6fca03b65b3f7f92debc29438a61a580035107fc"
    assert META["libraries"]["zuko"] == "1.1.0"
    assert sum((FIXTURES / name).stat().st_size for name in ("model.npz", "cases.npz")) < 200_000


def test_sizes_read_from_the_state_dict(state):
    config = META["config"]
    sizes = calopointflow_sizes(state)
    assert sizes["latent_dim"] == config["latent_dim"]
    assert sizes["encoder_point_hidden"] + [sizes["encoder_width"]] == config["encoder"]["point_layers"] + [
        config["encoder"]["point_layers"][-1]]
    assert sizes["encoder_latent_hidden"] + [sizes["encoder_latent_width"]] == config["encoder"]["latent_layers"]
    assert sizes["set_hidden"] + [sizes["set_width"]] == config["point_flow"]["point_net_dims"]
    assert sizes["summary_hidden"] + [sizes["summary_dim"]] == config["point_flow"]["reduce_net_dims"]
    assert (sizes["latent_transforms"], sizes["latent_bins"], sizes["point_transforms"], sizes["point_bins"]) == (
        config["latent_flow"]["transforms"], config["latent_flow"]["bins"], config["point_flow"]["transforms"],
        config["point_flow"]["bins"])
    assert [sizes["latent_hidden"]] * sizes["latent_layers"] == config["latent_flow"]["hidden_features"]
    assert [sizes["point_hidden"]] * sizes["point_layers"] == config["point_flow"]["hidden_features"]


def test_point_clouds_are_the_reference_ones(state, cases):
    """Hits in voxel order, (z, alpha, r) from the flat index as the reference's coordinate table has it."""
    cloud = showers_to_points(tf.constant(cases["showers_mev"]), grid_shape("2"))
    assert np.array_equal(cloud.coordinates.numpy(), state["coords"][cases["coords"][:, 0]])
    assert np.array_equal(cloud.energies.numpy(), cases["vals"])
    assert np.array_equal(cloud.counts.numpy(), cases["nnz"])


def test_preprocessing_of_values_incident_energy_and_energy_sum(model, cases):
    showers = tf.constant(cases["showers_mev"], tf.float64)
    cloud = showers_to_points(showers, model.grid)
    fractions = model._energy_fractions(cloud, showers)
    assert_matches(fractions, cases["fractions"])
    assert_matches(model.value_standardizer.forward(model._raw_value(fractions))[:, 0], cases["points"][:, 2])
    assert_matches(model.incident_standardizer.forward(np.log(cases["incident_energies_mev"])), cases["e_in_hat"])
    raw = model.raw_conditionals(showers, tf.constant(cases["incident_energies_mev"]), cases["uniform_nnz"])
    conditionals = model.conditional_standardizer.forward(raw).numpy()
    assert_matches(conditionals[:, 1], cases["conditional"][:, 1])
    assert_matches(conditionals[:, 0], cases["conditional"][:, 0], FLOAT32_RTOL)  # the reference's nnz.float()


def test_cdf_dequantisation(model, cases):
    """The dequantised (z, r) of the reference noise: against the reference's float64 probit of its float64
    dequantised value, and against its stored points (float32, see FLOAT32_RTOL)."""
    zr = showers_to_points(tf.constant(cases["showers_mev"]), model.grid).coordinates.numpy()[:, [0, 2]]
    coordinates = model.dequantizer.forward(zr, cases["uniform_coordinates"].astype(np.float64))
    assert_matches(coordinates, cases["probit_of_dequantised_unit"])
    assert_matches(coordinates, cases["points"][:, :2], FLOAT32_RTOL)  # the reference's float32 tensor


def test_probit_is_the_reference_normal_quantile(cases):
    """calozoo's probit of the reference's dequantised values in [0, 1] is the reference's `normal_quantile`."""
    assert_matches(probit(tf.constant(cases["dequantised_unit"])), cases["probit_of_dequantised_unit"])


def test_statistics_measured_by_adapt(state, cases):
    """calozoo's `adapt` on the fixture showers against the reference's epoch-0 statistics of the same batch. The
    standard deviations differ by design: the reference's `Normalize` keeps the unbiased variance of each batch
    (torch's `var`), calozoo the population variance of all training data, a factor (n - 1) / n in the variance of
    a single batch of n values (about 1 - 1 / batch_size in a reference training run). The nnz column is not
    compared because `adapt` draws its own uniforms."""
    model = CaloPointFlow(CaloPointFlowConfig(dataset="2", dtype="float64", conditional_transforms=1,
                                              conditional_hidden=4, **calopointflow_sizes(state)))
    model.adapt(cases["showers_mev"], cases["incident_energies_mev"])
    for name, standardizer, column in (("normalize_e_in", model.incident_standardizer, 0),
                                       ("normalize_e_sum", model.conditional_standardizer, 1),
                                       ("normalize_vals", model.value_standardizer, 0)):
        n = state[f"{name}.count"]
        assert_matches(standardizer.mean.numpy()[column], state[f"{name}.mean"][0])
        assert_matches(standardizer.std.numpy()[column] ** 2, state[f"{name}.var"][0] * (n - 1) / n)
    assert_matches(model.value_min_max.minimum.numpy(), state["min_max_scale_vals.min"])
    assert_matches(model.value_min_max.maximum.numpy(), state["min_max_scale_vals.max"])
    for i, cdf in enumerate(model.dequantizer.cdfs):
        assert_matches(cdf.numpy()[:-1], state[f"dequantize_coords.cdf_{i}"])
        assert_matches(np.diff(cdf.numpy()), state[f"dequantize_coords.pdf_{i}"])


def test_encoder(model, cases):
    segment_ids = np.repeat(np.arange(len(cases["nnz"])), cases["nnz"]).astype(np.int32)
    mu, log_var = model.encoder(tf.constant(cases["points"]), segment_ids, len(cases["nnz"]))
    assert_matches(mu, cases["mu"])
    assert_matches(log_var, cases["log_var"])


def test_latent_flow_density_and_sample(latent_flow, cases):
    base = latent_flow.to_base(tf.constant(cases["latent"]), conditional_input=cases["latent_context"])
    assert_matches(standard_normal_log_prob(base.output) + base.logdet, cases["latent_log_prob"])
    sample = latent_flow.to_data(tf.constant(cases["latent_noise"]), conditional_input=cases["latent_context"])
    assert_matches(sample.output, cases["latent_sample"])
    assert_matches(sample.logdet, cases["latent_sample_ladj"])


def test_one_deepset_coupling_both_ways(point_couplings, cases):
    coupling = point_couplings[0]
    y, logdet = coupling.to_base(cases["points"], **point_kwargs(cases))
    assert_matches(y, cases["coupling0_y"])
    assert_matches(logdet, cases["coupling0_ladj"])
    x, logdet = coupling.to_data(cases["wide"], **point_kwargs(cases))
    assert_matches(x, cases["coupling0_inverse"])
    assert_matches(logdet, cases["coupling0_inverse_ladj"])


def test_point_flow_density_and_sample(point_couplings, cases):
    flow = Composition([Step.of(c, conditioned=True) for c in point_couplings])
    base = flow.to_base(tf.constant(cases["points"]), **point_kwargs(cases))
    log_prob = standard_normal_log_prob(base.output) + base.logdet
    assert_matches(log_prob, cases["point_log_prob"])
    kwargs = point_kwargs(cases)
    assert_matches(segment_mean(log_prob, kwargs["segment_ids"], kwargs["num_segments"]),
                   cases["point_log_prob_shower_mean"])
    sample = flow.to_data(tf.constant(cases["point_noise"]), **kwargs)
    assert_matches(sample.output, cases["point_sample"])
    assert_matches(sample.logdet, cases["point_sample_ladj"])


def test_the_deepset_mapping_can_fail(point_couplings, state, cases):
    """A wrong mapping shows: the hypernetwork read in the reference's column order [x_a, summary, c] without the
    reordering changes the coupling far beyond RTOL."""
    coupling = point_couplings[0]
    kernel = coupling.conditioner.layers[0][0]
    kept = kernel.numpy()
    prefix = coupling_prefixes(state, "point_flow")[0]
    try:
        kernel.assign(np.asarray(state[f"{prefix}.hyper.0.weight"], np.float64).T)
        wrong = coupling.to_base(cases["points"], **point_kwargs(cases))[0].numpy()
    finally:
        kernel.assign(kept)
    assert relative_difference(wrong, cases["coupling0_y"]) > 1e3 * RTOL


@pytest.mark.parametrize("points, prefix", [("point_sample", "decoded"), ("points", "decoded_input"),
                                            ("edge_points", "decoded_edge")])
def test_decoding(model, state, cases, points, prefix):
    """(z, r) bins and energy fractions of the reference's sampled points, of its preprocessed points (which decode
    to the hits they came from) and of points whose probability is clamped to 0 or 1 (bin 0, and the last bin that
    is not empty where the cdf ends exactly at 1: the fixture's z cdf has empty bins at both ends, its r cdf at the
    top)."""
    assert np.array_equal(model.dequantizer.inverse(cases[points][:, :2]).numpy(), cases[f"{prefix}_coords"])
    assert_matches(model._fractions_from_values(cases[points][:, 2]), cases[f"{prefix}_fractions"])
    if points == "points":
        assert np.array_equal(cases[f"{prefix}_coords"], state["coords"][cases["coords"][:, 0]][:, [0, 2]])


def test_preprocessing_constants_are_the_reference_ones():
    constants = META["constants"]
    config = CaloPointFlowConfig()
    eps = constants["quantile_eps"]
    assert config.logit_eps == eps["logistic_quantile"] == eps["logistic_cdf"]
    assert config.probit_eps == eps["normal_quantile"] == eps["normal_cdf"]
    assert (config.tail_bound, config.slope) == (constants["rqs_bound"], constants["rqs_slope"])
    assert not META["config"]["shift_min_energy"]


def test_paper_size_parameter_counts_are_the_reference_ones():
    """Trainable parameters per part of the reference module at d2_II sizes (built by the reference code) against the
    registered paper configuration, whose DeepSet phi has the reference's layers before the mean and whose conditional
    flow takes the reference's network (`conditional_network: zuko`). nflows' MADE (the default network, kept by the
    shipped compact artifacts) adds the context through its own layer with a bias: H more parameters per transform."""
    counts = META["constants"]["paper_size_parameters"]
    config = CaloPointFlowConfig.from_dict(get_entry("calopointflow-ds2-electron").config)
    assert config == CaloPointFlowConfig(conditional_network="zuko")  # the defaults are d2_II but for the network
    expected = config.expected_num_params()
    assert {part: expected[part] for part in ("encoder", "conditional_flow", "latent_flow", "point_flow")} == {
        part: counts[part] for part in ("encoder", "conditional_flow", "latent_flow", "point_flow")}
    nflows = CaloPointFlowConfig().expected_num_params()
    assert nflows["conditional_flow"] - counts["conditional_flow"] == (
        config.conditional_transforms * config.conditional_hidden)
    n_identity = len(config.point_masks()[0])
    assert mlp_num_params(n_identity, list(config.set_hidden), config.set_width) == counts["deepset_point_net"]


def test_zuko_conditional_network_is_the_reference_one(tmp_path):
    """`conditional_network: zuko` against the reference's zuko NSF of a checkpoint its training wrote: the masks
    calozoo derives are the reference's, and the log-density and the sample from recorded noise agree in float64."""
    path = tmp_path / "last.ckpt"
    path.write_bytes(gzip.decompress((FIXTURES / "checkpoint.ckpt.gz").read_bytes()))
    checkpoint = read_checkpoint(path)
    cases = read_npz(FIXTURES / "checkpoint_cases.npz")
    sizes = calopointflow_sizes(checkpoint, conditional=True)
    config = CaloPointFlowConfig(dataset="2", dtype="float64", **sizes, conditional_orders=transform_orders(checkpoint))
    flow = CaloPointFlow(config).conditional_flow
    hidden = [sizes["conditional_hidden"]] * sizes["conditional_layers"]
    for k, order in enumerate(config.conditional_orders):
        adjacency = autoregressive_adjacency(np.array(order), 1, 3 * sizes["conditional_bins"] - 1)
        for index, mask in zip((0, 2, 4), masked_mlp_masks(adjacency, hidden)):
            stored = checkpoint[f"conditional_flow.transform.transforms.{k}.hyper.{index}.mask"]
            assert np.array_equal(mask, np.asarray(stored, bool).T)
    assign_conditional_flow(flow, checkpoint)
    assert_matches(flow.log_prob(cases["conditional"], cases["e_in_hat"]), cases["conditional_log_prob"])
    assert_matches(flow.to_data(cases["conditional_noise"], cases["e_in_hat"]).output, cases["conditional_sample"])
