"""`calozoo evaluate` and `evaluate()`: outputs on small files, and one clear error (no partial output) on bad input."""

import json
import re

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.files import write_showers
from calozoo.evaluation import evaluate
from calozoo.evaluation.evaluate import parse_modes
from calozoo_tools.cli import main
from tests.evaluation.helpers import synthetic_showers


@pytest.fixture
def photon_file(tmp_path):
    path = tmp_path / "photons.h5"
    write_showers(path, *synthetic_showers("1-photons", 200, seed=0))
    return path


def _invoke(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def _assert_one_line_error(result, tmp_path, match, inputs):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("Error:") and match in lines[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs)     # no output dir, no temp dir


def test_identical_files_give_zero_separation_and_chance_auc(photon_file, tmp_path):
    out = tmp_path / "report"
    result = _invoke(photon_file, photon_file, "-d", "1-photons", "-m", "hist,avg,cls-high",
                     "-o", out, "--fast", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert re.search(r"separation power, mean all_high_level\s+0\.0000\n", result.output)
    numbers = json.loads((out / "results.json").read_text())
    assert max(numbers["hist"]["separation_power"].values()) == 0.0
    assert abs(numbers["cls-high"]["auc_mean"] - 0.5) < 0.15
    assert numbers["cls-high"]["settings"]["name"] == "fast"
    report = (out / "report.md").read_text()
    for png in ("average_shower.png", "hist_etot_einc_per_energy.png", "hist_e_layer.png", "hist_width_r.png"):
        assert (out / png).is_file() and f"]({png})" in report
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mismatched_voxel_counts(photon_file, tmp_path):
    pions = tmp_path / "pions.h5"
    write_showers(pions, *synthetic_showers("1-pions", 20, seed=1))
    result = _invoke(pions, photon_file, "-d", "1-photons", "-m", "hist", "-o", tmp_path / "out")
    _assert_one_line_error(result, tmp_path, "generated file", ["photons.h5", "pions.h5"])
    assert "533 voxels per shower (that is dataset 1-pions)" in result.output


def test_wrong_dataset_flag(photon_file, tmp_path):
    result = _invoke(photon_file, photon_file, "-d", "2", "-m", "hist", "-o", tmp_path / "out")
    _assert_one_line_error(result, tmp_path, "but dataset '2' has 6480", ["photons.h5"])


def test_nan_voxels(photon_file, tmp_path):
    energies, showers = synthetic_showers("1-photons", 20, seed=2)
    showers[3, 7] = np.nan
    bad = tmp_path / "nan.h5"
    with h5py.File(bad, "w") as handle:
        handle["incident_energies"], handle["showers"] = energies, showers
    result = _invoke(bad, photon_file, "-d", "1-photons", "-m", "hist", "-o", tmp_path / "out")
    _assert_one_line_error(result, tmp_path, "NaN", ["photons.h5", "nan.h5"])


def test_unequal_counts_need_equalize(photon_file, tmp_path):
    small = tmp_path / "small.h5"
    write_showers(small, *synthetic_showers("1-photons", 100, seed=4))
    result = _invoke(small, photon_file, "-d", "1-photons", "-m", "cls-hgb", "-o", tmp_path / "out")
    _assert_one_line_error(result, tmp_path, "--equalize", ["photons.h5", "small.h5"])
    result = _invoke(small, photon_file, "-d", "1-photons", "-m", "cls-hgb", "-o", tmp_path / "out", "--equalize")
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "out" / "results.json").read_text())["cls-hgb"]["n_per_class"] == 100


def test_bad_mode_and_non_empty_output(photon_file, tmp_path):
    result = _invoke(photon_file, photon_file, "-d", "1-photons", "-m", "hist,chi2", "-o", tmp_path / "out")
    _assert_one_line_error(result, tmp_path, "Unknown evaluation mode 'chi2'", ["photons.h5"])
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = _invoke(photon_file, photon_file, "-d", "1-photons", "-m", "hist", "-o", tmp_path / "full")
    assert result.exit_code != 0 and "not empty" in result.output
    assert [p.name for p in (tmp_path / "full").iterdir()] == ["keep.txt"]


def test_python_api_with_arrays_and_modes():
    assert parse_modes("all") == ("hist", "avg", "cls-low", "cls-low-normed", "cls-high", "cls-hgb", "fpd", "prdc")
    assert parse_modes("kpd,hist") == ("hist", "fpd")
    gen = synthetic_showers("1-pions", 150, seed=5, scale=1.3)
    ref = synthetic_showers("1-pions", 150, seed=6)
    results = evaluate(gen, ref, "1-pions", modes="hist", progress=False)
    assert results["hist"]["summary"]["etot_einc"] > 0.5
    assert "output_dir" not in results
    same = evaluate(ref, ref, "1-pions", modes="fpd,prdc", progress=False)
    assert abs(same["fpd"]["fpd_x1e3"]) < 0.05 and same["fpd"]["n_features"] == 46
    assert same["prdc"]["precision"] == same["prdc"]["coverage"] == 1.0 and not same["prdc"]["subsampled"]
    cut = evaluate(gen, ref, "1-pions", modes="prdc", progress=False, prdc_max_samples=100)["prdc"]
    assert cut["subsampled"] and cut["n_real"] == cut["n_fake"] == 100
