"""CaloFlow v1 (teacher) / v2 (student) on the CaloGAN detector: parameter counts, conditions, generation, training
with gradient accumulation, and export of a tiny model."""

import numpy as np
import pytest

import calozoo as zoo
from calozoo.data.synthetic import synthetic_dataset
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.training.caloflow import train_caloflow
from calozoo.training.schedules import accumulation_schedule, multistep, optimizer_steps_per_epoch
from tests.models.helpers import assert_validation_nll_decreases, train_tiny_teacher

# CALOGAN.md section 3: Flow-I, teacher and student Flow-II (nflows MADE formula).
FLOW1, TEACHER, STUDENT = 79_134, 37_835_280, 50_924_160
PARTICLES = ("eplus", "gamma", "piplus")
TINY = dict(hidden=12, num_blocks=2, energy_hidden=8, energy_blocks=2, dropout=0.0)
TINY_TRAINING = {
    "validation_fraction": 0.25,
    "energy_flow": {"batch_size": 64, "schedule": {"name": "constant", "lr": 2e-3}},
    "teacher": {"batch_size": 64, "schedule": {"name": "constant", "lr": 2e-3}},
    "student": {"batch_size": 32, "schedule": {"name": "multistep", "lr": 2e-3, "milestone_fractions": [0.5],
                                               "gamma": 0.5},
                "accumulation": {"fractions": [0.5], "batches": [2, 3]}},
}


def calogan_config(particle="eplus", role="teacher", **overrides):
    config = dict(zoo.get_entry(f"caloflow-calogan-{particle}-{role}").config)
    return CaloFlowConfig.from_dict({**config, **overrides})


@pytest.mark.parametrize("particle", PARTICLES)
@pytest.mark.parametrize("role, flow2", [("teacher", TEACHER), ("student", STUDENT)])
def test_registered_configurations_have_the_reference_parameter_counts(particle, role, flow2):
    counts = CaloFlow.expected_param_counts(calogan_config(particle, role))
    assert (counts["energy_flow"], counts["shower_flow"]) == (FLOW1, flow2)


def test_a_built_model_matches_the_analytic_count_and_builds_the_paper_flow_one():
    model = CaloFlow(calogan_config(hidden=20, num_blocks=3, dtype="float32"))
    expected = CaloFlow.expected_param_counts(model.config)
    assert model.energy_flow.num_params == FLOW1 == expected["energy_flow"]
    assert model.shower_flow.num_params == expected["shower_flow"]
    assert model.n_voxels == 504 and model.layer_sizes == (288, 144, 72)


def test_permutations_stay_inside_each_layer_and_alternate_inversion_and_shuffle():
    model = CaloFlow(calogan_config(**{**TINY, "num_blocks": 8}))
    permutations = [p.permutation.numpy() for p in model.shower_flow.permutations]
    assert len(permutations) == 7  # the last one is dropped: 4 inversions, 3 shuffles
    bounds = [(0, 288), (288, 432), (432, 504)]
    for index, perm in enumerate(permutations):
        for lo, hi in bounds:
            assert sorted(perm[lo:hi]) == list(range(lo, hi))
        if index % 2 == 0:
            np.testing.assert_array_equal(perm[:288], np.arange(287, -1, -1))
        else:
            assert not np.array_equal(perm[:288], np.arange(287, -1, -1))


@pytest.fixture(scope="module")
def positrons():
    return synthetic_dataset("calogan-eplus", 256, seed=5)


def test_conditions_and_u_space_follow_the_reference(positrons):
    energies, showers = positrons
    model = CaloFlow(calogan_config(**TINY))
    inputs = {k: v.numpy() for k, v in model.preprocess(showers, energies, seed=0, noise=False).items()}
    # Flow-I context log10(E_tot / 10 GeV) in [-1, 1]; Flow-II adds log10(E_k / GeV + 1e-6).
    np.testing.assert_allclose(inputs["energy_c"], np.log10(energies / 1e4), rtol=1e-12)
    assert (np.abs(inputs["energy_c"]) <= 1.0).all()
    layers = model.geometry.layer_energies(showers.astype(np.float64)) + 0.5e-8 * 1e5 * np.array([288, 144, 72])
    np.testing.assert_allclose(inputs["shower_c"][:, 1:], np.log10(layers / 1e3 + 1e-6), rtol=1e-9, atol=1e-9)
    # u-space with factor 1: u0 = sum E_k / E_tot, u1 = E0 / sum, u2 = E1 / (E1 + E2).
    u = 1.0 / (1.0 + np.exp(-inputs["energy_x"]))
    u = (u - 1e-6) / (1.0 - 2e-6)
    np.testing.assert_allclose(u[:, 0], np.clip(layers.sum(1) / energies[:, 0], 0, 1), rtol=1e-6)
    np.testing.assert_allclose(u[:, 1], layers[:, 0] / layers.sum(1), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("role", ["teacher", "student"])
def test_generation_shapes_threshold_clamp_and_seeds(role):
    model = CaloFlow(calogan_config(role=role, **TINY))
    energies = np.array([1e3, 1e4, 5e4, 1e5])
    first = model.generate(energies, seed=3)
    assert first.shape == (4, 504) and first.dtype == np.float32 and np.isfinite(first).all()
    assert (first >= 0).all() and (first <= 1e5).all()
    assert not ((first > 0) & (first < 0.01)).any(), "voxels below 0.01 MeV must be zero"
    assert first.sum(axis=1).max() <= 1e5 * 1.0001  # u0 <= 1: never more than E_tot
    np.testing.assert_array_equal(first, model.generate(energies, seed=3))


def test_accumulation_schedule_and_milestones_count_optimizer_steps():
    accumulation = accumulation_schedule({"fractions": [0.1, 0.4, 0.7], "batches": [2, 4, 8, 16]}, 100)
    assert [accumulation(e) for e in (0, 9, 10, 39, 40, 69, 70, 99)] == [2, 2, 4, 4, 8, 8, 16, 16]
    steps = optimizer_steps_per_epoch(10, 4, accumulation_schedule({"fractions": [0.5], "batches": [2, 3]}, 4))
    assert steps == [5, 5, 4, 4]
    schedule = multistep(1.0, [0.5], 0.5, sum(steps), epoch_steps=steps)
    assert float(schedule(9)) == 1.0 and float(schedule(10)) == 0.5
    with pytest.raises(ValueError, match="one more `batches` entry"):
        accumulation_schedule({"fractions": [0.5], "batches": [2]}, 4)


@pytest.fixture(scope="module")
def trained_teacher(positrons, tmp_path_factory):
    return train_tiny_teacher(calogan_config(**TINY), positrons, tmp_path_factory.mktemp("teacher"), TINY_TRAINING)


def test_teacher_training_reduces_both_losses(trained_teacher):
    assert_validation_nll_decreases(trained_teacher[1])


def test_student_distils_with_gradient_accumulation_and_has_a_sequential_nll(positrons, trained_teacher, tmp_path):
    energies, showers = positrons
    teacher, _ = trained_teacher
    student = CaloFlow(calogan_config(role="student", permutation_seed=3, **TINY))
    before = [v.numpy().copy() for v in student.shower_flow.trainable_variables]
    results = train_caloflow(student, showers, energies, tmp_path, teacher=teacher, settings=TINY_TRAINING, epochs=4,
                             progress=False)
    history = results["student"].history
    assert history[-1]["loss"] < history[0]["loss"], history
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(before, student.shower_flow.trainable_variables))
    with pytest.raises(NotImplementedError):
        student.log_prob(showers[:4], energies[:4])
    nll_student = -student.log_prob(showers[:16], energies[:16], sequential=True).numpy()
    nll_teacher = -teacher.log_prob(showers[:16], energies[:16]).numpy()
    assert nll_student.shape == (16,) and np.isfinite(nll_student).all() and np.isfinite(nll_teacher).all()


def test_export_of_a_tiny_calogan_teacher(tmp_path):
    import tensorflow as tf

    from calozoo.export import export_model

    model = CaloFlow(calogan_config(dtype="float32", **TINY))
    path = export_model(model, tmp_path, "caloflow-calogan-eplus-teacher", warmup=False)
    signatures = tf.saved_model.load(str(path)).signatures
    assert "log_prob" in signatures
    showers = signatures["serving_default"](incident_energies=tf.constant([[2e3], [9e4]], tf.float32))["showers"]
    assert showers.shape == (2, 504) and (showers.numpy() >= 0).all()


def test_training_overrides_change_only_the_named_entries():
    from calozoo.errors import CalozooError
    from calozoo.workflow.recipe import with_training_overrides

    recipe = zoo.get_entry("caloflow-calogan-gamma-student").training
    changed = with_training_overrides(recipe, {"student.schedule.lr": 1e-3, "student.accumulation.batches": [1, 2]})
    assert changed["student"]["schedule"] == {**recipe["student"]["schedule"], "lr": 1e-3}
    assert changed["student"]["accumulation"] == {"fractions": [0.1, 0.4, 0.7], "batches": [1, 2]}
    assert recipe["student"]["schedule"]["lr"] == 1e-4, "the registry's recipe must stay untouched"
    with pytest.raises(CalozooError, match="'teacher' is not a section of the recipe"):
        with_training_overrides(recipe, {"teacher.schedule.lr": 1e-3})
