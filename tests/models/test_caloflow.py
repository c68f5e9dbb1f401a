"""CaloFlow DS1: paper parameter counts, preprocessing identities, generation, and tiny real trainings."""

import numpy as np
import pytest
import tensorflow as tf

import calozoo as zoo
from calozoo.data.synthetic import synthetic_dataset
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.preprocessing import energies_from_fractions, energy_fractions
from calozoo.training.caloflow import train_caloflow
from tests.models.helpers import assert_validation_nll_decreases, train_tiny_teacher

# The published counts (MODELS.md 2.2; issue 4): Flow-II and Flow-I.
PAPER = {
    "caloflow-ds1-photon-teacher": (27_945_968, 97_842),
    "caloflow-ds1-photon-student": (56_457_088, 97_842),
    "caloflow-ds1-pion-teacher": (56_962_776, 116_550),
    "caloflow-ds1-pion-student": (53_310_072, 116_550),
}
TINY = dict(hidden=12, num_blocks=2, energy_hidden=8, energy_blocks=2, dropout=0.0)
TINY_TRAINING = {
    "validation_fraction": 0.25,
    "energy_flow": {"batch_size": 64, "schedule": {"name": "constant", "lr": 2e-3}},
    "teacher": {"batch_size": 64, "schedule": {"name": "constant", "lr": 2e-3}},
    "student": {"batch_size": 64, "schedule": {"name": "constant", "lr": 2e-3}},
}


@pytest.mark.parametrize("name", sorted(PAPER))
def test_registered_paper_configurations_have_the_published_parameter_counts(name):
    config = CaloFlowConfig.from_dict(zoo.get_entry(name).config)
    counts = CaloFlow.expected_param_counts(config)
    assert (counts["shower_flow"], counts["energy_flow"]) == PAPER[name]


def test_a_built_paper_student_has_exactly_the_published_count():
    model = zoo.create("caloflow-ds1-photon-student", dtype="float32")
    assert model.shower_flow.num_params == 56_457_088
    assert model.energy_flow.num_params == 97_842


def test_energy_fractions_round_trip():
    rng = np.random.default_rng(0)
    layers = rng.uniform(0.0, 0.8, size=(50, 5))  # u0 < 1: nothing is clamped
    incident = rng.uniform(3.0, 5.0, size=(50, 1))
    fractions = energy_fractions(layers, incident, 2.42)
    back = energies_from_fractions(fractions, incident, 2.42).numpy()
    np.testing.assert_allclose(back, layers, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def photons():
    energies, showers = synthetic_dataset("1-photons", 300, seed=3)
    return energies, showers


def test_preprocessing_is_finite_and_has_the_paper_shapes(photons):
    energies, showers = photons
    model = CaloFlow(CaloFlowConfig(**TINY))
    inputs = model.preprocess(showers, energies, seed=0)
    assert inputs["energy_x"].shape == (300, 5) and inputs["energy_c"].shape == (300, 1)
    assert inputs["shower_x"].shape == (300, 368) and inputs["shower_c"].shape == (300, 6)
    for value in inputs.values():
        assert np.isfinite(value.numpy()).all()
    # log10(3 E_inc / 100 GeV) spans [-2.11, 2.10] for 256 MeV .. 4.19 TeV.
    np.testing.assert_allclose(inputs["energy_c"].numpy(), np.log10(3 * energies / 1e5))


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_generation_shapes_threshold_and_seeds(role):
    model = CaloFlow(CaloFlowConfig(role=role, **TINY))
    energies = np.array([256.0, 4096.0, 65536.0, 4194304.0])
    first = model.generate(energies, seed=7)
    assert first.shape == (4, 368) and first.dtype == np.float32
    assert np.isfinite(first).all() and (first >= 0).all()
    assert not ((first > 0) & (first < 0.01)).any(), "voxels below the 0.01 MeV threshold must be zero"
    np.testing.assert_array_equal(first, model.generate(energies, seed=7))
    assert not np.array_equal(first, model.generate(energies, seed=8))


def test_teacher_log_prob_is_finite(photons):
    energies, showers = photons
    model = CaloFlow(CaloFlowConfig(**TINY))
    log_prob = model.log_prob(showers[:20], energies[:20]).numpy()
    assert log_prob.shape == (20,) and np.isfinite(log_prob).all()
    with pytest.raises(NotImplementedError, match="teacher"):
        CaloFlow(CaloFlowConfig(role="student", **TINY)).log_prob(showers[:2], energies[:2])


@pytest.fixture(scope="module")
def trained_teacher(photons, tmp_path_factory):
    return train_tiny_teacher(CaloFlowConfig(**TINY), photons, tmp_path_factory.mktemp("teacher"), TINY_TRAINING)


def test_teacher_training_reduces_both_losses(trained_teacher):
    _, results = trained_teacher
    assert_validation_nll_decreases(results)
    for part in ("energy_flow", "teacher"):
        history = results[part].history
        assert len(history) == 3 and history[-1]["loss"] < history[0]["loss"], f"{part}: {history}"


def test_student_distillation_reduces_the_loss_and_adopts_the_teacher(photons, trained_teacher, tmp_path):
    energies, showers = photons
    teacher, _ = trained_teacher
    student = CaloFlow(CaloFlowConfig(role="student", permutation_seed=5, **TINY))
    results = train_caloflow(student, showers, energies, tmp_path, teacher=teacher, settings=TINY_TRAINING, epochs=3,
                             progress=False)
    history = results["student"].history
    assert history[-1]["loss"] < history[0]["loss"], history
    for mine, theirs in zip(student.shower_flow.permutations, teacher.shower_flow.permutations):
        np.testing.assert_array_equal(mine.permutation.numpy(), theirs.permutation.numpy())
    for mine, theirs in zip(student.energy_flow.variables, teacher.energy_flow.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_a_student_needs_a_teacher(photons, tmp_path):
    energies, showers = photons
    student = CaloFlow(CaloFlowConfig(role="student", **TINY))
    with pytest.raises(ValueError, match="needs a trained teacher"):
        train_caloflow(student, showers, energies, tmp_path, settings=TINY_TRAINING, epochs=1, progress=False)


def test_float32_sampling_agrees_with_float64():
    """The same base noise through the same weights: float32 generation (the default) stays close to float64."""
    model64 = CaloFlow(CaloFlowConfig(role="student", **TINY))
    model32 = CaloFlow(CaloFlowConfig(role="student", dtype="float32", **TINY))
    for mine, theirs in zip(model32.variables, model64.variables):
        mine.assign(tf.cast(theirs, mine.dtype))
    rng = np.random.default_rng(0)
    noise, condition = rng.normal(size=(16, 368)), rng.uniform(-2.0, 2.0, size=(16, 6))
    x64 = model64.shower_flow.sample_from_noise(noise, condition).numpy()
    x32 = model32.shower_flow.sample_from_noise(noise.astype(np.float32), condition.astype(np.float32)).numpy()
    np.testing.assert_allclose(x32, x64, rtol=1e-3, atol=1e-3)
