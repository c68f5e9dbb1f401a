"""The files around a SavedModel that `tensorflow_model_server` reads: model config, batching, warm-up requests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo.errors import MissingDependencyError

__all__ = [
    "MODELS_CONFIG",
    "BATCHING_PARAMETERS",
    "WARMUP_FILE",
    "serving_apis",
    "models_config_text",
    "batching_parameters_text",
    "write_server_config",
    "warmup_requests",
    "write_warmup_requests",
]

MODELS_CONFIG = "models.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"
# Warm-up batch sizes: one request per size and signature, so the first client request is not the one that
# pays for graph optimisation and memory allocation.
WARMUP_BATCH_SIZES = (1, 100)


def serving_apis():
    """`(predict_pb2, prediction_log_pb2)` of tensorflow-serving-api, or a MissingDependencyError naming the fix."""
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        raise MissingDependencyError(
            "Writing TF Serving warm-up requests needs the package tensorflow-serving-api: "
            "`pip install 'calozoo[serving]'` (or `pip install tensorflow-serving-api`), or export without warm-up "
            "(`export_model(..., warmup=False)` / `calozoo export --no-warmup`)."
        ) from None
    return predict_pb2, prediction_log_pb2


def _write_text_atomically(path: Path, text: str) -> None:
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def _served_models(base_dir: Path) -> list[str]:
    """Subdirectories of BASE that hold at least one integer version."""
    found = []
    for child in sorted(base_dir.iterdir()):
        if child.is_dir() and not child.name.startswith(".") and any(
            p.is_dir() and p.name.isdigit() for p in child.iterdir()
        ):
            found.append(child.name)
    return found


def models_config_text(base_dir: str | Path, names: list[str] | None = None) -> str:
    """A ModelServerConfig text proto with one entry per model (absolute `base_path`s under `base_dir`)."""
    base_dir = Path(base_dir).resolve()
    names = _served_models(base_dir) if names is None else names
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{base_dir / name}"\n    model_platform: "tensorflow"\n  }}\n'
        for name in names
    )
    return f"model_config_list {{\n{entries}}}\n"


def batching_parameters_text(max_batch_size: int = 10_000, batch_timeout_micros: int = 2_000,
                             max_enqueued_batches: int = 100, num_batch_threads: int = 2) -> str:
    """A BatchingParameters text proto for `--enable_batching --batching_parameters_file`.

    TF Serving concatenates queued requests along dimension 0 up to `max_batch_size` rows, waiting at most
    `batch_timeout_micros` for a batch to fill.
    """
    return (
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
        f"num_batch_threads {{ value: {num_batch_threads} }}\n"
    )


def write_server_config(base_dir: str | Path) -> tuple[Path, Path]:
    """(Re)writes `BASE/models.config` for every model under BASE, and `BASE/batching_parameters.txt`."""
    base_dir = Path(base_dir)
    config, batching = base_dir / MODELS_CONFIG, base_dir / BATCHING_PARAMETERS
    _write_text_atomically(config, models_config_text(base_dir))
    _write_text_atomically(batching, batching_parameters_text())
    return config, batching


def _warmup_inputs(model, batch_size: int) -> dict[str, dict[str, np.ndarray]]:
    """Inputs per signature key for one warm-up batch (energies spread over 1 GeV - 1 TeV)."""
    energies = np.geomspace(1e3, 1e6, batch_size, dtype=np.float32).reshape(-1, 1)
    inputs = {
        "serving_default": {"incident_energies": energies},
        "generate_seeded": {"incident_energies": energies, "seed": np.array([0, batch_size], np.int64)},
    }
    if model.has_density:
        sampler = model.sampler(jit_compile=False)
        showers = sampler(tf.constant(energies), tf.constant([0, batch_size], tf.int32)).numpy()
        inputs["log_prob"] = {"showers": showers, "incident_energies": energies}
    return inputs


def warmup_requests(model, name: str, batch_sizes=WARMUP_BATCH_SIZES) -> list:
    """PredictionLog protos (one per signature and batch size) for `assets.extra/tf_serving_warmup_requests`."""
    predict_pb2, prediction_log_pb2 = serving_apis()
    logs = []
    for batch_size in batch_sizes:
        for signature, tensors in _warmup_inputs(model, batch_size).items():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = signature
            for key, value in tensors.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            logs.append(prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request)))
    return logs


def write_warmup_requests(saved_model_dir: str | Path, name: str, model) -> Path:
    """Writes the warm-up TFRecord into `<saved_model_dir>/assets.extra/` and returns its path."""
    path = Path(saved_model_dir) / WARMUP_FILE
    logs = warmup_requests(model, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())
    return path
