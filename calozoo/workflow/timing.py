"""Generation timing by the CaloChallenge protocol: ms per shower at fixed batch sizes, after warm-up,
mean ± std over repetitions, excluding model loading and file I/O."""

from __future__ import annotations

import os
import time

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from calozoo.data.incident_energies import sample_incident_energies
from calozoo.models.base import seed_pair

__all__ = ["time_generation", "timing_environment", "time_registered", "time_runs", "write_timing_json"]


def timing_environment(model) -> dict:
    """What the numbers depend on: threads, device, compute dtype."""
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "device": gpus[0].name if gpus else "CPU",
        "cpu_count": os.cpu_count(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or os.cpu_count(),
        "dtype": tf.as_dtype(getattr(model, "dtype", tf.float32)).name,
        "tensorflow": tf.__version__,
    }


def time_generation(model, batch_sizes=(1, 100, 10_000), repeats: int = 10, warmup: int = 2, seed: int = 0,
                    jit_compile: bool = True, progress: bool = True) -> dict:
    """ms per shower of `model.sampler()` for each batch size.

    Each batch size is compiled and run `warmup` times untimed, then `repeats` timed calls; the result is
    copied to host memory inside the timed region (so a GPU is synchronised).

    Returns:
        {"environment": {...}, "results": [{"batch_size", "mean_ms_per_shower", "std_ms_per_shower",
        "repeats", "warmup"}, ...]}
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"`repeats` must be >= 1 and `warmup` >= 0; got {repeats} and {warmup}.")
    sample = model.sampler(jit_compile=jit_compile)
    results = []
    for batch in batch_sizes:
        if batch < 1:
            raise ValueError(f"Batch sizes must be >= 1; got {batch}.")
        energies = tf.constant(sample_incident_energies(model.dataset, int(batch), seed), tf.float32)
        for index in range(warmup):
            sample(energies, seed_pair(seed, index)).numpy()
        per_shower = []
        for index in tqdm(range(repeats), desc=f"batch {batch}", disable=not progress, leave=False):
            started = time.perf_counter()
            sample(energies, seed_pair(seed, warmup + index)).numpy()
            per_shower.append((time.perf_counter() - started) * 1e3 / batch)
        results.append({"batch_size": int(batch), "mean_ms_per_shower": float(np.mean(per_shower)),
                        "std_ms_per_shower": float(np.std(per_shower)), "repeats": repeats, "warmup": warmup})
    return {"environment": timing_environment(model), "results": results}


def time_registered(name: str, *, paper_size: bool, batch_sizes, repeats: int, warmup: int = 2,
                    jit_compile: bool = True, annotate=None, prepare=None) -> tuple[list[dict], dict] | None:
    """Times a registered model the way the benchmarks/ scripts report it, one printed line per batch size.

    Args:
        paper_size: the paper configuration with random weights (speed does not depend on them), else the
            shipped artifact.
        annotate: optional `row -> dict` of extra entries (published times, ratios) merged into each row.
        prepare: optional `model -> str` run once before timing, e.g. fitting a paper-size model's preprocessing
            statistics to data where they drive the amount of work (CaloPointFlow's number of hits); the string it
            returns is recorded in each row as "prepared".
    Returns:
        (rows with model, size, num_params, ...; the environment), or None when `name` has no shipped artifact.
    """
    from calozoo.errors import MissingWeightsError
    from calozoo.registry import create, load

    try:
        model = create(name, dtype="float32") if paper_size else load(name, dtype="float32")
    except MissingWeightsError:
        print(f"{name}: no shipped artifact, skipped")
        return None
    prepared = prepare(model) if prepare is not None else None
    report = time_generation(model, batch_sizes, repeats=repeats, warmup=warmup, jit_compile=jit_compile,
                             progress=False)
    rows = []
    for row in report["results"]:
        row.update(model=name, size="paper" if paper_size else "shipped", num_params=model.num_params,
                   jit_compile=jit_compile and model.supports_xla, **({"prepared": prepared} if prepared else {}))
        extra = annotate(row) if annotate else {}
        row.update(extra)
        rows.append(row)
        notes = "".join(f"; {k} {v:.4g}" if isinstance(v, float) else f"; {k} {v}" for k, v in extra.items())
        print(f"{name:32s} {row['size']:8s} {model.num_params:>11,d} batch {row['batch_size']:>6}: "
              f"{row['mean_ms_per_shower']:.4g} ± {row['std_ms_per_shower']:.2g} ms/shower "
              f"({row['repeats']} repeats{notes})", flush=True)
    return rows, report["environment"]


def time_runs(path, runs, annotate=None) -> list[dict]:
    """Times each run (the keyword arguments of `time_registered`, e.g. {"name": ..., "paper_size": True,
    "batch_sizes": (100,), "repeats": 3}) and writes all rows to the benchmark file `path`; models without a
    shipped artifact are skipped. Returns the rows."""
    rows, environment = [], None
    for run in runs:
        timed = time_registered(**{"annotate": annotate, **run})
        if timed:
            rows += timed[0]
            environment = timed[1]
    write_timing_json(path, environment, rows)
    return rows


def write_timing_json(path, environment: dict | None, rows: list[dict]) -> None:
    """The benchmarks' result file: {"environment": ..., "results": rows}."""
    import json

    with open(path, "w") as handle:
        json.dump({"environment": environment, "results": rows}, handle, indent=1)
