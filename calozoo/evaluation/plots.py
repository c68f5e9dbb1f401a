"""Evaluation plots (matplotlib, Agg backend, PNG): average showers, feature histograms with their separation
powers, DS1 E_tot/E_inc per energy, layer-energy correlations, mean longitudinal and radial profiles."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from calozoo.data.geometry import Geometry

__all__ = ["plot_average_showers", "plot_histogram_group", "plot_correlations", "plot_profiles", "HISTOGRAM_LABELS"]

HISTOGRAM_LABELS = {
    "etot_einc": "E_tot / E_inc", "etot_einc_per_energy": "E_tot / E_inc", "e_layer": "E_layer [MeV]",
    "ec_eta": "EC_eta [mm]", "ec_phi": "EC_phi [mm]", "width_eta": "width_eta [mm]", "width_phi": "width_phi [mm]",
    "ec_r": "EC_r [mm]", "width_r": "width_r [mm]", "sparsity": "sparsity", "voxel_energy": "voxel energy [MeV]",
    "cov_eigenvalue": "covariance eigenvalue [bin^2]", "mean": "energy-weighted mean [bin index]",
    "n_hits": "number of hits",
}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n_panels: int, panel_size: float = 2.6):
    plt = _pyplot()
    columns = min(n_panels, 9 if n_panels > 20 else 5)
    rows = math.ceil(n_panels / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(panel_size * columns, panel_size * rows), squeeze=False)
    for axis in axes.flat[n_panels:]:
        axis.set_visible(False)
    return plt, figure, axes.flat


def _cartesian_panels(figure, layer, index, rows, columns, ref_mean, gen_mean, log_norm):
    """Reference and generated mean images of one Cartesian layer (x across, y up)."""
    images = [mean[layer.voxel_slice].reshape(layer.shape) for mean in (ref_mean, gen_mean)]
    top = max(1e-1, float(max(image.max() for image in images)))
    for which, (image, label) in enumerate(zip(images, ("reference", "generated"))):
        row, column = divmod(index, columns)
        axis = figure.add_subplot(2 * rows, columns, (2 * row + which) * columns + column + 1)
        mesh = axis.imshow(np.clip(image.T, 1e-2, None), origin="lower", aspect="auto",
                           norm=log_norm(vmin=1e-2, vmax=top), cmap="viridis")
        axis.set_xticks([])
        axis.set_yticks([])
        axis.set_title(f"layer {layer.id} {label}", fontsize=7)
    figure.colorbar(mesh, ax=axis, fraction=0.05, pad=0.05).ax.tick_params(labelsize=5)


def plot_average_showers(gen_mean: np.ndarray, ref_mean: np.ndarray, geometry: Geometry, path: Path) -> Path:
    """Mean energy per voxel, layer by layer, as polar images: reference and generated side by side for each layer
    (log colour scale from 1e-2 MeV, shared per layer)."""
    from matplotlib.colors import LogNorm

    plt = _pyplot()
    n = geometry.n_layers
    columns = min(n, 9 if n > 20 else 5)
    rows = math.ceil(n / columns)
    figure = plt.figure(figsize=(2.4 * columns, 4.6 * rows))
    for index, layer in enumerate(geometry.layers):
        if not hasattr(layer, "r_edges"):  # a Cartesian (CaloGAN) layer: plain images
            _cartesian_panels(figure, layer, index, rows, columns, ref_mean, gen_mean, LogNorm)
            continue
        images = [mean[layer.voxel_slice].reshape(layer.n_alpha, layer.n_r) for mean in (ref_mean, gen_mean)]
        top = max(1e-1, float(max(image.max() for image in images)))
        alpha_edges = np.linspace(-math.pi, math.pi, layer.n_alpha + 1)
        r_edges = np.asarray(layer.r_edges)
        r_plot = np.log1p(r_edges) if geometry.name.startswith("1-") else r_edges   # DS1: log-scaled radius
        for which, (image, label) in enumerate(zip(images, ("reference", "generated"))):
            row, column = divmod(index, columns)
            axis = figure.add_subplot(2 * rows, columns, (2 * row + which) * columns + column + 1, projection="polar")
            mesh = axis.pcolormesh(alpha_edges, r_plot, np.clip(image.T, 1e-2, None),
                                   norm=LogNorm(vmin=1e-2, vmax=top), cmap="viridis")
            axis.set_xticks([])
            axis.set_yticks([])
            axis.set_title(f"layer {layer.id} {label}", fontsize=7)
        figure.colorbar(mesh, ax=axis, fraction=0.05, pad=0.05).ax.tick_params(labelsize=5)
    figure.suptitle("average shower per layer (MeV per voxel)")
    figure.subplots_adjust(left=0.02, right=0.95, bottom=0.02, top=0.95, hspace=0.35, wspace=0.3)
    figure.savefig(path, dpi=70)
    plt.close(figure)
    return path


def plot_histogram_group(group: str, keys: list[str], edges: dict, gen_values: dict, ref_values: dict,
                         powers: dict, path: Path) -> Path:
    """One panel per histogram of a feature group: reference vs generated densities, separation power in the
    legend. Values are histograms counts (for the voxel spectrum) or raw values (everything else)."""
    plt, figure, axes = _grid(len(keys))
    for axis, key in zip(axes, keys):
        bins = edges[key]
        for values, label, filled in ((ref_values[key], "reference", True), (gen_values[key], "generated", False)):
            counts = values if group == "voxel_energy" else np.histogram(values, bins=bins)[0]
            total = counts.sum()
            density = counts / (total * np.diff(bins)) if total > 0 else np.zeros(len(bins) - 1)
            axis.stairs(density, bins, fill=filled, alpha=0.5 if filled else 1.0,
                        label=label if filled else f"generated\nS = {powers.get(key, float('nan')):.4f}")
        if group in ("e_layer", "voxel_energy"):
            axis.set_xscale("log")
            axis.set_yscale("log")
        axis.set_title(key, fontsize=8)
        axis.set_xlabel(HISTOGRAM_LABELS.get(group, group), fontsize=7)
        axis.tick_params(labelsize=6)
        axis.legend(fontsize=6)
    # tight_layout measures every tick label and was half of the plotting time; fixed margins instead
    figure.subplots_adjust(left=0.05, right=0.98, bottom=0.06, top=0.95, hspace=0.55, wspace=0.35)
    figure.savefig(path, dpi=70)
    plt.close(figure)
    return path


def plot_correlations(gen_matrix: np.ndarray, ref_matrix: np.ndarray, layer_ids, path: Path) -> Path:
    """Layer-energy Pearson correlations: reference, generated, and their difference."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 4))
    panels = ((ref_matrix, "reference", -1, 1), (gen_matrix, "generated", -1, 1),
              (gen_matrix - ref_matrix, "generated - reference", -0.5, 0.5))
    for axis, (matrix, title, low, high) in zip(axes, panels):
        image = axis.imshow(matrix, vmin=low, vmax=high, cmap="RdBu_r")
        axis.set_title(title)
        ticks = np.arange(len(layer_ids))[:: max(1, len(layer_ids) // 10)]
        axis.set_xticks(ticks, [str(layer_ids[t]) for t in ticks])
        axis.set_yticks(ticks, [str(layer_ids[t]) for t in ticks])
        figure.colorbar(image, ax=axis, fraction=0.046)
    figure.savefig(path, dpi=70)
    plt.close(figure)
    return path


def plot_profiles(profiles: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, layer_ids=None) -> Path:
    """Mean energy-fraction profiles, generated vs reference, with the ratio generated / reference below each.

    Args:
        profiles: {"longitudinal" / "radial" (title): (generated (N_g, B), reference (N_r, B)) per-shower fractions}.
        layer_ids: tick labels of the longitudinal profile's bins (default 0 .. B - 1).
    """
    plt = _pyplot()
    figure, axes = plt.subplots(2, len(profiles), figsize=(5.5 * len(profiles), 5.5), squeeze=False,
                                gridspec_kw={"height_ratios": [3, 1]})
    for column, (title, (generated, reference)) in enumerate(profiles.items()):
        gen_mean = generated.mean(axis=0) if len(generated) else np.zeros(generated.shape[1])
        ref_mean = reference.mean(axis=0) if len(reference) else np.zeros(reference.shape[1])
        edges = np.arange(len(ref_mean) + 1) - 0.5
        top, bottom = axes[0, column], axes[1, column]
        top.stairs(ref_mean, edges, fill=True, alpha=0.5, label="reference")
        top.stairs(gen_mean, edges, label="generated")
        top.set_yscale("log")
        top.set_ylabel("mean energy fraction")
        top.set_title(f"{title} profile", fontsize=9)
        top.legend(fontsize=7)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref_mean > 0, gen_mean / ref_mean, np.nan)
        bottom.plot(np.arange(len(ref_mean)), ratio, ".")
        bottom.axhline(1.0, color="k", alpha=0.3)
        finite = ratio[np.isfinite(ratio) & (ratio > 0)]
        low, high = (min(0.5, finite.min() / 1.2), max(2.0, finite.max() * 1.2)) if len(finite) else (0.5, 2.0)
        bottom.set_yscale("log")
        bottom.set_ylim(low, high)
        bottom.set_ylabel("gen / ref")
        bottom.set_xlabel("layer" if title == "longitudinal" else "radial bin index")
        if title == "longitudinal" and layer_ids is not None:
            ticks = np.arange(len(layer_ids))[:: max(1, len(layer_ids) // 10)]
            bottom.set_xticks(ticks, [str(layer_ids[t]) for t in ticks])
    figure.subplots_adjust(left=0.08, right=0.98, bottom=0.1, top=0.93, hspace=0.3, wspace=0.25)
    figure.savefig(path, dpi=70)
    plt.close(figure)
    return path
