"""The evaluation of "A Classifier as an Ultimate Metric: The CALOFLOW Example" (docs/calogan.md sections 3 and 4).

- `seed_classifier`: the DNN on voxels (unnormalised, or normalised per layer) telling generated from reference
  showers, isotonic calibration, AUC and JSD (the seed's table, `seed_table`);
- `particle_crosscheck`: a particle classifier (e.g. e+ vs pi+) trained on reference showers and tested on generated
  ones, and the reverse;
- `nearest_neighbours`: the memorisation check, distances of generated showers to their nearest reference shower
  against those of unseen reference showers, with a plot of the pairs (`plot_nearest_neighbours`);
- `test_nll`: the test-set negative log-likelihood of a teacher or (sequentially) a student.

All of it for the trained artifacts: `calozoo.workflow.calogan_evaluation` (`calozoo evaluate-calogan`).

Inputs of the DNN (the seed's DNN-low): the 504 voxels in units of 100 GeV after the 0.01 MeV threshold (or each
layer divided by its energy), log10(E_inc / 100 GeV) and log10(E_k / 100 GeV + 1e-8) of the three layers: 508 values.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from calozoo.data.geometry import load_geometry
from calozoo.evaluation import classifiers
from calozoo.evaluation.classifiers import ClassifierSettings
from calozoo.evaluation.features import threshold_showers

__all__ = ["SEED_SETTINGS", "SEED_FAST_SETTINGS", "seed_classifier_inputs", "seed_classifier", "seed_table",
           "particle_crosscheck", "nearest_neighbours", "plot_nearest_neighbours", "test_nll"]

# The seed's DNN: 508 -> 512 -> 512 -> 512 -> 1, LeakyReLU, Adam 1e-3, batch 1000, 150 epochs (786 433 parameters).
SEED_SETTINGS = ClassifierSettings(name="seed", width=512, n_hidden_layers=3, learning_rate=1e-3, batch_size=1000,
                                   epochs=150, dtype="float32")
# For small CPU runs: a narrower net, smaller batches, few epochs (not the seed's settings).
SEED_FAST_SETTINGS = ClassifierSettings(name="seed-fast", width=128, n_hidden_layers=2, learning_rate=1e-3,
                                        batch_size=256, epochs=15, dtype="float32")
_UNIT_MEV = 1e5  # 100 GeV
_THRESHOLD_MEV = 0.01
_LOG_EPSILON = 1e-8
_INPUT_LABELS = {"unnormalised": "unnorm.", "normalised": "norm."}


def seed_classifier_inputs(showers, energies, normalise: bool, dataset: str = "calogan-eplus") -> np.ndarray:
    """(N, V + 1 + L) float64 rows: voxels (100 GeV units, thresholded at 0.01 MeV; or divided by their layer's
    energy when `normalise`), log10(E_inc / 100 GeV) and log10(E_k / 100 GeV + 1e-8)."""
    geometry = load_geometry(dataset)
    voxels = threshold_showers(showers, _THRESHOLD_MEV) / _UNIT_MEV
    layer_energy = geometry.layer_energies(voxels)
    if normalise:
        voxels = np.concatenate([voxels[:, layer.voxel_slice] / (layer_energy[:, [k]] + 1e-16)
                                 for k, layer in enumerate(geometry.layers)], axis=1)
    log_energy = np.log10(np.asarray(energies, np.float64).reshape(-1, 1) / _UNIT_MEV)
    return np.concatenate([voxels, log_energy, np.log10(layer_energy + _LOG_EPSILON)], axis=1)


def seed_classifier(generated, reference, normalise: bool, dataset: str = "calogan-eplus",
                    settings: ClassifierSettings = SEED_SETTINGS, seed: int = 0, progress: bool = False) -> dict:
    """AUC and JSD of the seed's DNN separating generated from reference showers, calibrated isotonically.

    Args:
        generated, reference: (energies (N, 1) MeV, showers (N, V) MeV) pairs of equal N; split per class
            60 / 20 / 20 % into train / test (model selection, calibration) / validation (the reported numbers).
    Returns:
        `classifiers.classifier_metrics` of the validation split plus training facts and the input mode.
    """
    x_gen = seed_classifier_inputs(generated[1], generated[0], normalise, dataset)
    x_ref = seed_classifier_inputs(reference[1], reference[0], normalise, dataset)
    result = classifiers.train_and_score(x_gen, x_ref, dataset, settings, seed=seed, progress=progress)
    result.update(input="normalised" if normalise else "unnormalised", settings=dataclasses.asdict(settings))
    return result


def seed_table(results: dict, models=("teacher", "student")) -> str:
    """The seed's table as Markdown: one row per particle and input, 'AUC / JSD' per model.

    Args:
        results: {particle: {model: {"unnormalised": metrics, "normalised": metrics}}}.
    """
    lines = ["| particle | input | " + " | ".join(f"{m} AUC / JSD" for m in models) + " |",
             "|---|---|" + "---|" * len(models)]
    for particle, per_model in results.items():
        for mode in ("unnormalised", "normalised"):
            cells = []
            for model in models:
                metrics = per_model.get(model, {}).get(mode)
                cells.append(f"{metrics['auc']:.3f} / {metrics['jsd']:.3f}" if metrics else "-")
            lines.append(f"| {particle} | {_INPUT_LABELS[mode]} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fit(x_train, y_train, x_test, y_test, settings: ClassifierSettings, seed: int):
    rng = np.random.default_rng(seed)
    network = classifiers._build_network(x_train.shape[1], settings, seed=int(rng.integers(2**30)))
    classifiers._train(network, (x_train, y_train), (x_test, y_test), settings, rng, progress=False)
    return network


def _auc(network, x, y, settings) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, classifiers._predict(network, x, settings.dtype)))


def _labelled(first, second, normalise: bool):
    x = np.concatenate([seed_classifier_inputs(first[1], first[0], normalise),
                        seed_classifier_inputs(second[1], second[0], normalise)])
    return x, np.concatenate([np.zeros(len(first[1])), np.ones(len(second[1]))])


def _halves(x, y, rng):
    order = rng.permutation(len(x))
    cut = int(0.7 * len(x))
    return (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])


def particle_crosscheck(reference_a, reference_b, generated_a, generated_b,
                        settings: ClassifierSettings = SEED_FAST_SETTINGS, normalise: bool = False,
                        seed: int = 0) -> dict:
    """A classifier of particle a (label 0) vs particle b (1) trained on one source and tested on both.

    Each source is split 70 / 30 into training and test rows; the test rows of the training source select the
    epoch. If the generated showers are faithful, the AUC on the other source is close to that on the training
    source's own test rows.

    Returns:
        {"trained_on_reference": {"auc_reference", "auc_generated"}, "trained_on_generated": {...}}.
    """
    rng = np.random.default_rng(seed)
    sources = {"reference": _halves(*_labelled(reference_a, reference_b, normalise), rng),
               "generated": _halves(*_labelled(generated_a, generated_b, normalise), rng)}
    result = {}
    for trained_on, ((x_train, y_train), (x_test, y_test)) in sources.items():
        network = _fit(x_train, y_train, x_test, y_test, settings, seed)
        result[f"trained_on_{trained_on}"] = {f"auc_{name}": _auc(network, test[0], test[1], settings)
                                               for name, (_, test) in sources.items()}
    return result


def _shape_vectors(showers) -> np.ndarray:
    """sqrt of the thresholded voxel energies (GeV^0.5): a distance that the many small voxels also shape."""
    return np.sqrt(threshold_showers(showers, _THRESHOLD_MEV) / 1e3)


def nearest_neighbours(generated_showers, reference_showers, unseen_showers) -> dict:
    """The memorisation check: distance of each generated shower to its nearest `reference_showers` shower (the
    model's training showers), against the same distance for `unseen_showers` (reference showers it never saw).

    Distances are Euclidean on sqrt(voxel energy / GeV) after the 0.01 MeV threshold. A model that copies its
    training showers has a `ratio` (median generated / median unseen distance) far below 1 and `exact_copies`
    (generated showers at distance < 1e-6) above 0.

    Returns:
        {"median_distance_generated", "median_distance_unseen", "ratio", "exact_copies", "n_generated",
         "n_reference", "nearest_generated": reference row of each generated shower's neighbour}.
    """
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=1, algorithm="brute").fit(_shape_vectors(reference_showers))
    gen_distance, gen_neighbour = index.kneighbors(_shape_vectors(generated_showers))
    unseen_distance, _ = index.kneighbors(_shape_vectors(unseen_showers))
    median_gen, median_unseen = float(np.median(gen_distance)), float(np.median(unseen_distance))
    return {"median_distance_generated": median_gen, "median_distance_unseen": median_unseen,
            "ratio": median_gen / median_unseen if median_unseen > 0 else math.inf,
            "exact_copies": int((gen_distance[:, 0] < 1e-6).sum()), "n_generated": len(gen_distance),
            "n_reference": len(reference_showers), "nearest_generated": gen_neighbour[:, 0].tolist()}


def plot_nearest_neighbours(generated_showers, reference_showers, neighbours, path, dataset: str = "calogan-eplus",
                            n_examples: int = 4) -> Path:
    """Generated showers (rows) next to their nearest reference shower, the three CaloGAN layers each (log colour
    of the cell energy in MeV); PNG at 150 dpi and PDF, in the HEP style of calozoo.evaluation.plots."""
    from matplotlib.colors import LogNorm

    from calozoo.evaluation.plots import _styled, save_figure

    geometry = load_geometry(dataset)
    n = min(n_examples, len(generated_showers))
    with _styled() as plt:
        figure, axes = plt.subplots(n, 2 * geometry.n_layers, figsize=(2.4 * 2 * geometry.n_layers, 2.3 * n + 0.6),
                                    squeeze=False)
        for row in range(n):
            pair = (generated_showers[row], reference_showers[neighbours[row]])
            for which, (shower, label) in enumerate(zip(pair, ("Generated", "Nearest reference"))):
                for k, layer in enumerate(geometry.layers):
                    axis = axes[row, which * geometry.n_layers + k]
                    image = np.clip(np.asarray(shower[layer.voxel_slice], np.float64).reshape(layer.shape), 1e-2, None)
                    mesh = axis.imshow(image.T, origin="lower", aspect="auto",
                                       norm=LogNorm(vmin=1e-2, vmax=max(1.0, image.max())))
                    axis.set_xticks([])
                    axis.set_yticks([])
                    axis.minorticks_off()
                    if row == 0:
                        axis.set_title(f"{label}\nlayer {layer.id}", fontsize=10)
            figure.colorbar(mesh, ax=axes[row, -1], fraction=0.08).set_label("MeV", fontsize=8)
        figure.suptitle(f"{dataset}: generated showers and their nearest reference shower (cell energy [MeV])")
        figure.subplots_adjust(left=0.02, right=0.95, bottom=0.02, top=1 - 1.2 / (2.3 * n + 0.6), wspace=0.1,
                               hspace=0.15)
        return save_figure(figure, Path(path))


def test_nll(model, showers, energies, batch_size: int = 1000, seed: int = 0) -> float:
    """Mean -log p per shower (Flow-I + Flow-II, preprocessed coordinates) on test showers; a student's density is
    computed with its sequential (D passes per block) direction."""
    import tensorflow as tf

    energies = np.asarray(energies, np.float64).reshape(-1, 1)
    sequential = not model.has_density
    # A graph: the student's D-step while loops would run op by op in eager mode (minutes instead of seconds).
    log_prob = lambda x, e, s: model.log_prob(x, e, seed=s, sequential=sequential)  # noqa: E731
    if sequential:
        log_prob = tf.function(log_prob, reduce_retracing=True)
    parts = [log_prob(tf.constant(showers[i : i + batch_size]), tf.constant(energies[i : i + batch_size]),
                      tf.constant(seed + i, tf.int32)).numpy() for i in range(0, len(energies), batch_size)]
    return float(-np.mean(np.concatenate(parts)))


test_nll.__test__ = False  # not a pytest test
