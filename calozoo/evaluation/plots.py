"""Evaluation plots for talks and papers: average showers, feature histograms with a generated / GEANT4 ratio panel and
statistical error bands, DS1 E_tot/E_inc per energy, layer-energy correlations, mean longitudinal and radial profiles.

Every plot is written as PNG (150 dpi) and as PDF next to it, in a HEP style of our own (`HEP_STYLE`: ticks on all
sides pointing in, minor ticks, readable fonts; no extra dependency), with physics names and units on the axes.
"""

from __future__ import annotations

import contextlib
import math
import re
from pathlib import Path

import numpy as np

from calozoo.data.geometry import Geometry

__all__ = ["plot_average_showers", "plot_histogram_group", "plot_correlations", "plot_profiles", "HISTOGRAM_LABELS",
           "HEP_STYLE", "DPI", "save_figure", "panel_title", "stat_density"]

DPI = 150
REFERENCE_COLOUR, GENERATED_COLOUR = "#7f7f7f", "#d62728"

# matplotlib rcParams in the usual HEP look (what mplhep's styles set, without the dependency).
HEP_STYLE = {
    "font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11, "legend.fontsize": 9, "xtick.labelsize": 9,
    "ytick.labelsize": 9, "xtick.direction": "in", "ytick.direction": "in", "xtick.top": True, "ytick.right": True,
    "xtick.minor.visible": True, "ytick.minor.visible": True, "xtick.major.size": 6, "ytick.major.size": 6,
    "xtick.minor.size": 3, "ytick.minor.size": 3, "axes.linewidth": 1.0, "legend.frameon": False,
    "lines.linewidth": 1.6, "mathtext.default": "regular", "savefig.dpi": DPI, "figure.dpi": DPI,
    "axes.formatter.limits": (-3, 4), "axes.formatter.use_mathtext": True,
}

# x-axis label (physics name [unit]) of every histogram group; the unit also goes into the y label.
HISTOGRAM_LABELS = {
    "etot_einc": r"$E_\mathrm{tot}\,/\,E_\mathrm{inc}$", "etot_einc_per_energy": r"$E_\mathrm{tot}\,/\,E_\mathrm{inc}$",
    "e_layer": r"Layer energy $E_\mathrm{layer}$ [MeV]", "ec_eta": r"Energy centre $\langle\eta\rangle$ [mm]",
    "ec_phi": r"Energy centre $\langle\phi\rangle$ [mm]", "width_eta": r"Shower width $\sigma_\eta$ [mm]",
    "width_phi": r"Shower width $\sigma_\phi$ [mm]", "ec_r": r"Energy centre $\langle r\rangle$ [mm]",
    "width_r": r"Shower width $\sigma_r$ [mm]", "sparsity": "Sparsity (fraction of empty voxels)",
    "voxel_energy": "Voxel energy [MeV]", "cov_eigenvalue": r"Covariance eigenvalue [bin$^2$]",
    "mean": "Energy-weighted mean [bin index]", "n_hits": "Number of hit voxels",
}
_UNITS = {"e_layer": "MeV", "voxel_energy": "MeV", "ec_eta": "mm", "ec_phi": "mm", "width_eta": "mm",
          "width_phi": "mm", "ec_r": "mm", "width_r": "mm", "cov_eigenvalue": "bin$^2$", "mean": "bin"}
_LOG_X = ("e_layer", "voxel_energy")
_RATIO_LIMITS = (0.5, 1.5)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def _styled():
    """pyplot inside HEP_STYLE (rc_context: the caller's matplotlib settings are left alone)."""
    plt = _pyplot()
    with plt.rc_context(HEP_STYLE):
        yield plt


def save_figure(figure, path) -> Path:
    """Writes `path` (PNG, 150 dpi) and the same figure as PDF beside it; closes the figure."""
    plt = _pyplot()
    path = Path(path)
    figure.savefig(path, dpi=DPI)
    figure.savefig(path.with_suffix(".pdf"))
    plt.close(figure)
    return path


def _energy_text(mev: float) -> str:
    for unit, scale in (("TeV", 1e6), ("GeV", 1e3)):
        if mev >= scale:
            return f"{mev / scale:.3g} {unit}"
    return f"{mev:.3g} MeV"


def panel_title(key: str) -> str:
    """A physics title for one histogram key: 'e_layer_3' -> 'Layer 3', 'etot_einc_E256' -> 'E_inc = 256 MeV'."""
    if match := re.fullmatch(r"etot_einc_E(\d+)", key):
        return rf"$E_\mathrm{{inc}}$ = {_energy_text(float(match.group(1)))}"
    if match := re.fullmatch(r"[a-z_]+?_(\d+)", key):
        if key.startswith("cov_eigenvalue"):
            return ("largest", "middle", "smallest")[int(match.group(1)) - 1] + " eigenvalue"
        return f"Layer {match.group(1)}"
    return {"etot_einc": "all incident energies", "voxel_energy": "all voxels above threshold",
            "mean_z": "z (layer index)", "mean_alpha": r"$\alpha$ (angular bin)", "mean_r": "r (radial bin)",
            "n_hits": "voxels > 0", "n_hits_above_threshold": "voxels above threshold"}.get(key, key)


def stat_density(counts: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(density, statistical error): counts / (N * bin width) and sqrt(counts) / (N * bin width)."""
    counts = np.asarray(counts, np.float64)
    total, widths = counts.sum(), np.diff(edges)
    if total <= 0:
        return np.zeros(len(widths)), np.zeros(len(widths))
    return counts / (total * widths), np.sqrt(counts) / (total * widths)


def _band(axis, edges, centre, error, colour, label=None):
    """A step line with a shaded +-1 sigma band around it."""
    axis.stairs(centre + error, edges, baseline=np.clip(centre - error, 0, None), fill=True, color=colour, alpha=0.3,
                linewidth=0)
    axis.stairs(centre, edges, color=colour, label=label)


def _filled_with_errors(axis, edges, centre, error, label):
    """The reference: a filled histogram with its +-1 sigma band hatched."""
    axis.stairs(centre, edges, fill=True, color=REFERENCE_COLOUR, alpha=0.35, linewidth=0, label=label)
    axis.stairs(centre + error, edges, baseline=np.clip(centre - error, 0, None), fill=True, facecolor="none",
                edgecolor="#404040", hatch="/////", linewidth=0)


def _ratio_panel(axis, edges, gen, gen_err, ref, ref_err, reference_label="GEANT4") -> None:
    """generated / GEANT4 with the generated statistical band; GEANT4's own relative error as a grey band at 1."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(ref > 0, gen / ref, np.nan)
        ratio_err = np.where(ref > 0, gen_err / ref, np.nan)
        ref_rel = np.where(ref > 0, ref_err / ref, np.nan)
    axis.stairs(1 + ref_rel, edges, baseline=1 - ref_rel, fill=True, facecolor="none", edgecolor="#404040",
                hatch="/////", linewidth=0)
    axis.stairs(ratio + ratio_err, edges, baseline=ratio - ratio_err, fill=True, color=GENERATED_COLOUR, alpha=0.3,
                linewidth=0)
    axis.stairs(ratio, edges, color=GENERATED_COLOUR)
    axis.axhline(1.0, color="k", linewidth=0.8, linestyle="--")
    axis.set_ylim(*_RATIO_LIMITS)
    axis.set_ylabel("Gen. / G4" if reference_label == "GEANT4" else "Gen. / ref.")


def _wants_log_y(*densities) -> bool:
    """Log y when the non-zero content spans more than two decades (e.g. a spike at 0 of empty layers)."""
    positive = np.concatenate([d[d > 0] for d in densities]) if densities else np.array([])
    return len(positive) > 1 and positive.max() / positive.min() > 100


def _histogram_panel(top, bottom, group, key, edges, gen_counts, ref_counts, power, reference_label) -> None:
    ref, ref_err = stat_density(ref_counts, edges)
    gen, gen_err = stat_density(gen_counts, edges)
    _filled_with_errors(top, edges, ref, ref_err, reference_label)
    _band(top, edges, gen, gen_err, GENERATED_COLOUR, label=f"Generated\nS = {power:.3f}")
    unit = _UNITS.get(group)
    top.set_ylabel("Density" + (f" [1/{unit}]" if unit else ""))
    top.set_title(panel_title(key))
    if _wants_log_y(ref, gen):
        top.set_yscale("log")
    else:
        top.set_ylim(0, 1.25 * max(float((ref + ref_err).max(initial=0)), float((gen + gen_err).max(initial=0)), 1e-12))
    top.legend(loc="best")
    _ratio_panel(bottom, edges, gen, gen_err, ref, ref_err, reference_label)
    if group in _LOG_X:
        for axis in (top, bottom):
            axis.set_xscale("log")
    top.tick_params(labelbottom=False)
    bottom.set_xlabel(HISTOGRAM_LABELS.get(group, group))


def _panel_grid(plt, n_panels: int, width: float = 4.0, height: float = 4.2):
    """A figure of n histogram panels, each a main axis over a ratio axis (3 : 1), at most 5 (9 if > 20) columns."""
    columns = min(n_panels, 9 if n_panels > 20 else 5)
    rows = math.ceil(n_panels / columns)
    figure = plt.figure(figsize=(width * columns, height * rows))
    outer = figure.add_gridspec(rows, columns, left=0.9 / (width * columns), right=1 - 0.15 / (width * columns),
                                bottom=0.55 / (height * rows), top=1 - 0.35 / (height * rows), wspace=0.42,
                                hspace=0.42)
    pairs = []
    for index in range(n_panels):
        inner = outer[divmod(index, columns)].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.05)
        top = figure.add_subplot(inner[0])
        pairs.append((top, figure.add_subplot(inner[1], sharex=top)))
    return figure, pairs


def plot_histogram_group(group: str, keys: list[str], edges: dict, gen_values: dict, ref_values: dict,
                         powers: dict, path: Path, reference_label: str = "GEANT4") -> Path:
    """One panel per histogram of a feature group: GEANT4 (filled) vs generated (line) normalised densities with
    statistical error bands, the separation power S in the legend, and a generated / GEANT4 ratio panel below.
    Values are histogram counts (for the voxel spectrum) or raw values (everything else). Writes PNG and PDF."""
    with _styled() as plt:
        figure, pairs = _panel_grid(plt, len(keys))
        for (top, bottom), key in zip(pairs, keys):
            bins = np.asarray(edges[key])
            counts = [values if group == "voxel_energy" else np.histogram(values, bins=bins)[0]
                      for values in (gen_values[key], ref_values[key])]
            _histogram_panel(top, bottom, group, key, bins, counts[0], counts[1], powers.get(key, float("nan")),
                             reference_label)
        return save_figure(figure, path)


def _layer_axes(figure, cell, polar: bool):
    """Two image axes (reference above generated) and a colour-bar axis beside them, inside one grid cell."""
    inner = cell.subgridspec(2, 2, width_ratios=[18, 1], hspace=0.3, wspace=0.08)
    projection = "polar" if polar else None
    images = [figure.add_subplot(inner[row, 0], projection=projection) for row in (0, 1)]
    return images, figure.add_subplot(inner[:, 1])


def _layer_images(layer, ref_mean, gen_mean):
    """(reference, generated) mean images of one layer, (alpha, r) for polar and (x, y) for Cartesian layers; a
    single angular bin is split into 64 sectors (one bin of 2 pi would draw nothing)."""
    if not hasattr(layer, "r_edges"):
        return [mean[layer.voxel_slice].reshape(layer.shape).T for mean in (ref_mean, gen_mean)]
    sectors = layer.n_alpha if layer.n_alpha > 1 else 64
    return [np.repeat(mean[layer.voxel_slice].reshape(layer.n_alpha, layer.n_r), sectors // layer.n_alpha, axis=0)
            for mean in (ref_mean, gen_mean)]


def _draw_layer(axis, layer, image, norm, log_radius):
    if hasattr(layer, "r_edges"):
        alpha_edges = np.linspace(-math.pi, math.pi, image.shape[0] + 1)
        r_edges = np.asarray(layer.r_edges)
        mesh = axis.pcolormesh(alpha_edges, np.log1p(r_edges) if log_radius else r_edges, np.clip(image.T, 1e-2, None),
                               norm=norm, cmap="viridis")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.grid(False)
        return mesh
    mesh = axis.imshow(np.clip(image, 1e-2, None), origin="lower", aspect="auto", norm=norm, cmap="viridis")
    axis.set_xlabel("x cell")
    axis.set_ylabel("y cell")
    return mesh


def plot_average_showers(gen_mean: np.ndarray, ref_mean: np.ndarray, geometry: Geometry, path: Path,
                         reference_label: str = "GEANT4") -> Path:
    """Mean energy per voxel, layer by layer: GEANT4 above generated for each layer (polar images in (alpha, r),
    Cartesian cells for CaloGAN), log colour scale from 1e-2 MeV shared per layer; DS1 radii on a log(1 + r) scale.
    Writes PNG and PDF."""
    from matplotlib.colors import LogNorm

    with _styled() as plt:
        n = geometry.n_layers
        columns = min(n, 9 if n > 20 else 5)
        rows = math.ceil(n / columns)
        width, height = 3.5 * columns, 5.6 * rows + 0.7
        figure = plt.figure(figsize=(width, height))
        outer = figure.add_gridspec(rows, columns, left=0.3 / width if n > 3 else 0.6 / width, right=1 - 0.5 / width,
                                    bottom=0.5 / height, top=1 - 0.8 / height, wspace=0.45, hspace=0.3)
        for index, layer in enumerate(geometry.layers):
            polar = hasattr(layer, "r_edges")
            (top_axis, bottom_axis), bar_axis = _layer_axes(figure, outer[divmod(index, columns)], polar)
            images = _layer_images(layer, ref_mean, gen_mean)
            norm = LogNorm(vmin=1e-2, vmax=max(1e-1, float(max(image.max() for image in images))))
            for axis, image, label in zip((top_axis, bottom_axis), images, (reference_label, "generated")):
                mesh = _draw_layer(axis, layer, image, norm, geometry.name.startswith("1-"))
                axis.set_title(f"Layer {layer.id}, {label}", pad=4)
            figure.colorbar(mesh, cax=bar_axis).set_label("MeV / voxel", fontsize=9)
            bar_axis.tick_params(labelsize=8)
        figure.suptitle(f"Average shower per layer, dataset {geometry.name} (mean energy per voxel [MeV])",
                        y=1 - 0.15 / height, va="top")
        return save_figure(figure, path)


def plot_correlations(gen_matrix: np.ndarray, ref_matrix: np.ndarray, layer_ids, path: Path,
                      reference_label: str = "GEANT4") -> Path:
    """Pearson correlations of the layer energies: GEANT4, generated, and their difference. Writes PNG and PDF."""
    with _styled() as plt:
        figure, axes = plt.subplots(1, 3, figsize=(16, 5.2))
        panels = ((ref_matrix, reference_label, -1, 1, "Correlation"),
                  (gen_matrix, "Generated", -1, 1, "Correlation"),
                  (gen_matrix - ref_matrix, f"Generated $-$ {reference_label}", -0.5, 0.5, "Difference"))
        ticks = np.arange(len(layer_ids))[:: max(1, len(layer_ids) // 10)]
        for axis, (matrix, title, low, high, bar_label) in zip(axes, panels):
            image = axis.imshow(matrix, vmin=low, vmax=high, cmap="RdBu_r", origin="lower")
            axis.set_title(f"{title}: corr($E_i$, $E_j$)")
            axis.set_xticks(ticks, [str(layer_ids[t]) for t in ticks])
            axis.set_yticks(ticks, [str(layer_ids[t]) for t in ticks])
            axis.minorticks_off()
            axis.set_xlabel("Layer $i$")
            axis.set_ylabel("Layer $j$")
            figure.colorbar(image, ax=axis, fraction=0.046).set_label(bar_label)
        figure.subplots_adjust(left=0.05, right=0.95, bottom=0.12, top=0.92, wspace=0.35)
        return save_figure(figure, path)


def _mean_and_error(fractions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if not len(fractions):
        return np.zeros(fractions.shape[1]), np.zeros(fractions.shape[1])
    error = fractions.std(axis=0) / math.sqrt(len(fractions)) if len(fractions) > 1 else np.zeros(fractions.shape[1])
    return fractions.mean(axis=0), error


def plot_profiles(profiles: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, layer_ids=None,
                  reference_label: str = "GEANT4") -> Path:
    """Mean energy-fraction profiles with the standard error of the mean as bands, GEANT4 vs generated, and the
    ratio generated / GEANT4 below each. Writes PNG and PDF.

    Args:
        profiles: {"longitudinal" / "radial" (title): (generated (N_g, B), reference (N_r, B)) per-shower fractions}.
        layer_ids: tick labels of the longitudinal profile's bins (default 0 .. B - 1).
    """
    with _styled() as plt:
        figure, axes = plt.subplots(2, len(profiles), figsize=(6.5 * len(profiles), 6.0), squeeze=False,
                                    gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}, sharex="col")
        for column, (title, (generated, reference)) in enumerate(profiles.items()):
            gen, gen_err = _mean_and_error(generated)
            ref, ref_err = _mean_and_error(reference)
            edges = np.arange(len(ref) + 1) - 0.5
            top, bottom = axes[0, column], axes[1, column]
            _filled_with_errors(top, edges, ref, ref_err, reference_label)
            _band(top, edges, gen, gen_err, GENERATED_COLOUR, label="Generated")
            top.set_yscale("log")
            top.set_ylabel("Mean energy fraction")
            top.set_title(f"{title.capitalize()} profile")
            top.legend()
            top.tick_params(labelbottom=False)
            _ratio_panel(bottom, edges, gen, gen_err, ref, ref_err, reference_label)
            bottom.set_xlabel("Layer" if title == "longitudinal" else "Radial bin index")
            if title == "longitudinal" and layer_ids is not None:
                ticks = np.arange(len(layer_ids))[:: max(1, len(layer_ids) // 10)]
                bottom.set_xticks(ticks, [str(layer_ids[t]) for t in ticks])
        figure.subplots_adjust(left=0.09, right=0.98, bottom=0.1, top=0.94, wspace=0.25)
        return save_figure(figure, path)
