"""What the issue-21 side-by-side drivers (benchmarks/l2lflow_ds2_side_by_side.py,
benchmarks/icaloflow_ds2_side_by_side.py) share: calozoo's fit / validation rows in an interpreter without calozoo,
the machine's load, the per-epoch JSON log, a held-out table row from `calozoo evaluate`'s results, and the losses of
calozoo's layer-flow training step that the throughput workers time.

Standard library and numpy only (imported by the PyTorch interpreter that runs the drivers); h5py on demand.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np

# calozoo's own function, evaluated by `check_fit_validation_rows` in a calozoo interpreter
CALOZOO_ROWS = ("import json, sys; from calozoo.training.settings import fit_validation_rows; "
                "fit, val = fit_validation_rows(int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])); "
                "print(json.dumps([fit.tolist(), val.tolist()]))")


def fit_validation_rows(n: int, fraction: float, seed: int):
    """The same rows as calozoo.training.settings.fit_validation_rows (seeded permutation; validation first)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(float(fraction) * n)))
    return order[n_val:], order[:n_val]


def check_fit_validation_rows(n: int, fraction: float, seed: int, calozoo_python: str, calozoo_path: str):
    """`fit_validation_rows(n, fraction, seed)`, checked against calozoo's own function run by `calozoo_python`
    (with `calozoo_path` as PYTHONPATH); raises SystemExit with an `Error:` line if they differ."""
    fit, val = fit_validation_rows(n, fraction, seed)
    env = {**os.environ, "PYTHONPATH": calozoo_path}
    done = subprocess.run([calozoo_python, "-c", CALOZOO_ROWS, str(n), str(fraction), str(seed)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"Error: calozoo's fit_validation_rows could not be run by {calozoo_python}: "
                         f"{done.stderr.strip().splitlines()[-1:]}")
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    if theirs != [fit.tolist(), val.tolist()]:
        raise SystemExit("Error: the rows differ from calozoo.training.settings.fit_validation_rows.")
    return fit, val


def loadavg() -> list[float]:
    """The 1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def log_line(path: str, record: dict) -> None:
    """Appends `record` as one JSON line to `path` and prints it."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps(record), flush=True)


def heldout_row(directory: str, generated: str, auc_with_std: bool = True) -> dict:
    """The table's numbers from `calozoo evaluate` (results.json) and the generated file, as
    benchmarks/fidelity_heldout.py reads them (plus the shape summary); the classifier's AUC only where
    cls-hgb was evaluated (`auc_with_std`: "mean +- std" text, otherwise the mean as a number)."""
    import h5py

    with open(os.path.join(directory, "results.json")) as f:
        results = json.load(f)
    with h5py.File(generated, "r") as f:
        showers = f["showers"][:]
    row = {"mean_separation_all_high_level": round(results["hist"]["summary"]["all_high_level"], 4),
           "etot_einc": round(results["hist"]["separation_power"]["etot_einc"], 4),
           "sparsity": round(results["hist"]["summary"]["sparsity"], 4),
           "n_hits_separation": round(results["shape"]["separation_power"]["n_hits"], 4),
           "all_shape": round(results["shape"]["summary"]["all_shape"], 4)}
    if "cls-hgb" in results:
        hgb = results["cls-hgb"]
        row["cls_hgb_auc"] = (f"{hgb['auc_mean']:.4f} +- {hgb['auc_std']:.4f}" if auc_with_std
                              else round(hgb["auc_mean"], 4))
    row["hits_per_shower"] = round(float((showers > 0).sum(axis=1).mean()), 1)
    return row


def layer_flow_losses(flow, train, generator):
    """(recipe_loss, model_loss) of calozoo's layer-flow training step: the mean negative log-likelihood of batches
    preprocessed inside the step as training does (fresh noise and alpha augmentation from `generator`), and of fixed
    (x, c) batches. `train` is the family's training-data object (`FlowData`, `LayerData`); TensorFlow is imported
    only here, in the calozoo interpreter that runs the workers."""
    import tensorflow as tf

    def recipe_loss(*batch):
        x, c = train.inputs("layer_flow", generator.make_seeds(1)[:, 0], *batch)
        return model_loss(x, c)

    def model_loss(x, c):
        nll = -tf.reduce_mean(flow.log_prob(x, c, training=True))
        return nll, nll

    return recipe_loss, model_loss
