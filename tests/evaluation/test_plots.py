"""Issue 17, part 6: plots for a talk: 150 dpi PNG + PDF, physics labels with units, ratio panels with statistical
bands, log axes where a quantity spans decades, every layer drawn."""

import numpy as np
import pytest
from PIL import Image

from calozoo.data.geometry import load_geometry
from calozoo.evaluation import plots


@pytest.fixture
def captured(monkeypatch):
    """The figures the plot functions save (still written to disk as PNG and PDF)."""
    figures = []
    original = plots.save_figure

    def keep(figure, path):
        figures.append(figure)
        return original(figure, path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return figures


def _written(path):
    assert path.is_file() and path.with_suffix(".pdf").is_file()
    assert path.with_suffix(".pdf").read_bytes()[:4] == b"%PDF"
    dpi = Image.open(path).info["dpi"]
    assert min(dpi) >= 149.5, dpi


def test_histograms_have_units_ratio_panels_and_log_axes(tmp_path, captured):
    rng = np.random.default_rng(0)
    keys = ["e_layer_0", "e_layer_3"]
    edges = {key: np.logspace(0, 4, 31) for key in keys}
    ref = {key: 10 ** rng.uniform(0, 4, 3000) for key in keys}
    gen = {key: 10 ** rng.uniform(0, 4, 3000) for key in keys}
    path = plots.plot_histogram_group("e_layer", keys, edges, gen, ref, {k: 0.01 for k in keys}, tmp_path / "e.png")
    _written(path)
    axes = captured[0].axes
    tops, ratios = axes[0::2], axes[1::2]
    assert [a.get_title() for a in tops] == ["Layer 0", "Layer 3"]
    assert all(a.get_ylabel() == "Density [1/MeV]" and a.get_xscale() == "log" for a in tops)
    assert all(a.get_ylabel() == "Gen. / G4" and a.get_xlabel().endswith("[MeV]") for a in ratios)
    assert all(a.get_ylim() == (0.5, 1.5) for a in ratios)
    assert "GEANT4" in [t.get_text() for t in tops[0].get_legend().get_texts()]
    assert len(tops[0].patches) >= 4  # GEANT4 fill + hatched band, generated band + line


def test_a_spike_at_zero_gets_a_log_y_axis(tmp_path, captured):
    rng = np.random.default_rng(1)
    widths = lambda: np.where(rng.random(4000) < 0.4, 0.0, rng.gamma(4, 10, 4000))  # noqa: E731
    plots.plot_histogram_group("width_r", ["width_r_2"], {"width_r_2": np.linspace(0, 150, 31)},
                               {"width_r_2": widths()}, {"width_r_2": widths()}, {"width_r_2": 0.01},
                               tmp_path / "w.png")
    top = captured[0].axes[0]
    assert top.get_yscale() == "log"
    assert top.get_ylabel() == "Density [1/mm]" and "[mm]" in captured[0].axes[1].get_xlabel()


def test_physics_titles_and_statistical_errors():
    assert plots.panel_title("etot_einc_E65536") == r"$E_\mathrm{inc}$ = 65.5 GeV"
    assert plots.panel_title("width_r_12") == "Layer 12" and plots.panel_title("cov_eigenvalue_1").startswith("largest")
    density, error = plots.stat_density(np.array([4.0, 16.0]), np.array([0.0, 1.0, 3.0]))
    np.testing.assert_allclose(density, [4 / 20, 16 / 40])
    np.testing.assert_allclose(error, [2 / 20, 4 / 40])


def test_average_showers_draw_every_layer(tmp_path, captured):
    geometry = load_geometry("1-photons")  # layers 0, 3 and 12 have a single angular bin
    mean = np.random.default_rng(2).uniform(0.1, 10.0, geometry.n_voxels)
    _written(plots.plot_average_showers(mean, mean * 1.1, geometry, tmp_path / "avg.png"))
    polar = [a for a in captured[0].axes if a.name == "polar"]
    assert len(polar) == 2 * geometry.n_layers
    for axis in polar:
        assert axis.collections and axis.collections[0].get_array().size > 1, axis.get_title()
    assert polar[0].get_title() == "Layer 0, GEANT4"


def test_profiles_and_correlations(tmp_path, captured):
    rng = np.random.default_rng(3)
    fractions = lambda: rng.dirichlet(np.ones(5), 300)  # noqa: E731
    _written(plots.plot_profiles({"longitudinal": (fractions(), fractions()), "radial": (fractions(), fractions())},
                                 tmp_path / "p.png", layer_ids=[0, 1, 2, 3, 12]))
    labels = [a.get_ylabel() for a in captured[0].axes]
    assert labels.count("Mean energy fraction") == 2 and labels.count("Gen. / G4") == 2
    matrix = np.corrcoef(rng.normal(size=(5, 50)))
    _written(plots.plot_correlations(matrix, matrix, [0, 1, 2, 3, 12], tmp_path / "c.png"))
    assert captured[1].axes[0].get_xlabel() == "Layer $i$"
