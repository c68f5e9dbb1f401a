"""CaloFlow DS1 photons against the reference PyTorch code, in float64, through calozoo's checkpoint converter.

The golden files in caloflow_ds1/ were written by make_caloflow_fixtures.py, which ran the reference code
(Ian-Pang/caloflow-for-calochallenge @ f29cd71, nflows 0.14) at small sizes on the real 368-voxel geometry. These
tests need no PyTorch: they load the reference state_dicts (numpy arrays, reference keys) into calozoo models and
compare every quantity with `relative_difference` <= `RTOL` (max |calozoo - reference| / max |reference|).
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.models.caloflow_checkpoint import (
    REFERENCE_COMMIT,
    caloflow_config_from_checkpoints,
    caloflow_from_checkpoints,
)
from calozoo.preprocessing import energies_from_fractions, inverse_logit_transform
from calozoo.registry import get_entry
from tests.reference.comparisons import assert_matches, read_npz, relative_difference

FIXTURES = Path(__file__).resolve().parent / "caloflow_ds1"


def state_dict(name: str) -> dict:
    """A reference state_dict as numpy arrays (the fixtures store the exactly representable weights as float16)."""
    return read_npz(FIXTURES / f"{name}.npz")


def reference_model(role: str) -> CaloFlow:
    """The registered DS1 photon config with the fixture's sizes, weights from the reference state_dicts."""
    base = {**get_entry(f"caloflow-ds1-photon-{role}").config, "dtype": "float64"}
    shower, energy = state_dict(role), state_dict("energy_flow")
    config, _ = caloflow_config_from_checkpoints(base, shower, energy)
    return caloflow_from_checkpoints(config, shower, energy)


def compiled(function):
    """`function` as a graph (its D-step while-loops run much faster than eagerly), called with float64 tensors."""
    graph = tf.function(function)
    return lambda *arrays: graph(*[tf.constant(a, tf.float64) for a in arrays])


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def teacher() -> CaloFlow:
    return reference_model("teacher")


@pytest.fixture(scope="module")
def student() -> CaloFlow:
    return reference_model("student")


def test_fixtures_name_the_reference_commit_and_sizes():
    meta = json.loads((FIXTURES / "fixtures.json").read_text())
    assert meta["reference"]["commit"] == REFERENCE_COMMIT
    assert meta["libraries"]["nflows"] == "0.14"
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 450_000


def test_shapes_give_the_fixture_configuration(teacher, student):
    sizes = json.loads((FIXTURES / "fixtures.json").read_text())["sizes"]
    assert (teacher.config.hidden, student.config.hidden) == (sizes["teacher_hidden"], sizes["student_hidden"])
    assert teacher.config.num_blocks == student.config.num_blocks == sizes["flow_blocks"]
    assert (teacher.config.role, student.config.role) == ("teacher", "student")
    assert (teacher.config.energy_hidden, teacher.config.energy_blocks) == (sizes["energy_hidden"],
                                                                            sizes["energy_blocks"])


def test_made_output(teacher, cases):
    made = teacher.shower_flow.mades[0]
    out = made(cases["x"][:1], cases["y"][:1]).numpy()
    assert_matches(out.reshape(1, -1), cases["made_output_row0"])


def test_masks_matter_for_these_fixtures(teacher, cases):
    """The reference keeps raw weights under its masks: copying them unmasked must change the MADE output, so the
    MADE comparison above can fail."""
    weights = state_dict("teacher")
    prefix = "_transform._transforms.0.autoregressive_net.final_layer"
    assert np.abs(weights[f"{prefix}.weight"] * (1 - weights[f"{prefix}.mask"])).max() > 0
    made = teacher.shower_flow.mades[0]
    masked = made.out_kernel.numpy()
    try:
        made.out_kernel.assign(np.asarray(weights[f"{prefix}.weight"], np.float64).T)
        unmasked = made(cases["x"][:1], cases["y"][:1]).numpy().reshape(1, -1)
    finally:
        made.out_kernel.assign(masked)
    assert relative_difference(unmasked, cases["made_output_row0"]) > 1e-2


def test_one_maf_block_density_direction(teacher, cases):
    z, logdet, _ = teacher.shower_flow.blocks[0].one_pass(cases["x"], cases["y"])
    assert_matches(z, cases["block0_z"])
    assert_matches(logdet, cases["block0_logdet"])


def test_one_maf_block_sampling_direction(teacher, cases):
    x, logdet = compiled(teacher.shower_flow.blocks[0].sequential_with_log_det)(cases["wide"], cases["y"])
    assert_matches(x, cases["block0_inverse"])
    assert_matches(logdet, cases["block0_inverse_logdet"])


def test_teacher_density(teacher, cases):
    passed = teacher.shower_flow.to_base(cases["x"], cases["y"])
    assert_matches(passed.output, cases["teacher_z"])
    assert_matches(passed.logdet, cases["teacher_logdet"])
    assert_matches(teacher.shower_flow.log_prob(cases["x"], cases["y"]), cases["teacher_log_prob"])


def test_teacher_samples_from_the_same_noise(teacher, cases):
    samples = compiled(teacher.shower_flow.sample_from_noise)(cases["noise"], cases["y"])
    assert_matches(samples, cases["teacher_samples"])


def test_student_samples_from_the_same_noise(student, cases):
    passed = student.shower_flow.to_data(cases["noise"], cases["y"])
    assert_matches(passed.output, cases["student_samples"])
    assert_matches(passed.logdet, cases["student_sample_logdet"])


def test_student_density(student, cases):
    """D sequential passes per block; the log-density at the student's own samples is the least well conditioned
    quantity here (measured 1e-11: the solve runs through the steep bins that produced the samples)."""
    log_prob = compiled(student.shower_flow.log_prob)
    assert_matches(log_prob(cases["x"], cases["y"]), cases["student_log_prob"])
    assert_matches(log_prob(cases["student_samples"], cases["y"]), cases["student_sample_log_prob"])


def test_energy_flow_density(teacher, cases):
    assert_matches(teacher.energy_flow.log_prob(cases["u"], cases["c"]), cases["energy_flow_log_prob"])


def test_preprocessing_of_the_reference_noisy_voxels(cases):
    """calozoo's preprocessing of the voxels the reference drew (its noise included; calozoo's own draw off)."""
    model = CaloFlow(CaloFlowConfig(hidden=2, num_blocks=1, energy_hidden=2, energy_blocks=1, voxel_noise=0.0,
                                    energy_flow_noise=0.0))
    inputs = model.preprocess(cases["noisy_voxels"] * 1e5, cases["incident_energies_mev"], 0, noise=False)
    for key, expected in (("shower_x", "x"), ("shower_c", "y"), ("energy_x", "u"), ("energy_c", "c")):
        assert_matches(inputs[key], cases[expected])


def test_preprocessing_constants_are_the_reference_ones():
    meta = json.loads((FIXTURES / "fixtures.json").read_text())["constants"]
    config = CaloFlowConfig()
    assert config.logit_alpha == meta["alpha"] and config.u0_factor == pytest.approx(meta["u0_factor"], rel=1e-12)
    assert config.voxel_noise == config.energy_flow_noise
    assert config.voxel_noise * (1 - 1e-3) < meta["noise_max_of_1e5_draws"] < config.voxel_noise
    assert config.energy_unit_mev == pytest.approx(meta["energy_unit_mev"], rel=1e-12)
    assert config.threshold_mev == meta["threshold_mev"]
    assert (config.tail_bound, config.num_bins, config.hidden, config.num_blocks) == (
        meta["tail_bound"], meta["num_bins"], meta["hidden_size"], meta["n_blocks"])


def test_reference_evaluation_of_the_teacher(teacher, cases):
    """The reference's own evaluation loop (its conditions) gives the mean log-density of calozoo's preprocessing."""
    model = CaloFlow(dataclasses.replace(teacher.config, voxel_noise=0.0, energy_flow_noise=0.0))
    model.shower_flow, model.energy_flow = teacher.shower_flow, teacher.energy_flow
    inputs = model.preprocess(cases["noisy_voxels"] * 1e5, cases["incident_energies_mev"], 0, noise=False)
    mean = tf.reduce_mean(model.shower_flow.log_prob(inputs["shower_x"], inputs["shower_c"]))
    assert_matches(mean, cases["reference_evaluate_mean_log_prob"])


def test_student_generation_chain_from_the_same_noise(student, cases):
    """Flow-I -> layer energies -> Flow-II (student, one pass) -> showers in MeV, thresholded, from the reference's
    recorded noise; the layer energies alone too."""
    energies = cases["incident_energies_mev"]
    showers = student.showers_from_noise(energies, cases["generation_energy_noise"], cases["generation_shower_noise"])
    assert_matches(showers, cases["generation_showers_mev"])
    unit = student.energy_flow.sample_from_noise(cases["generation_energy_noise"],
                                                 student.energy_condition(energies / 1e5))
    layers = energies_from_fractions(inverse_logit_transform(unit, 1e-6), energies / 1e5, student.config.u0_factor)
    assert_matches(layers, cases["generation_layer_energies"][:, :5])
