"""Point-cloud shape diagnostics: known answers on hand-built showers, a brute-force cross-check, chunking, empty
showers, separation powers, and `calozoo evaluate -m shape` end to end with its errors."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.files import write_showers
from calozoo.data.geometry import load_geometry
from calozoo.evaluation import evaluate
from calozoo.evaluation.shape import (
    shape_diagnostics,
    shape_group,
    shape_histogram_edges,
    shape_separation,
    summarize_shape,
    voxel_bin_positions,
)
from calozoo_tools.cli import main
from tests.evaluation.helpers import synthetic_showers

DS2 = load_geometry("2")


def _ds2_index(z: int, alpha: int, r: int) -> int:
    """Flat DS2 voxel index: 144 voxels per layer, alpha-major (16 alpha x 9 r)."""
    return z * 144 + alpha * 9 + r


def _shower(*voxels) -> np.ndarray:
    """One DS2 shower (1, 6480) with energy MeV at each (z, alpha, r, energy)."""
    shower = np.zeros((1, DS2.n_voxels))
    for z, alpha, r, energy in voxels:
        shower[0, _ds2_index(z, alpha, r)] = energy
    return shower


def test_two_voxels_give_one_eigenvalue_along_their_separation():
    # weights 3/4 and 1/4, separation d = (4, 2, 0): covariance w1 w2 d d^T, eigenvalue 3/16 |d|^2 = 3.75
    d = shape_diagnostics(_shower((0, 0, 0, 30.0), (4, 2, 0, 10.0)), DS2)
    np.testing.assert_allclose(d.means[0], [1.0, 0.5, 0.0], atol=1e-12)
    np.testing.assert_allclose(d.eigenvalues[0], [3.75, 0.0, 0.0], atol=1e-12)


def test_rectangle_gives_sorted_axis_variances():
    # four equal voxels at alpha in {0, 2}, r in {0, 4} of layer 7: var alpha = 1, var r = 4, no covariance
    d = shape_diagnostics(_shower(*[(7, a, r, 5.0) for a in (0, 2) for r in (0, 4)]), DS2)
    np.testing.assert_allclose(d.means[0], [7.0, 1.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(d.eigenvalues[0], [4.0, 1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(d.radial_profile[0, [0, 4]], [0.5, 0.5])
    assert d.longitudinal_profile[0, 7] == 1.0 and d.longitudinal_profile[0].sum() == 1.0


def test_matches_brute_force_weighted_covariance():
    geometry = load_geometry("1-pions")
    _, showers = synthetic_showers("1-pions", 12, seed=5)
    d = shape_diagnostics(showers, geometry, threshold_mev=0.0)
    positions = voxel_bin_positions(geometry)
    for i, shower in enumerate(showers.astype(np.float64)):
        covariance = np.cov(positions.T, aweights=shower, bias=True)
        np.testing.assert_allclose(d.eigenvalues[i], np.sort(np.linalg.eigvalsh(covariance))[::-1], atol=1e-9)
        np.testing.assert_allclose(d.means[i], shower @ positions / shower.sum(), rtol=1e-12)
        radial = np.bincount(positions[:, 2].astype(int), weights=shower) / shower.sum()
        np.testing.assert_allclose(d.radial_profile[i], radial, rtol=1e-12)


def test_hit_counts_with_and_without_threshold():
    threshold = DS2.evaluation_threshold_mev
    showers = _shower((0, 0, 0, threshold / 2), (1, 0, 0, 2 * threshold), (2, 3, 1, 5.0))
    d = shape_diagnostics(showers, DS2)
    assert (int(d.n_hits[0]), int(d.n_hits_above_threshold[0])) == (3, 2)
    assert d.longitudinal_profile[0, 0] == 0.0                       # the sub-threshold voxel does not count
    seed_like = shape_diagnostics(showers, DS2, threshold_mev=0.0)
    assert int(seed_like.n_hits_above_threshold[0]) == 3 and seed_like.longitudinal_profile[0, 0] > 0


def test_empty_and_sub_threshold_showers_are_zero_not_nan():
    showers = np.concatenate([np.zeros((1, DS2.n_voxels)), _shower((3, 3, 3, 1e-3))])
    d = shape_diagnostics(showers, DS2)
    for values in d.histogram_values().values():
        assert np.all(np.isfinite(values))
    assert np.all(d.means == 0) and np.all(d.eigenvalues == 0) and np.all(d.longitudinal_profile == 0)
    assert d.n_hits.tolist() == [0, 1] and d.n_hits_above_threshold.tolist() == [0, 0]


def test_ds3_chunks_equal_one_block():
    geometry = load_geometry("3")
    _, showers = synthetic_showers("3", 24, seed=7)
    whole = shape_diagnostics(showers, geometry, chunk_size=1000)
    chunked = shape_diagnostics(showers, geometry, chunk_size=5)
    for key, values in whole.histogram_values().items():
        np.testing.assert_allclose(chunked.histogram_values()[key], values, rtol=1e-12, atol=1e-12, err_msg=key)
    assert whole.radial_profile.shape == (24, 18) and whole.longitudinal_profile.shape == (24, 45)
    np.testing.assert_allclose(whole.longitudinal_profile.sum(axis=1), 1.0)


def test_bad_geometry_and_shape():
    with pytest.raises(ValueError, match="calogan-eplus"):
        shape_diagnostics(np.zeros((2, 504)), load_geometry("calogan-eplus"))
    with pytest.raises(ValueError, match=r"\(N, 6480\)"):
        shape_diagnostics(np.zeros((2, 368)), DS2)
    with pytest.raises(ValueError, match="Unknown shape diagnostic"):
        shape_group("sparsity_3")
    some = shape_diagnostics(np.ones((2, DS2.n_voxels)), DS2)
    with pytest.raises(ValueError, match="got 0 generated and 2 reference"):
        shape_separation(shape_diagnostics(np.zeros((0, DS2.n_voxels)), DS2), some)


def test_separation_zero_for_same_sample_and_large_for_a_shift():
    _, showers = synthetic_showers("2", 60, seed=1)
    reference = shape_diagnostics(showers, DS2)
    powers, outside = shape_separation(reference, reference)
    assert max(powers.values()) == 0.0 and max(outside.values()) == 0.0
    shifted = np.zeros_like(showers)
    shifted[:, 5 * 144 :] = showers[:, : 40 * 144]                  # every shower 5 layers deeper
    powers, outside = shape_separation(shape_diagnostics(shifted, DS2), reference)
    # every shifted mean_z lies beyond the reference range: dropped, so the histogram is empty and S = 1/2
    assert outside["mean_z"] == 1.0 and powers["mean_z"] == pytest.approx(0.5)
    assert powers["longitudinal_fraction_2"] == pytest.approx(0.5) and powers["mean_r"] < powers["mean_z"]
    summary = summarize_shape(powers)
    assert set(summary) == {"cov_eigenvalue", "mean", "n_hits", "longitudinal_fraction", "radial_fraction",
                            "all_shape"}
    edges = shape_histogram_edges(reference)
    assert np.all(np.diff(edges["n_hits"]) >= 1.0) and edges["mean_z"].shape == (51,)


@pytest.fixture
def ds2_files(tmp_path):
    paths = {}
    for name, seed, scale in (("ref", 0, 1.0), ("gen", 1, 0.5)):
        paths[name] = tmp_path / f"{name}.h5"
        write_showers(paths[name], *synthetic_showers("2", 60, seed=seed, scale=scale))
    return paths


def _invoke(*args):
    return CliRunner().invoke(main, ["evaluate", *map(str, args)])


def test_cli_shape_end_to_end(ds2_files, tmp_path):
    out = tmp_path / "report"
    result = _invoke(ds2_files["gen"], ds2_files["ref"], "-d", "2", "-m", "shape", "-o", out)
    assert result.exit_code == 0, result.output
    assert "shape separation power, mean all_shape" in result.output
    numbers = json.loads((out / "results.json").read_text())["shape"]
    assert (numbers["separation_power"]["cov_eigenvalue_1"] >= 0
            and len(numbers["mean_radial_profile"]["generated"]) == 9)
    csv_lines = (out / "shape_diagnostics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("diagnostic,separation_power") and len(csv_lines) == 1 + 3 + 3 + 2 + 45 + 9
    report = (out / "report.md").read_text()
    for png in ("shape_cov_eigenvalue.png", "shape_mean.png", "shape_n_hits.png", "shape_profiles.png"):
        assert (out / png).is_file() and f"]({png})" in report
    same = evaluate(str(ds2_files["ref"]), str(ds2_files["ref"]), "2", modes="shape", progress=False)
    assert same["shape"]["summary"]["all_shape"] == 0.0


def _assert_one_error_line(result, tmp_path, match, inputs):
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and match in errors[0], result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(inputs)     # no output dir, no temp dir


def test_cli_shape_errors_leave_nothing(ds2_files, tmp_path):
    inputs = ["gen.h5", "ref.h5"]
    calogan = _invoke(ds2_files["gen"], ds2_files["ref"], "-d", "calogan-eplus", "-m", "shape", "-o", tmp_path / "o")
    _assert_one_error_line(calogan, tmp_path, "dataset 'calogan-eplus' has Cartesian cells", inputs)
    assert len(calogan.output.strip().splitlines()) == 1
    photons = tmp_path / "photons.h5"
    write_showers(photons, *synthetic_showers("1-photons", 10, seed=2))
    mismatch = _invoke(photons, ds2_files["ref"], "-d", "2", "-m", "shape", "-o", tmp_path / "o")
    _assert_one_error_line(mismatch, tmp_path, "368 voxels per shower", inputs + ["photons.h5"])
    unknown = _invoke(ds2_files["gen"], ds2_files["ref"], "-d", "7", "-m", "shape", "-o", tmp_path / "o")
    _assert_one_error_line(unknown, tmp_path, "'7' is not one of", inputs + ["photons.h5"])
    with pytest.raises(ValueError, match="Unknown dataset '7'"):
        evaluate(str(ds2_files["gen"]), str(ds2_files["ref"]), "7", modes="shape")
    assert "shape" in CliRunner().invoke(main, ["evaluate", "--help"]).output
