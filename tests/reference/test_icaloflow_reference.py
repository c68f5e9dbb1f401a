"""iCaloFlow DS2 electrons against the reference PyTorch code, in float64, through calozoo's checkpoint converter.

The golden files in icaloflow_ds2/ were written by make_icaloflow_fixtures.py, which ran the reference code
(claudius-krause/inductive-caloflow @ 328ae2a, nflows 0.14) at small sizes on the real DS2 geometry (45 layers x 144
voxels) with three GEANT4 showers. These tests need no PyTorch: they load the reference state_dicts (numpy arrays,
reference keys) into calozoo models and compare every quantity with `relative_difference` <= `RTOL`
(max |calozoo - reference| / max |reference|), as tests/reference/test_caloflow_reference.py does for CaloFlow.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from calozoo.errors import CheckpointError
from calozoo.models.icaloflow import FLOW_NAMES, ICaloFlow, ICaloFlowConfig
from calozoo.models.icaloflow_checkpoint import (
    REFERENCE_COMMIT,
    icaloflow_config_from_checkpoints,
    icaloflow_from_checkpoints,
)
from calozoo.registry import get_entry
from tests.reference.comparisons import RTOL, assert_matches, read_npz, relative_difference

FIXTURES = Path(__file__).resolve().parent / "icaloflow_ds2"


def state_dicts(role: str) -> dict:
    """The three reference state_dicts of `role` as numpy arrays; the student reuses the teacher's Flow-1."""
    states = {}
    for name in FLOW_NAMES:
        with np.load(FIXTURES / f"{name}_{'teacher' if name == 'energy_flow' else role}.npz") as stored:
            states[name] = {key: stored[key] for key in stored.files}
    return states


def reference_model(role: str, **changes) -> ICaloFlow:
    """The registered DS2 electron config with the fixture's sizes, weights from the reference state_dicts."""
    base = {**get_entry(f"icaloflow-ds2-electron-{role}").config, "dtype": "float64", **changes}
    states = state_dicts(role)
    config, _ = icaloflow_config_from_checkpoints(base, states)
    return icaloflow_from_checkpoints(config, states)


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def teacher() -> ICaloFlow:
    return reference_model("teacher")


@pytest.fixture(scope="module")
def student() -> ICaloFlow:
    return reference_model("student")


@pytest.fixture(scope="module")
def noiseless(teacher) -> ICaloFlow:
    """The teacher's preprocessing with calozoo's own noise off (`noise_mev=0`, `seed=None` adds 0.5 x 0), so that
    it runs on the noisy values the reference drew."""
    return reference_model("teacher", noise_mev=0.0)


def test_fixtures_name_the_reference_commit_and_sizes():
    meta = json.loads((FIXTURES / "fixtures.json").read_text())
    assert meta["reference"]["commit"] == REFERENCE_COMMIT
    assert meta["libraries"]["nflows"] == "0.14"
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 300_000


def test_shapes_give_the_fixture_configuration(teacher, student):
    sizes = json.loads((FIXTURES / "fixtures.json").read_text())["sizes"]
    config = teacher.config
    assert (config.energy_hidden, config.first_layer_hidden, config.layer_hidden) == (sizes["hidden"],) * 3
    assert (student.config.first_layer_hidden, student.config.layer_hidden) == (sizes["student_hidden"],) * 2
    assert config.num_blocks == student.config.num_blocks == sizes["n_blocks"]
    assert (config.energy_made_hidden_blocks, config.first_layer_made_hidden_blocks,
            config.layer_made_hidden_blocks) == (1, 2, 2)
    assert (config.role, student.config.role) == ("teacher", "student")


def test_a_swapped_flow_is_refused():
    states = state_dicts("teacher")
    states["first_layer_flow"], states["layer_flow"] = states["layer_flow"], states["first_layer_flow"]
    with pytest.raises(CheckpointError, match="features and"):
        icaloflow_config_from_checkpoints(get_entry("icaloflow-ds2-electron-teacher").config, states)


def test_flow_1_density(teacher, cases):
    assert_matches(teacher.energy_flow.log_prob(cases["energy_x"], cases["energy_c"]), cases["energy_log_prob"])


def test_flow_2_density(teacher, cases):
    assert_matches(teacher.first_layer_flow.log_prob(cases["first_x"], cases["first_c"]), cases["first_log_prob"])


def test_flow_3_density(teacher, cases):
    assert_matches(teacher.layer_flow.log_prob(cases["layer_x"], cases["layer_c"]), cases["layer_log_prob"])


@pytest.mark.parametrize("flow, prefix", [("first_layer_flow", "first"), ("layer_flow", "layer")])
def test_student_densities(student, cases, flow, prefix):
    """Flow-2 and Flow-3 students: D = 144 sequential passes per block (the student's slow direction)."""
    log_prob = tf.function(getattr(student, flow).log_prob)
    assert_matches(log_prob(tf.constant(cases[f"{prefix}_x"]), tf.constant(cases[f"{prefix}_c"])),
                   cases[f"{prefix}_student_log_prob"])


def test_flow_3_mapping_can_fail(teacher, cases):
    """A wrong mapping shows: the first Flow-3 MADE's context kernel with its rows reversed (the condition's entries
    read in the wrong order) changes the log-density far beyond RTOL."""
    made = teacher.layer_flow.mades[0]
    kept = made.ctx_kernel.numpy()
    try:
        made.ctx_kernel.assign(kept[::-1])
        wrong = teacher.layer_flow.log_prob(cases["layer_x"], cases["layer_c"]).numpy()
    finally:
        made.ctx_kernel.assign(kept)
    assert relative_difference(wrong, cases["layer_log_prob"]) > 1e3 * RTOL


def test_preprocessing_of_the_reference_noisy_values(noiseless, cases):
    """calozoo's preprocessing of the noisy values the reference's loaders drew (their noise; calozoo's own off):
    Flow-1 input and condition, Flow-2 input and condition, Flow-3 input and condition."""
    model = noiseless
    x, c = model.energy_flow_inputs(cases["energy_noisy_mev"], cases["incident_energies_mev"], None)
    assert_matches(x, cases["energy_x"])
    assert_matches(c, cases["energy_c"])
    incident = cases["first_incident_mev"]
    assert_matches(model.shape_logit(cases["first_noisy_layer_mev"], None), cases["first_x"])
    assert_matches(model.first_layer_condition(incident, cases["first_noisy_energy_mev"]), cases["first_c"])
    assert_matches(model.shape_logit(cases["layer_noisy_layer_mev"], None), cases["layer_x"])
    condition = model.layer_condition(cases["layer_incident_mev"], cases["layer_noisy_energy_mev"],
                                      cases["layer_noisy_previous_energy_mev"],
                                      model.shape_logit(cases["layer_noisy_previous_layer_mev"], None),
                                      cases["layer_number"])
    assert_matches(condition, cases["layer_c"])


def test_reference_noise_is_calozoos_noise(teacher, cases):
    """The noise the reference added is U[0, noise_mev) with calozoo's noise_mev, on every noisy quantity."""
    showers = cases["showers_mev"].reshape(-1, 45, 144).astype(np.float64)
    layer_energies = showers.sum(-1)
    scale = teacher.config.noise_mev
    for noisy, clean in ((cases["energy_noisy_mev"], layer_energies),
                         (cases["first_noisy_layer_mev"], showers[:, 0]),
                         (cases["first_noisy_energy_mev"], layer_energies[:, :1])):
        assert 0.0 <= (noisy - clean).min() and (noisy - clean).max() < scale
    for step in json.loads((FIXTURES / "fixtures.json").read_text())["steps"]:
        added = cases[f"generation_student_step{step}_noisy_previous_mev"] - cases[
            f"generation_student_step{step}_previous_mev"]
        assert 0.0 <= added.min() and added.max() < scale


@pytest.mark.parametrize("step", json.loads((FIXTURES / "fixtures.json").read_text())["steps"])
def test_one_inductive_generation_step_from_the_same_noise(student, noiseless, cases, step):
    """Layer n from the generated layer n - 1 (the reference's `generate_flow_3`): its noisy copy of layer n - 1,
    Flow-1's layer energies and the recorded base noise -> Flow-3 condition -> student Flow-3 (one pass) -> inverse
    logit times E_n -> threshold."""
    prefix = f"generation_student_step{step}"
    energies, incident = cases["generation_layer_energies_mev"], cases["generation_incident_mev"]
    index = np.full(len(incident), step)
    condition = noiseless.layer_condition(incident, energies[:, step:step + 1], energies[:, step - 1:step],
                                          noiseless.shape_logit(cases[f"{prefix}_noisy_previous_mev"], None), index)
    logits = student.layer_flow.sample_from_noise(cases[f"{prefix}_noise"], condition)
    layer = student._layer_from_logits(logits, tf.constant(energies[:, step:step + 1]))
    assert_matches(layer, cases[f"{prefix}_layer_mev"])


def test_preprocessing_constants_are_the_reference_ones(teacher):
    meta = json.loads((FIXTURES / "fixtures.json").read_text())["constants"]
    config = get_entry("icaloflow-ds2-electron-teacher").config
    assert config["logit_alpha"] == meta["alpha"] and config["energy_unit_mev"] == meta["energy_unit_mev"]
    assert config["noise_mev"] == meta["noise_level_mev"]
    assert config["noise_mev"] * (1 - 1e-3) < meta["noise_max_of_1e5_draws"] < config["noise_mev"]
    assert config["threshold_mev"] == meta["threshold_mev"]
    assert (config["tail_bound"], config["num_bins"], config["num_blocks"]) == (
        meta["tail_bound"], meta["num_bins"], meta["n_blocks"])
    assert config["min_bin"] == meta["min_bin_width"] == meta["min_bin_height"] == meta["min_derivative"]
    assert (config["energy_hidden"], config["layer_hidden"]) == (meta["hidden_size"],) * 2
    assert config["energy_made_hidden_blocks"] == meta["n_hidden"] and config["dropout"] == meta["dropout"]


def test_paper_size_parameter_counts_are_the_reference_ones():
    """Trainable parameters of the reference's flows at its default sizes (built by its own functions) equal
    calozoo's count for the registered configs. The reference's default student Flow-3 is H 256; the registered
    student is H 384, what the paper's published parameter counts imply (docs/models.md section 3), so it is compared
    at the reference's default width."""
    meta = json.loads((FIXTURES / "fixtures.json").read_text())["constants"]
    counts = meta["paper_size_parameters"]
    teacher = ICaloFlowConfig.from_dict(get_entry("icaloflow-ds2-electron-teacher").config).expected_num_params()
    assert {name: teacher[name] for name in FLOW_NAMES} == {name: counts[name] for name in FLOW_NAMES}
    student = ICaloFlowConfig.from_dict({**get_entry("icaloflow-ds2-electron-student").config,
                                         "layer_hidden": meta["student_hidden_size"]}).expected_num_params()
    assert (student["first_layer_flow"], student["layer_flow"]) == (counts["first_layer_flow_student"],
                                                                    counts["layer_flow_student"])
