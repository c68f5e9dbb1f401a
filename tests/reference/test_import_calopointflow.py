"""`calozoo import` of CaloPointFlow II: a Lightning checkpoint written by the reference code's training
(make_calopointflow_checkpoint.py; read without PyTorch) -> an artifact with its card, that reproduces the reference's
log-densities and samples from the same noise in float64, and refuses bad input.

Bounds: `RTOL` (1e-9 relative, float64 rounding) for every flow, the encoder and the decoding; `FLOAT32_RTOL` for
the preprocessed conditionals, because the reference casts the number of hits to float32 (`nnz.float()`) itself.
"""

import gzip
import hashlib
import json

import numpy as np
import pytest

import calozoo
from calozoo.bijectors.gaussian_base import standard_normal_log_prob
from calozoo.data.point_clouds import segment_mean
from calozoo.errors import CheckpointError
from calozoo.models.calopointflow_checkpoint import REFERENCE_COMMIT, check_hyperparameters
from calozoo.workflow.import_checkpoint import read_checkpoint
from tests.reference.comparisons import assert_matches, read_npz
from tests.reference.test_calopointflow_reference import FIXTURES, FLOAT32_RTOL
from tests.reference.test_import_checkpoint import assert_one_error_and_no_artifact, invoke

NAME = "calopointflow-ds2-electron"
META = json.loads((FIXTURES / "checkpoint.json").read_text())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The reference's `last.ckpt`, as Lightning wrote it (stored gzipped)."""
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    path.write_bytes(gzip.decompress((FIXTURES / "checkpoint.ckpt.gz").read_bytes()))
    return path


@pytest.fixture(scope="module")
def imported(checkpoint, tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    result = invoke(NAME, checkpoint, "--output", root)
    assert result.exit_code == 0, result.output
    return root / NAME / "v1"


@pytest.fixture(scope="module")
def model(imported):
    return calozoo.load(imported)


@pytest.fixture(scope="module")
def cases():
    return read_npz(FIXTURES / "checkpoint_cases.npz")


def segments(cases):
    """(segment ids, number of showers) of the points: the three showers of the fixtures."""
    nnz = read_npz(FIXTURES / "cases.npz")["nnz"]
    assert len(nnz) == len(cases["mu"])
    return np.repeat(np.arange(len(nnz)), nnz).astype(np.int32), len(nnz)


def test_fixture_is_a_lightning_checkpoint_of_the_reference(checkpoint):
    assert META["reference"]["commit"] == REFERENCE_COMMIT and META["libraries"]["pytorch-lightning"] == "2.3.2"
    assert {"state_dict", "hyper_parameters", "optimizer_states"} <= set(META["checkpoint_keys"])
    sizes = sum((FIXTURES / name).stat().st_size for name in ("checkpoint.ckpt.gz", "checkpoint_cases.npz",
                                                              "checkpoint.json"))
    assert sizes < 100_000


def test_card_and_metadata_name_the_checkpoint_and_the_reference_commit(imported, checkpoint):
    card = (imported / "MODEL_CARD.md").read_text()
    metadata = json.loads((imported / "metadata.json").read_text())
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert "Origin: imported" in card and REFERENCE_COMMIT in card and digest in card and "zuko 1.1.0" in card
    origin = metadata["origin"]
    assert origin["kind"] == "imported" and origin["checkpoints"]["ckpt"]["sha256"] == digest
    assert metadata["weights_dtype"] == "float64" and metadata["import_command"] == f"calozoo import {NAME} last.ckpt"
    inferred = metadata["inferred_config"]
    config = META["config"]
    assert inferred["conditional_network"] == "zuko" and inferred["latent_dim"] == config["latent_dim"]
    assert inferred["conditional_transforms"] == config["conditional_flow"]["transforms"]
    state = read_checkpoint(checkpoint)
    for flow, key in (("point_flow", "point_identity"), ("latent_flow", "latent_identity")):
        assert inferred[key] == [np.flatnonzero(state[f"{flow}.transform.transforms.{k}.mask"]).tolist()
                                 for k in range(config[flow]["transforms"])]
    assert inferred["conditional_orders"] == [[1, 0], [0, 1], [0, 1]]  # both orders (MODEL_SEED)
    training = origin["checkpoints"]["ckpt"]["training"]
    assert (training["lightning_version"], training["epoch"], training["global_step"]) == (
        "2.3.2", META["epoch"], META["global_step"]) and "pytorch-lightning 2.3.2" in card
    assert training["hyper_parameters"]["point_flow"] == config["point_flow"]  # the omegaconf objects as dicts
    assert "data" not in training["hyper_parameters"]


def test_statistics_are_the_checkpoint_ones(model, checkpoint):
    state = read_checkpoint(checkpoint)
    assert_matches(model.incident_standardizer.std.numpy() ** 2, state["normalize_e_in.var"])
    assert_matches(model.conditional_standardizer.mean.numpy(), np.concatenate(
        [state["normalize_nnz.mean"], state["normalize_e_sum.mean"]]))
    assert_matches(model.value_min_max.maximum.numpy(), state["min_max_scale_vals.max"])


def test_preprocessing_and_encoder(model, cases):
    fixture = read_npz(FIXTURES / "cases.npz")
    raw = model.raw_conditionals(fixture["showers_mev"].astype(np.float64), fixture["incident_energies_mev"],
                                 cases["uniform_nnz"])
    assert_matches(model.conditional_standardizer.forward(raw), cases["conditional"], FLOAT32_RTOL)
    assert_matches(model.incident_standardizer.forward(np.log(fixture["incident_energies_mev"])), cases["e_in_hat"])
    segment_ids, n = segments(cases)
    mu, log_var = model.encoder(cases["points"], segment_ids, n)
    assert_matches(mu, cases["mu"])
    assert_matches(log_var, cases["log_var"])


def test_conditional_flow_density_and_sample(model, cases):
    assert_matches(model.conditional_flow.log_prob(cases["conditional"], cases["e_in_hat"]),
                   cases["conditional_log_prob"])
    assert_matches(model.conditional_flow.to_data(cases["conditional_noise"], cases["e_in_hat"]).output,
                   cases["conditional_sample"])


def test_latent_flow_density_and_sample(model, cases):
    base = model.latent_composition.to_base(cases["latent"], conditional_input=cases["latent_context"])
    assert_matches(standard_normal_log_prob(base.output) + base.logdet, cases["latent_log_prob"])
    sample = model.latent_composition.to_data(cases["latent_noise"], conditional_input=cases["latent_context"])
    assert_matches(sample.output, cases["latent_sample"])


def test_point_flow_density_sample_and_decoding(model, cases):
    segment_ids, n = segments(cases)
    kwargs = model._point_kwargs(cases["point_context"], segment_ids, n)
    base = model.point_composition.to_base(cases["points"], **kwargs)
    log_prob = standard_normal_log_prob(base.output) + base.logdet
    assert_matches(log_prob, cases["point_log_prob"])
    assert_matches(segment_mean(log_prob, segment_ids, n), cases["point_log_prob_shower_mean"])
    sample = model.point_composition.to_data(cases["point_noise"], **kwargs).output
    assert_matches(sample, cases["point_sample"])
    assert np.array_equal(model.dequantizer.inverse(sample[:, :2]).numpy(), cases["decoded_coords"])
    assert_matches(model._fractions_from_values(sample[:, 2]), cases["decoded_fractions"])


def test_sampled_shower_quantities(model, cases):
    """The number of hits and the energy sum decoded from the reference's conditional sample."""
    fixture = read_npz(FIXTURES / "cases.npz")
    raw = model.conditional_standardizer.inverse(cases["conditional_sample"]).numpy()
    log_incident = np.log(fixture["incident_energies_mev"][:, 0])
    assert np.array_equal(np.floor(np.exp(raw[:, 0] + 0.5 * log_incident)).astype(int), cases["sampled_nnz"])
    assert_matches(np.exp(raw[:, 1] + log_incident), cases["sampled_e_sum"])


@pytest.fixture(scope="module")
def unfrozen(checkpoint, tmp_path_factory):
    """The checkpoint's state_dict as a .npz whose value statistics were saved before the end of epoch 0."""
    state = read_checkpoint(checkpoint)
    state["normalize_vals._frozen"] = np.array(False)
    path = tmp_path_factory.mktemp("bad") / "unfrozen.npz"
    np.savez(path, **state)
    return path


@pytest.mark.parametrize("arguments, pattern", [
    (("calopointflow-ds3-electron", "CKPT"), "not the 40500 of dataset 3"),
    ((NAME, "UNFROZEN"), "['normalize_vals'] are not frozen"),
    ((NAME, FIXTURES / "checkpoint_cases.npz"), "(the Lightning checkpoint)"),
    ((NAME, "CKPT", "--energy-flow", "CKPT"), "--energy-flow is not a checkpoint of CaloPointFlow II"),
    ((NAME, "CKPT", "--set", "latent_dim=7"), "contradicts"),
])
def test_bad_input_gives_one_error_line_and_no_artifact(tmp_path, checkpoint, unfrozen, arguments, pattern):
    arguments = [{"CKPT": checkpoint, "UNFROZEN": unfrozen}.get(a, a) if isinstance(a, str) else a for a in arguments]
    root = tmp_path / "store"
    assert_one_error_and_no_artifact(invoke(*arguments, "--output", root), pattern, root)


def test_a_ckpt_that_is_not_a_zip_is_refused(tmp_path):
    (tmp_path / "last.ckpt").write_bytes(b"not a zip")
    root = tmp_path / "store"
    assert_one_error_and_no_artifact(invoke(NAME, tmp_path / "last.ckpt", "--output", root),
                                     "not a PyTorch zip checkpoint", root)


@pytest.mark.parametrize("change, pattern", [({"shift_min_energy": True}, "shift_min_energy: true"),
                                             ({"point_dim": 4, "deepset_flow": False}, "model II only")])
def test_hyperparameters_calozoo_cannot_follow_are_refused(change, pattern):
    """What only the hyperparameters tell (the unit test: writing a changed .ckpt would need PyTorch)."""
    hyper_parameters = json.loads((FIXTURES / "checkpoint.json").read_text())["config"]
    check_hyperparameters(hyper_parameters)
    with pytest.raises(CheckpointError, match=pattern):
        check_hyperparameters({**hyper_parameters, **change})
