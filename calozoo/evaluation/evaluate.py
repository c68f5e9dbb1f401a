"""`evaluate()`: the CaloChallenge evaluation of a generated shower file against a reference file, written as
JSON + a one-page Markdown report with plots.

The output directory is filled under a temporary name next to it and renamed at the very end, so a bad input or a
crash never leaves a partial report behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from calozoo.data.files import read_showers, validate_incident_energies, validate_showers
from calozoo.data.geometry import (
    DATASET_NAMES,
    Geometry,
    check_incident_energy_range,
    geometry_for_voxels,
    load_geometry,
)
from calozoo.errors import CalozooError, ShowerFileError
from calozoo.evaluation import classifiers, distances, plots, shape
from calozoo.evaluation.features import compute_features, high_level_vector, layer_energy_correlation, threshold_showers
from calozoo.evaluation.separation import (
    feature_group,
    histogram_edges,
    histogram_values,
    separation_power,
    separation_powers_from_features,
    summarize_separation,
    voxel_energy_counts,
)

__all__ = ["evaluate", "MODES", "parse_modes", "summary_rows", "render_report"]

CHALLENGE_MODES = ("hist", "avg", "cls-low", "cls-low-normed", "cls-high", "cls-hgb", "fpd", "prdc")
# The CaloFlow classifier paper's metrics (calozoo.evaluation.calogan), for any geometry; "seed" runs all three.
SEED_MODES = ("cls-seed", "cls-seed-normed", "nn")
# The CaloPointFlow seed's point-cloud shape diagnostics (calozoo.evaluation.shape), not part of "all".
SHAPE_MODES = ("shape",)
MODES = CHALLENGE_MODES + SEED_MODES + SHAPE_MODES
_CLASSIFIER_MODES = ("cls-low", "cls-low-normed", "cls-high", "cls-hgb", "cls-seed", "cls-seed-normed")
_ALIASES = {"kpd": ("fpd",), "all": CHALLENGE_MODES, "seed": SEED_MODES}


def parse_modes(modes: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Modes from a comma list ("hist,cls-high") or a sequence; "all" means every CaloChallenge mode, "seed" the
    CaloFlow classifier paper's modes (cls-seed, cls-seed-normed, nn), "kpd" means "fpd"; "shape" (the point-cloud
    shape diagnostics) is only run when named."""
    names = [m.strip() for m in modes.split(",")] if isinstance(modes, str) else list(modes)
    chosen = []
    for name in names:
        if not name:
            continue
        for mode in _ALIASES.get(name, (name,)):
            if mode not in MODES:
                raise ValueError(f"Unknown evaluation mode '{name}'; "
                                 f"choose from {', '.join(MODES + ('kpd', 'all', 'seed'))} (comma-separated).")
            if mode not in chosen:
                chosen.append(mode)
    if not chosen:
        raise ValueError(f"No evaluation mode given; choose from {', '.join(MODES + ('all',))}.")
    return tuple(mode for mode in MODES if mode in chosen)


def _load(sample, role: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(energies (N, 1) float64, showers (N, V), description) from a file path or an (energies, showers) pair."""
    if isinstance(sample, (str, os.PathLike)):
        energies, showers = read_showers(sample)
        return energies, showers, str(sample)
    try:
        energies, showers = sample
    except (TypeError, ValueError):
        raise ValueError(f"The {role} sample must be a file path or an (energies, showers) pair; "
                         f"got {type(sample).__name__}.") from None
    energies = validate_incident_energies(energies, f"{role} incident energies")
    showers = validate_showers(showers, where=f"{role} showers")
    if len(energies) != len(showers):
        raise ShowerFileError(f"{role}: {len(energies)} incident energies but {len(showers)} showers.")
    return energies, showers, f"<{role} array>"


def reference_label(reference) -> str:
    """How plots name the reference sample: 'GEANT4', or 'Reference (synthetic)' for a file labelled synthetic."""
    if isinstance(reference, (str, os.PathLike)):
        import h5py

        try:
            with h5py.File(reference, "r") as handle:
                if bool(handle.attrs.get("synthetic", False)):
                    return "Reference (synthetic)"
        except OSError:
            pass
    return "GEANT4"


def _check_voxels(showers: np.ndarray, geometry: Geometry, role: str, source: str) -> None:
    n_voxels = showers.shape[1]
    if n_voxels == geometry.n_voxels:
        return
    try:
        guess = f" (that is dataset {geometry_for_voxels(n_voxels).name})"
    except ValueError:
        guess = ""
    raise ShowerFileError(f"{role} file {source} has {n_voxels} voxels per shower{guess}, but dataset "
                          f"'{geometry.name}' has {geometry.n_voxels}; pass the matching -d / dataset.")


def _equal_counts(gen, ref, modes, equalize: bool):
    """Both samples cut to the same length (first rows) if `equalize`, else an error when a classifier needs it."""
    (gen_e, gen_s), (ref_e, ref_s) = gen, ref
    if len(gen_e) == len(ref_e) or not any(m in _CLASSIFIER_MODES for m in modes):
        return gen, ref
    if not equalize:
        raise ValueError(f"The classifier modes need as many generated as reference showers; got {len(gen_e)} "
                         f"generated and {len(ref_e)} reference. Pass files with equal counts, or --equalize / "
                         f"equalize=True to use the first {min(len(gen_e), len(ref_e))} showers of each.")
    n = min(len(gen_e), len(ref_e))
    return (gen_e[:n], gen_s[:n]), (ref_e[:n], ref_s[:n])


def _prepare_output(output_dir) -> tuple[Path, Path] | tuple[None, None]:
    """(final directory, temporary directory beside it), checked before any long computation."""
    if output_dir is None:
        return None, None
    final = Path(output_dir)
    if final.exists() and (not final.is_dir() or any(final.iterdir())):
        raise CalozooError(f"Output directory {final} already exists and is not empty; choose a new -o / output_dir "
                           f"or remove it.")
    parent = final.resolve().parent
    if not parent.is_dir():
        raise CalozooError(f"Output directory {final}: its parent {parent} does not exist; create it first.")
    return final, Path(tempfile.mkdtemp(dir=parent, prefix=f".{final.name}.", suffix=".tmp"))


def _mean_thresholded(showers: np.ndarray, geometry: Geometry, chunk: int = 2000) -> np.ndarray:
    total = np.zeros(showers.shape[1])
    for start in range(0, len(showers), chunk):
        total += threshold_showers(showers[start : start + chunk], geometry.evaluation_threshold_mev).sum(axis=0)
    return total / len(showers)


class _Run:
    """Shared state of one evaluation: samples, geometry, settings, lazily computed features, results, plots."""

    def __init__(self, gen, ref, geometry: Geometry, settings, repeats: int, seed: int, workdir: Path | None,
                 progress: bool, prdc_max_samples: int | None):
        (self.gen_e, self.gen_s), (self.ref_e, self.ref_s) = gen, ref
        self.geometry, self.settings, self.repeats, self.seed = geometry, settings, repeats, seed
        self.workdir, self.progress, self.prdc_max_samples = workdir, progress, prdc_max_samples
        self.plots: list[tuple[str, str]] = []
        self._features = None
        self.reference_label = "GEANT4"

    @property
    def features(self):
        if self._features is None:
            self._features = (compute_features(self.gen_s, self.gen_e, self.geometry),
                              compute_features(self.ref_s, self.ref_e, self.geometry))
        return self._features

    def _plot(self, title: str, filename: str, draw) -> None:
        if self.workdir is not None:
            draw(self.workdir / filename)
            self.plots.append((title, filename))

    def hist(self) -> dict:
        gen, ref = self.features
        threshold = self.geometry.evaluation_threshold_mev
        ref_max = float(self.ref_s.max()) if self.ref_s.size else threshold
        edges = histogram_edges(ref, self.geometry, max(ref_max, threshold))
        powers = separation_powers_from_features(gen, ref, edges)
        voxel_counts = {name: voxel_energy_counts(showers, self.geometry, edges["voxel_energy"])
                        for name, showers in (("gen", self.gen_s), ("ref", self.ref_s))}
        powers["voxel_energy"] = separation_power(voxel_counts["ref"], voxel_counts["gen"])
        gen_corr, ref_corr = layer_energy_correlation(gen.layer_energy), layer_energy_correlation(ref.layer_energy)
        if self.workdir is not None:
            self._hist_plots(edges, powers, voxel_counts, (gen_corr, ref_corr))
        diff = np.abs(gen_corr - ref_corr)
        return {"separation_power": powers, "summary": summarize_separation(powers),
                "layer_energy_correlation": {"mean_abs_difference": float(diff.mean()),
                                             "max_abs_difference": float(diff.max()),
                                             "generated": gen_corr.tolist(), "reference": ref_corr.tolist()}}

    def _hist_plots(self, edges, powers, voxel_counts, correlations) -> None:
        gen, ref = self.features
        per_energy = self.geometry.name.startswith("1-")
        gen_values, ref_values = histogram_values(gen, per_energy), histogram_values(ref, per_energy)
        gen_values["voxel_energy"], ref_values["voxel_energy"] = voxel_counts["gen"], voxel_counts["ref"]
        groups: dict[str, list[str]] = {}
        for key in powers:
            groups.setdefault(feature_group(key), []).append(key)
        for group, keys in groups.items():
            self._plot(f"{group} (separation power in the legend)", f"hist_{group}.png",
                       lambda path: plots.plot_histogram_group(group, keys, edges, gen_values, ref_values, powers,
                                                               path, self.reference_label))
        self._plot("layer-energy correlations", "layer_energy_correlation.png",
                   lambda path: plots.plot_correlations(*correlations, self.geometry.layer_ids, path,
                                                        self.reference_label))

    def avg(self) -> dict:
        gen_mean = _mean_thresholded(self.gen_s, self.geometry)
        ref_mean = _mean_thresholded(self.ref_s, self.geometry)
        self._plot("average shower per layer", "average_shower.png",
                   lambda path: plots.plot_average_showers(gen_mean, ref_mean, self.geometry, path,
                                                           self.reference_label))
        return {"mean_total_energy_generated": float(gen_mean.sum()),
                "mean_total_energy_reference": float(ref_mean.sum())}

    def dnn(self, mode: str) -> dict:
        return classifiers.run_classifier(mode, self.gen_s, self.gen_e, self.ref_s, self.ref_e, self.geometry,
                                          self.settings, self.repeats, self.seed, self.progress)

    def hgb(self) -> dict:
        gen, ref = self.features
        result = classifiers.hgb_auc(high_level_vector(gen, relative_energies=True),
                                     high_level_vector(ref, relative_energies=True), seed=self.seed)
        result["features"] = "cls-high vector with log10(E_layer / E_inc) and log10(E_tot / E_inc)"
        return result

    def fpd(self) -> dict:
        gen, ref = self.features
        gen_vec, ref_vec = high_level_vector(gen), high_level_vector(ref)
        fpd_value, fpd_error = distances.fpd(ref_vec, gen_vec)
        kpd_value, kpd_error = distances.kpd(ref_vec, gen_vec)
        return {"fpd_x1e3": 1e3 * fpd_value, "fpd_error_x1e3": 1e3 * fpd_error, "kpd_x1e3": 1e3 * kpd_value,
                "kpd_error_x1e3": 1e3 * kpd_error, "n_features": int(gen_vec.shape[1])}

    def prdc(self) -> dict:
        threshold = self.geometry.evaluation_threshold_mev
        rng = np.random.default_rng(self.seed)
        samples = []
        for showers in (self.ref_s, self.gen_s):
            # Subsample before the float64 copy: DS3 showers are 40,500 voxels wide.
            if self.prdc_max_samples is not None and len(showers) > self.prdc_max_samples:
                showers = showers[np.sort(rng.permutation(len(showers))[: self.prdc_max_samples])]
            samples.append(distances.prdc_inputs(threshold_showers(showers, threshold)))
        result = distances.prdc(*samples, nearest_k=5, max_samples=None, seed=self.seed)
        result["subsampled"] = len(samples[0]) < len(self.ref_s) or len(samples[1]) < len(self.gen_s)
        result["nearest_k"] = 5
        return result

    def seed_dnn(self, normalise: bool) -> dict:
        from calozoo.evaluation import calogan

        settings = calogan.SEED_FAST_SETTINGS if self.settings.name == "fast" else calogan.SEED_SETTINGS
        runs = [calogan.seed_classifier((self.gen_e, self.gen_s), (self.ref_e, self.ref_s), normalise,
                                        self.geometry.name, settings, seed=self.seed + 1000 * k, progress=self.progress)
                for k in range(self.repeats)]
        aucs, jsds = np.array([r["auc"] for r in runs]), np.array([r["jsd"] for r in runs])
        return {"auc_mean": float(aucs.mean()), "auc_std": float(aucs.std()), "jsd_mean": float(jsds.mean()),
                "jsd_std": float(jsds.std()), "repeats": self.repeats, "settings": dataclasses.asdict(settings),
                "runs": runs}

    def nearest(self) -> dict:
        """Memorisation check against the first half of the reference; the second half plays the unseen showers."""
        from calozoo.evaluation import calogan

        half = len(self.ref_s) // 2
        result = calogan.nearest_neighbours(self.gen_s[: len(self.ref_s) - half], self.ref_s[:half], self.ref_s[half:])
        neighbours = result.pop("nearest_generated")
        if self.workdir is not None and self.geometry.name.startswith("calogan"):
            calogan.plot_nearest_neighbours(self.gen_s, self.ref_s[:half], neighbours,
                                            self.workdir / "nearest_neighbours.png", self.geometry.name)
            self.plots.append(("nearest reference showers", "nearest_neighbours.png"))
        return result

    def shape(self) -> dict:
        """Point-cloud shape diagnostics: separation powers, means, profiles; CSV table and plots when writing."""
        gen = shape.shape_diagnostics(self.gen_s, self.geometry)
        ref = shape.shape_diagnostics(self.ref_s, self.geometry)
        edges = shape.shape_histogram_edges(ref)
        powers, outside = shape.shape_separation(gen, ref, edges)
        table = shape.diagnostics_table(gen, ref, powers, outside)
        if self.workdir is not None:
            shape.write_table_csv(table, self.workdir / "shape_diagnostics.csv")
            self._shape_plots(gen, ref, edges, powers)
        return {"separation_power": powers, "summary": shape.summarize_shape(powers), "diagnostics": table,
                "threshold_mev": ref.threshold_mev, "coordinates": "bin indices (layer id, alpha bin, r bin)",
                "mean_longitudinal_profile": {"generated": gen.longitudinal_profile.mean(axis=0).tolist(),
                                              "reference": ref.longitudinal_profile.mean(axis=0).tolist()},
                "mean_radial_profile": {"generated": gen.radial_profile.mean(axis=0).tolist(),
                                        "reference": ref.radial_profile.mean(axis=0).tolist()}}

    def _shape_plots(self, gen, ref, edges, powers) -> None:
        gen_values, ref_values = gen.histogram_values(), ref.histogram_values()
        for group in ("cov_eigenvalue", "mean", "n_hits"):
            keys = [key for key in powers if shape.shape_group(key) == group]
            self._plot(f"shape: {group} (separation power in the legend)", f"shape_{group}.png",
                       lambda path: plots.plot_histogram_group(group, keys, edges, gen_values, ref_values, powers,
                                                               path, self.reference_label))
        profiles = {"longitudinal": (gen.longitudinal_profile, ref.longitudinal_profile),
                    "radial": (gen.radial_profile, ref.radial_profile)}
        self._plot("shape: mean longitudinal and radial profiles", "shape_profiles.png",
                   lambda path: plots.plot_profiles(profiles, path, self.geometry.layer_ids, self.reference_label))

    def run(self, mode: str) -> dict:
        if mode in ("cls-low", "cls-low-normed", "cls-high"):
            return self.dnn(mode)
        if mode in ("cls-seed", "cls-seed-normed"):
            return self.seed_dnn(mode == "cls-seed-normed")
        if mode == "nn":
            return self.nearest()
        return {"hist": self.hist, "avg": self.avg, "cls-hgb": self.hgb, "fpd": self.fpd, "prdc": self.prdc,
                "shape": self.shape}[mode]()


def summary_rows(results: dict) -> list[tuple[str, str]]:
    """(metric, value) pairs: the short table printed by the command line and shown first in the report."""
    rows = []
    if "hist" in results:
        summary = results["hist"]["summary"]
        rows += [(f"separation power, mean {group}", f"{value:.4f}") for group, value in summary.items()]
        rows.append(("layer-energy correlation, mean abs difference",
                     f"{results['hist']['layer_energy_correlation']['mean_abs_difference']:.4f}"))
    for mode in ("cls-low", "cls-low-normed", "cls-high", "cls-seed", "cls-seed-normed"):
        if mode in results:
            r = results[mode]
            rows.append((f"{mode} AUC ({r['settings']['name']}, {r['repeats']} run(s))",
                         f"{r['auc_mean']:.4f} +- {r['auc_std']:.4f}"))
            rows.append((f"{mode} JSD", f"{r['jsd_mean']:.4f} +- {r['jsd_std']:.4f}"))
    if "cls-hgb" in results:
        r = results["cls-hgb"]
        rows.append((f"cls-hgb AUC ({r['n_folds']}-fold)", f"{r['auc_mean']:.4f} +- {r['auc_std']:.4f}"))
    if "fpd" in results:
        r = results["fpd"]
        rows.append(("FPD x1e3", f"{r['fpd_x1e3']:.3f} +- {r['fpd_error_x1e3']:.3f}"))
        rows.append(("KPD x1e3", f"{r['kpd_x1e3']:.4f} +- {r['kpd_error_x1e3']:.4f}"))
    if "prdc" in results:
        r = results["prdc"]
        rows += [(f"PRDC {key}", f"{r[key]:.4f}") for key in ("precision", "recall", "density", "coverage")]
    if "nn" in results:
        r = results["nn"]
        rows.append(("nearest-neighbour distance ratio generated / unseen", f"{r['ratio']:.4f}"))
        rows.append(("generated showers that copy a reference shower", str(r["exact_copies"])))
    if "shape" in results:
        rows += [(f"shape separation power, mean {group}", f"{value:.4f}")
                 for group, value in results["shape"]["summary"].items()]
    return rows


def render_report(results: dict, plot_files: list[tuple[str, str]]) -> str:
    """The one-page Markdown report: inputs and settings, every number, and the plots."""
    lines = [f"# CaloChallenge evaluation, dataset {results['dataset']}", "",
             f"- generated: `{results['generated']}` ({results['n_generated']} showers)",
             f"- reference: `{results['reference']}` ({results['n_reference']} showers)",
             f"- modes: {', '.join(results['modes'])}; seed {results['seed']}; voxel threshold "
             f"{results['threshold_mev']:.5g} MeV; classifier settings: {results['classifier_settings']['name']} "
             f"{json.dumps(results['classifier_settings'])}", "",
             "## Summary", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in summary_rows(results)]
    lines += ["", "Wall time per mode (s): " + ", ".join(f"{m} {t:.1f}" for m, t in results["wall_time_s"].items()), ""]
    for mode in ("cls-low", "cls-low-normed", "cls-high", "cls-seed", "cls-seed-normed"):
        if mode in results:
            lines += [f"## {mode}: runs", "", "| run | AUC | JSD | accuracy | AUC uncalibrated | best epoch | split |",
                      "| --- | --- | --- | --- | --- | --- | --- |"]
            lines += [f"| {i} | {r['auc']:.4f} | {r['jsd']:.4f} | {r['accuracy']:.4f} | {r['auc_uncalibrated']:.4f} "
                      f"| {r['best_epoch']} | {r['split']} |" for i, r in enumerate(results[mode]["runs"])]
            lines.append("")
    if "cls-hgb" in results:
        r = results["cls-hgb"]
        lines += ["## cls-hgb", "", f"HistGradientBoostingClassifier on the {r['features']}; fold AUCs "
                  + ", ".join(f"{a:.4f}" for a in r["fold_aucs"]), ""]
    if "prdc" in results:
        r = results["prdc"]
        note = " (random subsets)" if r["subsampled"] else ""
        lines += ["## PRDC", "", f"k = {r['nearest_k']}, {r['n_real']} real and {r['n_fake']} fake showers{note}.", ""]
    if plot_files:
        lines += ["## Plots", ""]
        lines += [f"### {title}\n\n![{title}]({filename})\n" for title, filename in plot_files]
    if "hist" in results:
        lines += ["## Separation power of every histogram", "", "| histogram | separation power |", "| --- | --- |"]
        lines += [f"| {key} | {value:.5f} |" for key, value in results["hist"]["separation_power"].items()]
        lines.append("")
    if "shape" in results:
        lines += ["## Shape diagnostics", "", "Positions in bin indices (layer id, alpha bin, r bin); numbers from "
                  "voxels above the threshold except n_hits (voxels > 0). Also in shape_diagnostics.csv.", "",
                  "| diagnostic | separation power | mean generated | mean reference |", "| --- | --- | --- | --- |"]
        lines += [f"| {key} | {row['separation_power']:.5f} | {row['generated_mean']:.5g} | "
                  f"{row['reference_mean']:.5g} |" for key, row in results["shape"]["diagnostics"].items()]
        lines.append("")
    return "\n".join(lines) + "\n"


def _finish(results: dict, run: _Run, final: Path, workdir: Path) -> None:
    (workdir / "results.json").write_text(json.dumps(results, indent=1))
    (workdir / "report.md").write_text(render_report(results, run.plots))
    if final.exists():
        final.rmdir()   # checked empty in _prepare_output
    os.replace(workdir, final)


def evaluate(generated, reference, dataset: str, modes="all", output_dir=None, repeats: int = 1, fast: bool = False,
             seed: int = 0, equalize: bool = False, progress: bool = True, prdc_max_samples: int | None = 10_000,
             blas_threads: int | None = 1, allow_energy_range: bool = False) -> dict:
    """Evaluates generated showers against reference (GEANT4) showers like the official CaloChallenge script.

    Args:
        generated, reference: a CaloChallenge HDF5 path, or an (energies (N, 1) MeV, showers (N, V) MeV) pair.
        dataset: "1-photons", "1-pions", "2", "3" or "calogan-eplus" / "-gamma" / "-piplus"; the voxel count of both
            samples must match it.
        modes: comma list or sequence of hist, avg, cls-low, cls-low-normed, cls-high, cls-hgb, fpd (= kpd), prdc,
            cls-seed, cls-seed-normed, nn, shape; "all" (every CaloChallenge mode) or "seed" (cls-seed,
            cls-seed-normed, nn). "shape" (point-cloud shape diagnostics, `calozoo.evaluation.shape`) is never
            implied by "all": name it.
        output_dir: if given, results.json, report.md and PNG plots are written there (it must not exist or be
            empty); nothing is written when an error occurs.
        repeats: DNN classifier runs (mean +- std of AUC and JSD).
        fast: small DNN settings (`classifiers.FAST_SETTINGS`) instead of the official 3 x 2048, 50 epochs.
        equalize: when the classifier modes get samples of different sizes, use the first min(N) showers of each
            instead of raising.
        prdc_max_samples: PRDC uses seeded random subsets of at most this many showers per sample (None: all).
        blas_threads: BLAS / OpenMP threads for NumPy, SciPy and sklearn (None: their default). The default of one
            thread avoids busy-waiting thread pools, which made eigendecompositions ~100x slower on a shared,
            oversubscribed 2-core machine. TensorFlow's own thread pool is not affected.
        allow_energy_range: accept incident energies outside the dataset's simulated range (otherwise an
            EnergyRangeError: GeV given for MeV would compare empty histograms).

    Returns:
        A dict with one entry per mode (see report.md for the layout) plus inputs, settings and wall times.

    Example:
        >>> results = evaluate("gen.h5", "ref.h5", "2", modes="hist,cls-hgb", output_dir="eval_out")  # doctest: +SKIP
        >>> results["hist"]["summary"]["all_high_level"]                                             # doctest: +SKIP
    """
    if dataset not in DATASET_NAMES:
        raise ValueError(f"Unknown dataset '{dataset}'; expected one of {', '.join(DATASET_NAMES)}.")
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1; got {repeats}.")
    geometry = load_geometry(dataset)
    chosen = parse_modes(modes)
    if "shape" in chosen:
        shape.check_shape_geometry(geometry)
    gen_e, gen_s, gen_source = _load(generated, "generated")
    ref_e, ref_s, ref_source = _load(reference, "reference")
    _check_voxels(ref_s, geometry, "reference", ref_source)
    _check_voxels(gen_s, geometry, "generated", gen_source)
    if not allow_energy_range:
        check_incident_energy_range(ref_e, dataset, f"reference {ref_source}: incident energies")
        check_incident_energy_range(gen_e, dataset, f"generated {gen_source}: incident energies")
    (gen_e, gen_s), (ref_e, ref_s) = _equal_counts((gen_e, gen_s), (ref_e, ref_s), chosen, equalize)
    final, workdir = _prepare_output(output_dir)
    settings = classifiers.FAST_SETTINGS if fast else classifiers.OFFICIAL_SETTINGS
    run = _Run((gen_e, gen_s), (ref_e, ref_s), geometry, settings, repeats, seed, workdir, progress, prdc_max_samples)
    run.reference_label = reference_label(reference)
    results = {"dataset": dataset, "generated": gen_source, "reference": ref_source, "n_generated": len(gen_e),
               "n_reference": len(ref_e), "modes": list(chosen), "seed": seed, "repeats": repeats,
               "threshold_mev": geometry.evaluation_threshold_mev, "classifier_settings": dataclasses.asdict(settings),
               "wall_time_s": {}}
    try:
        with threadpool_limits(blas_threads):
            for mode in tqdm(chosen, desc="evaluation", disable=not progress):
                start = time.perf_counter()
                results[mode] = run.run(mode)
                results["wall_time_s"][mode] = time.perf_counter() - start
        if workdir is not None:
            _finish(results, run, final, workdir)
    finally:
        if workdir is not None and workdir.exists():
            shutil.rmtree(workdir, ignore_errors=True)
    if final is not None:
        results["output_dir"] = str(final)
    return results
