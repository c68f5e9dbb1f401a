"""Versioned model artifacts: config, compact weights, metadata and a model card in one directory.

Layout (keras-hub style): `<root>/<model name>/v<N>/{config.yaml, weights.npz, metadata.json, MODEL_CARD.md}`.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf
import yaml

from calozoo.errors import CalozooError

__all__ = [
    "StoredArray",
    "variables_by_path",
    "parameter_count",
    "save_weights",
    "load_weights",
    "library_versions",
    "write_artifact",
    "artifact_versions",
    "read_artifact_config",
]

_FLOAT16_MAX = 65504.0


class StoredArray:
    """A weight as artifacts store it, for a module that computes with the same numbers in another layout.

    The module's own variables are then marked `stored_by` and left out of `variables_by_path`; this object stands
    in their place under the weight's usual name, with the few members saving, loading and counting need.
    """

    def __init__(self, name: str, read, write, shape, dtype, trainable: bool = True, mask=None):
        self.name, self._read, self._write = name, read, write
        self.shape, self.dtype = tf.TensorShape(shape), tf.as_dtype(dtype)
        self.trainable, self.mask = trainable, mask

    def value(self) -> tf.Tensor:
        """The weight in its stored layout, as a tensor."""
        return self._read()

    def numpy(self) -> np.ndarray:
        """The weight in its stored layout, as an array."""
        return self._read().numpy()

    def assign(self, value) -> None:
        """Sets the module's variables from the weight in its stored layout (shape checked)."""
        value = np.asarray(value)
        if tuple(value.shape) != tuple(self.shape):
            raise ValueError(f"{self.name}: expected shape {tuple(self.shape)}; got {value.shape}.")
        self._write(value.astype(self.dtype.as_numpy_dtype))

    @staticmethod
    def mark(variables, owner: str) -> None:
        """Marks variables whose values a `StoredArray` stores, so that they are not stored twice."""
        for variable in variables:
            variable.stored_by = owner


def _stored(value) -> bool:
    return isinstance(value, StoredArray) or (isinstance(value, tf.Variable) and not hasattr(value, "stored_by"))


def variables_by_path(module: tf.Module) -> dict[str, tf.Variable | StoredArray]:
    """Every stored weight of `module` once, keyed by its attribute path ('shower_flow/mades/0/in_kernel')."""
    seen, result = set(), {}
    found = module._flatten(predicate=_stored, with_path=True)
    for path, variable in sorted(found, key=lambda item: [str(p) for p in item[0]]):
        if id(variable) in seen:
            continue
        seen.add(id(variable))
        result["/".join(str(p) for p in path)] = variable
    return result


def parameter_count(module: tf.Module) -> int:
    """Trainable parameters as the papers count them: every stored weight, masked zeros included."""
    return int(sum(np.prod(v.shape) for v in variables_by_path(module).values() if v.trainable))


def _storage_array(variable: tf.Variable, float_dtype: str) -> np.ndarray:
    value = variable.numpy()
    if not np.issubdtype(value.dtype, np.floating):
        return value
    if float_dtype == "float16" and np.abs(value).max(initial=0.0) < _FLOAT16_MAX:
        return value.astype(np.float16)
    return value.astype(np.float32 if float_dtype != "float64" else np.float64)


def _usual_mode(is_dir: bool = False) -> int:
    """The permissions a new file (or folder) gets from the umask: tempfile's 0600 / 0700 are for secrets."""
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if is_dir else 0o666) & ~umask


def save_weights(module: tf.Module, path: str | Path, float_dtype: str = "float16") -> None:
    """Writes every variable to a compressed .npz, floats in `float_dtype` where the values fit."""
    arrays = {key: _storage_array(v, float_dtype) for key, v in variables_by_path(module).items()}
    path = Path(path)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npz", delete=False) as handle:
        np.savez_compressed(handle, **arrays)
    os.chmod(handle.name, _usual_mode())
    os.replace(handle.name, path)


def load_weights(module: tf.Module, path: str | Path) -> None:
    """Assigns the arrays of a weights .npz to the module's variables, checking names and shapes."""
    variables = variables_by_path(module)
    with np.load(path) as stored:
        missing = sorted(set(variables) - set(stored.files))
        unexpected = sorted(set(stored.files) - set(variables))
        if missing or unexpected:
            raise CalozooError(
                f"Weights in {path} do not fit this model: {len(missing)} missing (e.g. {missing[:2]}), "
                f"{len(unexpected)} unexpected (e.g. {unexpected[:2]}); was it saved from another configuration?"
            )
        for key, variable in variables.items():
            value = stored[key]
            if tuple(value.shape) != tuple(variable.shape):
                raise CalozooError(f"Weight '{key}' in {path} has shape {value.shape}; "
                                   f"the model expects {variable.shape}.")
            variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def library_versions() -> dict:
    """Versions of the libraries that produced an artifact."""
    import h5py
    import tensorflow_probability as tfp
    import tf_keras

    from calozoo._version import __version__

    return {"calozoo": __version__, "tensorflow": tf.__version__, "tensorflow_probability": tfp.__version__,
            "tf_keras": tf_keras.__version__, "numpy": np.__version__, "h5py": h5py.__version__}


def artifact_versions(model_dir: str | Path) -> list[int]:
    """The version numbers present under `<root>/<name>/`, ascending."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    found = [int(m.group(1)) for p in model_dir.iterdir() if (m := re.fullmatch(r"v(\d+)", p.name)) and p.is_dir()]
    return sorted(found)


def write_artifact(module: tf.Module, root: str | Path, name: str, family: str, config: dict, metadata: dict,
                   card: str, version: int | None = None, float_dtype: str = "float16") -> Path:
    """Writes `<root>/<name>/v<version>/` (next free version by default) atomically and returns it."""
    model_dir = Path(root) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = version or (max(artifact_versions(model_dir), default=0) + 1)
    final = model_dir / f"v{version}"
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".v{version}-"))
    os.chmod(staging, _usual_mode(is_dir=True))
    try:
        (staging / "config.yaml").write_text(yaml.safe_dump({"name": name, "family": family, "config": config},
                                                            sort_keys=False))
        save_weights(module, staging / "weights.npz", float_dtype)
        metadata = {"name": name, "family": family, "version": version,
                    "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "weights_dtype": float_dtype, "libraries": library_versions(), **metadata}
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=1))
        (staging / "MODEL_CARD.md").write_text(card)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_artifact_config(directory: str | Path) -> dict:
    """The `config.yaml` of an artifact directory."""
    return yaml.safe_load((Path(directory) / "config.yaml").read_text())
