"""CaloFlow v1 / v2 on the CaloGAN detector against the reference PyTorch code, in float64, through calozoo's
checkpoint converter.

The golden files in caloflow_calogan/ were written by make_calogan_caloflow_fixtures.py, which ran the reference
code (Ian-Pang/AD_with_CF @ 6aec256, the original CaloFlow's runnable descendant, nflows 0.14) at small sizes on the
real 504-voxel geometry. The reference has no per-particle setting, so the e+, gamma and pi+ models share these
fixtures (the registered configs are checked to differ only in the dataset name). No PyTorch is needed: the reference
state_dicts (numpy arrays, reference keys) are loaded into calozoo models, and every quantity is compared with
`relative_difference` <= `RTOL` (max |calozoo - reference| / max |reference|).
"""

import json
from pathlib import Path

import numpy as np
import pytest

from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.models.caloflow_checkpoint import (
    CALOGAN_REFERENCE_COMMIT,
    caloflow_config_from_checkpoints,
    caloflow_from_checkpoints,
)
from calozoo.preprocessing import energies_from_fractions, inverse_logit_transform
from calozoo.registry import get_entry
from tests.reference.comparisons import assert_matches, read_npz, relative_difference
from tests.reference.test_caloflow_reference import compiled

FIXTURES = Path(__file__).resolve().parent / "caloflow_calogan"
PARTICLES = ("eplus", "gamma", "piplus")
META = json.loads((FIXTURES / "fixtures.json").read_text())


def state_dict(name: str) -> dict:
    """A reference state_dict as numpy arrays (float16-exact weights stay float16)."""
    return read_npz(FIXTURES / f"{name}.npz")


def registered(particle: str, role: str) -> dict:
    return {**get_entry(f"caloflow-calogan-{particle}-{role}").config, "dtype": "float64"}


def reference_model(role: str, particle: str = "eplus") -> CaloFlow:
    """The registered CaloGAN config with the fixture's sizes, weights from the reference state_dicts."""
    shower, energy = state_dict(role), state_dict("energy_flow")
    config, _ = caloflow_config_from_checkpoints(registered(particle, role), shower, energy)
    return caloflow_from_checkpoints(config, shower, energy)


def noiseless(particle: str = "eplus") -> CaloFlow:
    """A tiny registered-constants model whose own noise is off (the reference's noisy voxels are fed instead)."""
    config = {**registered(particle, "teacher"), "hidden": 2, "num_blocks": 1, "energy_hidden": 2,
              "energy_blocks": 1, "voxel_noise": 0.0, "energy_flow_noise": 0.0}
    return CaloFlow(CaloFlowConfig.from_dict(config))


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def teacher() -> CaloFlow:
    return reference_model("teacher")


@pytest.fixture(scope="module")
def student() -> CaloFlow:
    return reference_model("student")


def test_fixtures_name_the_reference_commit_and_stay_small():
    assert META["reference"]["commit"] == CALOGAN_REFERENCE_COMMIT
    assert META["libraries"]["nflows"] == "0.14"
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 300_000


def test_the_three_particles_differ_only_in_the_dataset():
    """The reference's `run.py` has one set of constants for e+, gamma and pi+ (only `--particle_type` picks the
    data file), so one set of fixtures stands for all six registered models."""
    for role in ("teacher", "student"):
        configs = [{k: v for k, v in registered(p, role).items() if k != "dataset"} for p in PARTICLES]
        assert configs[0] == configs[1] == configs[2]


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_registered_constants_are_the_reference_defaults(role):
    ref = META["constants"]
    config = CaloFlowConfig.from_dict(registered("eplus", role))
    hidden = ref["hidden_size"] if role == "teacher" else ref["student_hidden_size"]
    assert (config.hidden, config.num_blocks, config.made_hidden_blocks) == (hidden, ref["n_blocks"], ref["n_hidden"])
    assert (config.num_bins, config.tail_bound, config.dropout) == (ref["num_bins"], ref["tail_bound"], ref["dropout"])
    assert config.logit_alpha == ref["alpha"] and config.u0_factor == pytest.approx(ref["u0_factor"], rel=1e-12)
    assert config.energy_unit_mev == ref["voxel_unit_mev"] == 1e3 * ref["energy_unit_gev"]
    assert config.voxel_noise == config.energy_flow_noise and ref["with_noise"]
    assert config.voxel_noise * (1 - 1e-3) < ref["noise_max_of_1e5_draws"] < config.voxel_noise
    assert config.threshold_mev == ref["threshold_mev"] and ref["fully_guided"]


def test_shapes_give_the_fixture_configuration(teacher, student):
    sizes = META["sizes"]
    assert (teacher.config.hidden, student.config.hidden) == (sizes["teacher_hidden"], sizes["student_hidden"])
    assert teacher.config.num_blocks == student.config.num_blocks == sizes["flow_blocks"]
    assert (teacher.config.energy_hidden, teacher.config.energy_blocks) == (sizes["energy_hidden"],
                                                                            sizes["energy_blocks"])
    assert teacher.n_voxels == 504 and (teacher.config.role, student.config.role) == ("teacher", "student")


def test_made_output_and_its_masks_matter(teacher, cases):
    """The MADE output matches, and the reference's raw input weights hide non-zero values under their mask (with
    fewer hidden units than features it hides most of them), which calozoo's kernel leaves out: a converter that
    ignored the masks would fail here."""
    made = teacher.shower_flow.mades[0]
    assert_matches(made(cases["x"][:1], cases["y"][:1]).numpy().reshape(1, -1), cases["made_output_row0"])
    prefix = "_transform._transforms.0.autoregressive_net.initial_layer"
    raw, mask = (np.asarray(state_dict("teacher")[f"{prefix}.{part}"], np.float64) for part in ("weight", "mask"))
    assert relative_difference(raw * (1 - mask), raw) > 0.5
    np.testing.assert_array_equal(made.in_kernel.numpy(), (raw * mask).T)


def test_teacher_density_and_the_reference_evaluation(teacher, cases):
    assert_matches(teacher.shower_flow.to_base(cases["x"], cases["y"]).logdet, cases["teacher_logdet"])
    log_prob = teacher.shower_flow.log_prob(cases["x"], cases["y"])
    assert_matches(log_prob, cases["teacher_log_prob"])
    assert_matches(np.mean(log_prob), cases["reference_evaluate_mean_log_prob"])


def test_teacher_samples_from_the_same_noise(teacher, cases):
    assert_matches(compiled(teacher.shower_flow.sample_from_noise)(cases["noise"], cases["y"]),
                   cases["teacher_samples"])


def test_student_samples_from_the_same_noise(student, cases):
    passed = student.shower_flow.to_data(cases["noise"], cases["y"])
    assert_matches(passed.output, cases["student_samples"])
    assert_matches(passed.logdet, cases["student_sample_logdet"])


def test_student_density(student, cases):
    """D sequential passes per block, at the data and at the student's own samples (one batch, one graph)."""
    both = compiled(student.shower_flow.log_prob)(np.concatenate([cases["x"], cases["student_samples"]]),
                                                  np.concatenate([cases["y"], cases["y"]])).numpy()
    assert_matches(both[:3], cases["student_log_prob"])
    assert_matches(both[3:], cases["student_sample_log_prob"])


def test_energy_flow_density(teacher, cases):
    assert_matches(teacher.energy_flow.log_prob(cases["u"], cases["c"]), cases["energy_flow_log_prob"])


def test_forward_preprocessing_of_the_reference_noisy_voxels(cases):
    """calozoo's preprocessing (calozoo's own noise off) of the voxels the reference's data loader drew gives the
    Flow-II input and condition that the reference's `evaluate` handed its flow, and the Flow-I input and condition
    (with each particle's registered constants)."""
    for particle in PARTICLES:
        inputs = noiseless(particle).preprocess(cases["noisy_voxels"] * 1e5, cases["incident_energies_gev"] * 1e3,
                                                0, noise=False)
        for key, expected in (("shower_x", "x"), ("shower_c", "y"), ("energy_x", "u"), ("energy_c", "c")):
            assert_matches(inputs[key], cases[expected])


def test_inverse_preprocessing_of_the_same_showers(cases):
    """Back from the preprocessed coordinates: the Flow-I u-space to the (noisy) layer energies, and the Flow-II
    logits with those layer energies to voxels in MeV (the reference's `transform_to_energy`, then its save-time clamp
    and 0.01 MeV threshold, which removes the empty voxels' noise)."""
    model = noiseless()
    energy = cases["incident_energies_gev"] * 1e3 / model.config.energy_unit_mev
    fractions = inverse_logit_transform(cases["u"], model.config.logit_alpha)
    assert_matches(energies_from_fractions(fractions, energy, model.config.u0_factor), cases["layer_energies"])
    assert_matches(model.showers_from_layers(cases["x"], cases["layer_energies"]), cases["x_saved_mev"])


def test_student_generation_chain_from_the_same_noise(student, cases):
    """Flow-I -> layer energies -> Flow-II (student, one pass) -> showers in MeV as the reference saves them, from
    its recorded noise; the Flow-I layer energies alone too. (The teacher's chain differs only in Flow-II, whose
    samples from the same noise are compared above.)"""
    energies = cases["incident_energies_gev"] * 1e3
    showers = student.showers_from_noise(energies, cases["student_energy_noise"], cases["student_shower_noise"])
    assert_matches(showers, cases["student_showers_mev"])
    energy = energies / student.config.energy_unit_mev
    unit = student.energy_flow.sample_from_noise(cases["student_energy_noise"], student.energy_condition(energy))
    layers = energies_from_fractions(inverse_logit_transform(unit, 1e-6), energy, student.config.u0_factor)
    assert_matches(layers, cases["student_layer_energies"][:, :3])
    assert_matches(cases["student_saved_energy_gev"], cases["incident_energies_gev"])


def test_calozoo_import_of_the_reference_student(tmp_path, cases):
    """`calozoo import` of the reference's student and Flow-I state_dicts (.npz, no PyTorch): an artifact whose card
    names the CaloGAN reference and which reproduces the student's samples; a DS1 Flow-II given for a CaloGAN name
    stops with one error line and writes nothing."""
    import calozoo
    from tests.reference.test_caloflow_reference import FIXTURES as DS1_FIXTURES
    from tests.reference.test_import_checkpoint import assert_one_error_and_no_artifact, invoke

    name = "caloflow-calogan-gamma-student"
    result = invoke(name, FIXTURES / "student.npz", "--energy-flow", FIXTURES / "energy_flow.npz", "--output",
                    tmp_path)
    assert result.exit_code == 0, result.output
    directory = tmp_path / name / "v1"
    card = (directory / "MODEL_CARD.md").read_text()
    assert "Origin: imported" in card and CALOGAN_REFERENCE_COMMIT in card and "Ian-Pang/AD_with_CF" in card
    model = calozoo.load(directory)
    assert (model.config.dataset, model.config.role, model.config.hidden) == ("calogan-gamma", "student", 5)
    assert_matches(model.shower_flow.to_data(cases["noise"], cases["y"]).output, cases["student_samples"])
    wrong = invoke("caloflow-calogan-eplus-teacher", DS1_FIXTURES / "teacher.npz", "--energy-flow",
                   FIXTURES / "energy_flow.npz", "--output", tmp_path / "bad")
    assert_one_error_and_no_artifact(wrong, "368 features and 6 conditions; dataset calogan-eplus needs 504",
                                     tmp_path / "bad")
