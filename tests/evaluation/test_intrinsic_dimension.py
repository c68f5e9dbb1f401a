"""The Levina-Bickel intrinsic-dimension estimator on data of known dimension, and `calozoo intrinsic-dim`."""

import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.files import write_showers
from calozoo.evaluation.intrinsic_dimension import intrinsic_dimension_of_showers, levina_bickel
from calozoo_tools.cli import main


def linear_subspace(n: int, dimension: int, ambient: int, seed: int = 0) -> np.ndarray:
    """n uniform points of a `dimension`-dimensional cube embedded linearly in R^ambient."""
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, dimension)) @ rng.normal(size=(dimension, ambient))


@pytest.mark.parametrize("dimension", [2, 5, 8])
def test_linear_subspaces(dimension):
    estimate = levina_bickel(linear_subspace(3000, dimension, 40, seed=dimension), k=20)
    assert abs(estimate - dimension) < 0.12 * dimension + 0.3, estimate


def test_a_curved_two_dimensional_manifold_in_three_dimensions():
    """A swiss roll: intrinsically 2-d although it fills a 3-d box."""
    rng = np.random.default_rng(1)
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=3000))
    roll = np.stack([t * np.cos(t), 20 * rng.uniform(size=3000), t * np.sin(t)], axis=1)
    assert abs(levina_bickel(roll, k=15) - 2.0) < 0.25


def test_full_dimensional_noise_is_not_mistaken_for_a_manifold():
    points = np.random.default_rng(2).normal(size=(3000, 3))
    assert abs(levina_bickel(points, k=20) - 3.0) < 0.35


def test_the_two_averagings_differ_and_duplicates_are_ignored():
    points = linear_subspace(1000, 4, 12, seed=3)
    mg = levina_bickel(points, k=10)
    lb = levina_bickel(points, k=10, averaging="levina-bickel")
    assert mg != lb and abs(mg - lb) < 1.0
    assert levina_bickel(np.concatenate([points, points[:200]]), k=10) == pytest.approx(mg)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="`k` must be >= 2"):
        levina_bickel(np.zeros((10, 2)) + np.arange(10)[:, None], k=1)
    with pytest.raises(ValueError, match="Need more than k = 20 distinct points; got 5"):
        levina_bickel(np.random.default_rng(0).normal(size=(5, 3)), k=20)
    with pytest.raises(ValueError, match="`averaging` must be"):
        levina_bickel(linear_subspace(50, 2, 3), k=5, averaging="mean")


def test_layer_normalisation_removes_the_energy_scale():
    """Layer shapes from one parameter a, times two random layer energies: 3-d raw, 1-d once layer-normalised."""
    rng = np.random.default_rng(4)
    a, energies = rng.uniform(0.5, 2.0, size=(2000, 1)), rng.uniform(1, 10, size=(2000, 2))
    shapes = np.concatenate([np.ones_like(a), a, a**2, np.ones_like(a), 1 + a, 3 - a], axis=1)
    showers = shapes * np.repeat(energies, 3, axis=1)
    assert abs(intrinsic_dimension_of_showers(showers, layer_sizes=[3, 3], k=15) - 1.0) < 0.2
    assert abs(intrinsic_dimension_of_showers(showers, k=15) - 3.0) < 0.4


def test_the_command_line(tmp_path):
    path = tmp_path / "manifold.h5"
    points = linear_subspace(1500, 3, 368, seed=5)
    write_showers(path, np.full((1500, 1), 1000.0), np.abs(points).astype(np.float32))
    result = CliRunner().invoke(main, ["intrinsic-dim", str(path), "-k", "15", "-n", "1200"])
    assert result.exit_code == 0, result.output
    assert "intrinsic dimension of 1200 showers (k = 15, mackay-ghahramani)" in result.output
    estimate = float(result.output.strip().split(": ")[-1])
    assert 2.0 < estimate < 4.0, result.output
    bad = CliRunner().invoke(main, ["intrinsic-dim", str(path), "--dataset", "1-pions"])
    assert bad.exit_code != 0 and bad.output.strip().splitlines()[-1].startswith("Error:"), bad.output
