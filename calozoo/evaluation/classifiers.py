"""Binary classifiers that tell generated from reference showers (docs/evaluation.md section 4), plus a
gradient-boosting cross-check.

The DNN follows the official script: labels generated = 0 and reference = 1; an MLP of `n_hidden_layers` x `width`
units with LeakyReLU(0.01) and PyTorch's default Linear initialisation; BCE on logits, Adam (lr 2e-4, eps 1e-8), batch
1000, 50 epochs; the weights with the best *test* accuracy are kept (early stop at test accuracy 1.0); isotonic
regression fitted on the test split calibrates the *validation* predictions, on which AUC and JSD are reported.
Unlike the official script every random choice here is seeded.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from tqdm.auto import tqdm

from calozoo.data.geometry import Geometry
from calozoo.evaluation.features import classifier_inputs

__all__ = [
    "ClassifierSettings",
    "OFFICIAL_SETTINGS",
    "FAST_SETTINGS",
    "split_sizes",
    "train_and_score",
    "classifier_metrics",
    "run_classifier",
    "hgb_auc",
]

# Events per class in the official split (train, test, validation), docs/evaluation.md section 4.
_OFFICIAL_SPLITS = {"1-photons": (80_000, 20_000, 21_000), "1-pions": (80_000, 20_000, 20_800),
                    "2": (60_000, 20_000, 20_000), "3": (60_000, 20_000, 20_000),
                    # The seed's CaloGAN classifier: 60k / 20k / 20k per class (docs/calogan.md section 3.1).
                    **{name: (60_000, 20_000, 20_000) for name in ("calogan-eplus", "calogan-gamma", "calogan-piplus")}}
_CALIBRATION_BOUNDS = (1e-6, 1.0 - 1e-6)


@dataclasses.dataclass(frozen=True)
class ClassifierSettings:
    """Network and training settings of the DNN classifier.

    Attributes:
        name: "official" or "fast" (a label for the report).
        width: units per hidden layer; n_hidden_layers: number of hidden layers.
        learning_rate, batch_size, epochs: Adam and loop settings.
        dtype: "float64" (like the official PyTorch script) or "float32" (about twice as fast on CPU).
    """

    name: str = "official"
    width: int = 2048
    n_hidden_layers: int = 3
    learning_rate: float = 2e-4
    batch_size: int = 1000
    epochs: int = 50
    dtype: str = "float64"

    def __post_init__(self):
        for field in ("width", "n_hidden_layers", "batch_size", "epochs"):
            if getattr(self, field) < 1:
                raise ValueError(f"ClassifierSettings.{field} must be >= 1; got {getattr(self, field)}.")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"ClassifierSettings.dtype must be 'float32' or 'float64'; got '{self.dtype}'.")


OFFICIAL_SETTINGS = ClassifierSettings()
# Small CPU runs: a narrower network, smaller batches (so small samples still get many steps), fewer epochs.
FAST_SETTINGS = ClassifierSettings(name="fast", width=256, n_hidden_layers=3, learning_rate=5e-4, batch_size=128,
                                   epochs=15, dtype="float32")


def split_sizes(n_per_class: int, dataset: str) -> tuple[int, int, int]:
    """(train, test, validation) events per class: the official proportions of `dataset` scaled to `n_per_class`."""
    if dataset not in _OFFICIAL_SPLITS:
        raise ValueError(f"Unknown dataset '{dataset}'; expected one of {', '.join(_OFFICIAL_SPLITS)}.")
    official = np.asarray(_OFFICIAL_SPLITS[dataset], np.float64)
    n_train, n_test = (int(round(n_per_class * f)) for f in official[:2] / official.sum())
    n_val = n_per_class - n_train - n_test
    if min(n_train, n_test, n_val) < 5:
        raise ValueError(f"{n_per_class} showers per class are too few for a train/test/validation split "
                         f"({n_train}/{n_test}/{n_val}); pass at least 50 showers per file.")
    return n_train, n_test, n_val


def _split(x_gen: np.ndarray, x_ref: np.ndarray, dataset: str, rng: np.random.Generator):
    """Shuffle each class, split it, merge the classes per split and shuffle again: [(x, y)] x 3."""
    sizes = split_sizes(len(x_gen), dataset)
    bounds = np.cumsum((0,) + sizes)
    gen_order, ref_order = rng.permutation(len(x_gen)), rng.permutation(len(x_ref))
    splits = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        x = np.concatenate([x_gen[gen_order[lo:hi]], x_ref[ref_order[lo:hi]]])
        y = np.concatenate([np.zeros(hi - lo), np.ones(hi - lo)])
        order = rng.permutation(len(x))
        splits.append((x[order], y[order]))
    return splits


def _build_network(n_inputs: int, settings: ClassifierSettings, seed: int):
    """MLP with PyTorch's default Linear init: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    import tf_keras

    layers, fan_in = [tf_keras.Input((n_inputs,), dtype=settings.dtype)], n_inputs
    for index in range(settings.n_hidden_layers + 1):
        last = index == settings.n_hidden_layers
        bound = 1.0 / math.sqrt(fan_in)
        layers.append(tf_keras.layers.Dense(
            1 if last else settings.width, dtype=settings.dtype,
            kernel_initializer=tf_keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", seed=seed + index),
            bias_initializer=tf_keras.initializers.RandomUniform(-bound, bound, seed=seed + 100 + index)))
        if not last:
            layers.append(tf_keras.layers.LeakyReLU(alpha=0.01, dtype=settings.dtype))
        fan_in = settings.width
    return tf_keras.Sequential(layers)


def _predict(network, x: np.ndarray, dtype: str, batch: int = 5000) -> np.ndarray:
    import tensorflow as tf

    logits = [network(tf.constant(x[i : i + batch], dtype), training=False).numpy()[:, 0]
              for i in range(0, len(x), batch)]
    return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))


def _train(network, train, test, settings: ClassifierSettings, rng: np.random.Generator, progress: bool):
    """Trains in place; returns (best test accuracy, best epoch, epochs run) with the best weights loaded."""
    import tensorflow as tf
    import tf_keras

    optimizer = tf_keras.optimizers.Adam(learning_rate=settings.learning_rate, epsilon=1e-8)
    loss_fn = tf_keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, network(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, network.trainable_variables), network.trainable_variables))

    x_train, y_train = train
    best = (-1.0, 0, None)
    epochs_run = 0
    for epoch in tqdm(range(settings.epochs), desc="classifier epochs", disable=not progress, leave=False):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            step(tf.constant(x_train[batch], settings.dtype), tf.constant(y_train[batch, None], settings.dtype))
        epochs_run = epoch + 1
        accuracy = float(np.mean((_predict(network, test[0], settings.dtype) > 0.5) == test[1]))
        if accuracy > best[0]:
            best = (accuracy, epoch + 1, network.get_weights())
        if accuracy == 1.0:
            break
    network.set_weights(best[2])
    return best[0], best[1], epochs_run


def classifier_metrics(p_test: np.ndarray, y_test: np.ndarray, p_val: np.ndarray, y_val: np.ndarray) -> dict:
    """Calibrated validation metrics: isotonic regression fitted on (p_test, y_test), applied to p_val.

    Returns:
        {"auc", "jsd", "accuracy"} from the calibrated probabilities, and "auc_uncalibrated", "accuracy_uncalibrated".
        JSD = (ln 2 - mean BCE) / ln 2, in [0, 1] for an optimal classifier.
    """
    from sklearn.isotonic import IsotonicRegression
    from sklearn.metrics import roc_auc_score

    calibrator = IsotonicRegression(y_min=_CALIBRATION_BOUNDS[0], y_max=_CALIBRATION_BOUNDS[1], out_of_bounds="clip")
    calibrator.fit(p_test, y_test)
    p_cal = np.clip(calibrator.predict(p_val), *_CALIBRATION_BOUNDS)
    bce = -np.mean(y_val * np.log(p_cal) + (1.0 - y_val) * np.log(1.0 - p_cal))
    return {"auc": float(roc_auc_score(y_val, p_cal)), "jsd": float((math.log(2.0) - bce) / math.log(2.0)),
            "accuracy": float(np.mean((p_cal > 0.5) == y_val)),
            "auc_uncalibrated": float(roc_auc_score(y_val, p_val)),
            "accuracy_uncalibrated": float(np.mean((p_val > 0.5) == y_val))}


def train_and_score(x_gen: np.ndarray, x_ref: np.ndarray, dataset: str,
                    settings: ClassifierSettings = OFFICIAL_SETTINGS, seed: int = 0, progress: bool = False) -> dict:
    """One classifier run on prepared inputs (N, d) of each class; returns `classifier_metrics` plus training facts."""
    if len(x_gen) != len(x_ref):
        raise ValueError(f"The classifier needs as many generated as reference showers; got {len(x_gen)} and "
                         f"{len(x_ref)}. Pass files with equal counts (or use equalize=True / --equalize).")
    rng = np.random.default_rng(seed)
    train, test, validation = _split(x_gen, x_ref, dataset, rng)
    network = _build_network(x_gen.shape[1], settings, seed=int(rng.integers(2**30)))
    best_accuracy, best_epoch, epochs_run = _train(network, train, test, settings, rng, progress)
    metrics = classifier_metrics(_predict(network, test[0], settings.dtype), test[1],
                                 _predict(network, validation[0], settings.dtype), validation[1])
    metrics.update(best_test_accuracy=best_accuracy, best_epoch=best_epoch, epochs_run=epochs_run,
                   split=[len(train[1]) // 2, len(test[1]) // 2, len(validation[1]) // 2])
    return metrics


def run_classifier(mode: str, gen_showers, gen_energies, ref_showers, ref_energies, geometry: Geometry,
                   settings: ClassifierSettings = OFFICIAL_SETTINGS, repeats: int = 1, seed: int = 0,
                   progress: bool = False) -> dict:
    """`repeats` seeded runs of the DNN classifier `mode` (cls-low, cls-low-normed, cls-high).

    Returns:
        {"auc_mean", "auc_std", "jsd_mean", "jsd_std", "runs": [per-run metrics], "settings": {...},
         "n_per_class": N, "repeats": K}; std is the population standard deviation over the runs (0 for K = 1).
    """
    if repeats < 1:
        raise ValueError(f"`repeats` must be >= 1; got {repeats}.")
    x_gen = classifier_inputs(mode, gen_showers, gen_energies, geometry)
    x_ref = classifier_inputs(mode, ref_showers, ref_energies, geometry)
    runs = [train_and_score(x_gen, x_ref, geometry.name, settings, seed=seed + 1000 * k, progress=progress)
            for k in range(repeats)]
    aucs, jsds = np.array([r["auc"] for r in runs]), np.array([r["jsd"] for r in runs])
    return {"auc_mean": float(aucs.mean()), "auc_std": float(aucs.std()), "jsd_mean": float(jsds.mean()),
            "jsd_std": float(jsds.std()), "repeats": repeats, "n_per_class": len(x_gen), "n_inputs": x_gen.shape[1],
            "settings": dataclasses.asdict(settings), "runs": runs}


def hgb_auc(gen_vectors: np.ndarray, ref_vectors: np.ndarray, n_folds: int = 5, seed: int = 0,
            threads: int | None = 1) -> dict:
    """k-fold cross-validated ROC AUC of sklearn's HistGradientBoostingClassifier (default hyper-parameters)
    separating generated (0) from reference (1) feature vectors, e.g.
    `high_level_vector(features, relative_energies=True)`.

    Args:
        threads: OpenMP threads for the boosting (None: sklearn's default). One thread is the default because
            OpenMP's busy waiting makes a multi-threaded fit many times slower on a shared, oversubscribed CPU.

    Returns:
        {"auc_mean", "auc_std", "fold_aucs", "n_folds", "n_per_class"}.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from threadpoolctl import threadpool_limits

    if len(gen_vectors) != len(ref_vectors):
        raise ValueError(f"cls-hgb needs as many generated as reference showers; got {len(gen_vectors)} and "
                         f"{len(ref_vectors)}. Pass files with equal counts (or use equalize=True / --equalize).")
    if len(gen_vectors) < n_folds * 2:
        raise ValueError(f"cls-hgb needs at least {2 * n_folds} showers per class for {n_folds} folds; "
                         f"got {len(gen_vectors)}.")
    x = np.concatenate([gen_vectors, ref_vectors])
    y = np.concatenate([np.zeros(len(gen_vectors)), np.ones(len(ref_vectors))])
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    with threadpool_limits(threads, user_api="openmp"):
        scores = cross_val_score(HistGradientBoostingClassifier(random_state=seed), x, y, cv=folds, scoring="roc_auc")
    return {"auc_mean": float(scores.mean()), "auc_std": float(scores.std()), "fold_aucs": [float(s) for s in scores],
            "n_folds": n_folds, "n_per_class": len(gen_vectors)}
