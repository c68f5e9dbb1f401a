"""The CaloFlow classifier paper's evaluation: seed DNN inputs and metrics, particle cross-check, memorisation check,
the `seed` modes of `evaluate`, and `calozoo evaluate-calogan` on tiny artifacts."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.synthetic import synthetic_dataset
from calozoo.evaluation import calogan
from calozoo.evaluation.classifiers import ClassifierSettings
from calozoo.evaluation.evaluate import evaluate, parse_modes

TINY_DNN = ClassifierSettings(name="fast", width=32, n_hidden_layers=2, learning_rate=2e-3, batch_size=64, epochs=6,
                              dtype="float32")


@pytest.fixture(scope="module")
def samples():
    """400 synthetic showers each of e+, pi+, and a second independent e+ draw."""
    return {"eplus": synthetic_dataset("calogan-eplus", 400, seed=10),
            "piplus": synthetic_dataset("calogan-piplus", 400, seed=12),
            "eplus-again": synthetic_dataset("calogan-eplus", 400, seed=99)}


def test_seed_inputs_have_508_columns_threshold_and_per_layer_normalisation(samples):
    energies, showers = samples["eplus"]
    showers = showers.copy()
    showers[0, :5] = 0.005  # below the 0.01 MeV threshold
    raw = calogan.seed_classifier_inputs(showers, energies, normalise=False)
    normed = calogan.seed_classifier_inputs(showers, energies, normalise=True)
    assert raw.shape == normed.shape == (400, 508)
    assert (raw[0, :5] == 0).all()
    np.testing.assert_allclose(raw[:, 504], np.log10(energies[:, 0] / 1e5))
    np.testing.assert_allclose(normed[:, 288:432].sum(axis=1), 1.0, rtol=1e-9)
    layer_1 = raw[:, 288:432].sum(axis=1)
    np.testing.assert_allclose(raw[:, 506], np.log10(layer_1 + 1e-8))


def test_seed_settings_are_the_seed_network():
    from calozoo.evaluation.classifiers import _build_network

    assert _build_network(508, calogan.SEED_SETTINGS, seed=0).count_params() == 786_433


def test_seed_classifier_separates_particles_not_two_draws_of_one(samples):
    same = calogan.seed_classifier(samples["eplus-again"], samples["eplus"], False, settings=TINY_DNN)
    different = calogan.seed_classifier(samples["piplus"], samples["eplus"], True, settings=TINY_DNN)
    assert different["auc"] > 0.95 and different["jsd"] > 0.6
    assert same["auc"] < 0.75 and same["input"] == "unnormalised"


def test_seed_table_has_one_row_per_particle_and_input():
    metrics = {"auc": 0.8471, "jsd": 0.3449}
    table = calogan.seed_table({"eplus": {"teacher": {"unnormalised": metrics, "normalised": metrics}}})
    lines = table.splitlines()
    assert lines[0] == "| particle | input | teacher AUC / JSD | student AUC / JSD |"
    assert lines[2] == "| eplus | unnorm. | 0.847 / 0.345 | - |" and lines[3].startswith("| eplus | norm. |")


def test_particle_crosscheck_transfers_between_faithful_sources(samples):
    generated_pion = synthetic_dataset("calogan-piplus", 400, seed=77)
    result = calogan.particle_crosscheck(samples["eplus"], samples["piplus"], samples["eplus-again"], generated_pion,
                                         TINY_DNN)
    for trained_on in ("trained_on_reference", "trained_on_generated"):
        assert result[trained_on]["auc_reference"] > 0.95 and result[trained_on]["auc_generated"] > 0.95


def test_nearest_neighbours_flags_copies_and_not_fresh_showers(samples):
    reference = samples["eplus"][1]
    unseen = samples["eplus-again"][1][:200]
    copies = calogan.nearest_neighbours(reference[:50], reference, unseen)
    assert copies["exact_copies"] == 50 and copies["ratio"] == 0.0
    assert copies["nearest_generated"] == list(range(50))
    fresh = calogan.nearest_neighbours(samples["eplus-again"][1][200:], reference, unseen)
    assert fresh["exact_copies"] == 0 and 0.8 < fresh["ratio"] < 1.25


def test_evaluate_seed_modes_on_calogan_arrays(samples, tmp_path):
    assert parse_modes("seed") == ("cls-seed", "cls-seed-normed", "nn")
    assert "cls-seed" not in parse_modes("all")
    results = evaluate(samples["eplus-again"], samples["eplus"], "calogan-eplus", modes="seed,avg", fast=True,
                       output_dir=tmp_path / "out", progress=False)
    assert 0.3 < results["cls-seed"]["auc_mean"] < 0.8 and results["cls-seed"]["settings"]["name"] == "seed-fast"
    assert results["nn"]["exact_copies"] == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "nearest_neighbours.png" in written and "report.md" in written
    assert "cls-seed-normed AUC" in (tmp_path / "out" / "report.md").read_text()


def _tiny_artifacts(root, data_path, n_showers):
    from calozoo.artifacts import write_artifact
    from calozoo.models.caloflow import CaloFlow, CaloFlowConfig

    metadata = {"training_data": {"heldout_fraction": 0.5, "split_seed": 0, "n_showers": n_showers}}
    for role in ("teacher", "student"):
        config = CaloFlowConfig(dataset="calogan-eplus", role=role, hidden=8, num_blocks=2, energy_hidden=8,
                                energy_blocks=2, u0_factor=1.0, energy_condition_scale=10.0,
                                layer_condition_offset=2.0, max_voxel_mev=1e5)
        write_artifact(CaloFlow(config), root, f"caloflow-calogan-eplus-{role}", "caloflow", config.to_dict(),
                       metadata=metadata, card="tiny test model")


def test_evaluate_calogan_command_on_tiny_artifacts(tmp_path, monkeypatch, samples):
    from calozoo import registry
    from calozoo.data.calogan import write_calogan
    from calozoo.workflow import calogan_evaluation
    from calozoo_tools.cli import main

    data = tmp_path / "eplus.hdf5"
    energies, showers = samples["eplus"]
    write_calogan(data, energies[:240], showers[:240])
    root = tmp_path / "artifacts"
    _tiny_artifacts(root, data, 240)
    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(root))
    monkeypatch.setattr(registry, "artifact_roots", lambda: {"shipped": root, "user": tmp_path / "user"})
    monkeypatch.setattr(calogan_evaluation, "SEED_FAST_SETTINGS", TINY_DNN)
    out = tmp_path / "report"
    result = CliRunner().invoke(main, ["evaluate-calogan", "--data", f"eplus={data}", "--roles", "student", "-n", "100",
                                       "--nll-showers", "20", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert re.search(r"\| eplus \| unnorm\. \| [01]\.\d{3} / -?[01]\.\d{3} \|", result.output), result.output
    assert "student test NLL" in result.output
    saved = json.loads((out / "results.json").read_text())
    assert np.isfinite(saved["table"]["eplus"]["student"]["test_nll"])
    assert (out / "nearest_eplus_student.png").is_file()
    bad = CliRunner().invoke(main, ["evaluate-calogan", "--data", "muon=x.h5", "-o", str(tmp_path / "o2")])
    assert bad.exit_code != 0 and "PARTICLE=FILE" in bad.output
