"""Export a calozoo generator to a versioned SavedModel that TensorFlow Serving serves.

Layout written under a base directory (TF Serving's `--model_config_file` / `--model_base_path` layout):

    BASE/models.config                    ModelServerConfig listing every model under BASE
    BASE/batching_parameters.txt          BatchingParameters for `--enable_batching`
    BASE/NAME/N/saved_model.pb            N an integer version; TF Serving serves the highest
    BASE/NAME/N/variables/
    BASE/NAME/N/assets.extra/tf_serving_warmup_requests

Signatures (tag `serve`, method `tensorflow/serving/predict`), every batched tensor with the batch in dimension 0:

- `serving_default`: `incident_energies` float32 (N, 1) MeV -> `showers` float32 (N, V) MeV, a fresh random
  seed drawn inside on every call.
- `generate_seeded`: `incident_energies` and `seed` int64 (2,) -> `showers`; the same inputs give the same
  showers after any reload, and the same as the in-process sampler `model.sampler()(energies,
  seed_pair(seed[0], seed[1]))` at every N (so `model.generate(energies, seed=s)` for a seed (s, 0)): a batch
  larger than `model.micro_batch` is cut into the same seeded slices as in process (`sample_in_slices`). The
  seed has no batch dimension: send these requests to a server without `--enable_batching`.

Generation is XLA-compiled (`jit_compile`) where the family `supports_xla`, as in process: a TF1 session (TF
Serving's loader) and `tf.saved_model.load` both compile one slice, once per new slice size. XLA draws other random
numbers than the uncompiled ops for the same seed, which is why the seeded contract names the compiled sampler.
- `log_prob` (models with a density): `showers` float32 (N, V) MeV and `incident_energies` -> `log_prob`
  float32 (N,), the model's `log_prob_graph`.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo.errors import CalozooError
from calozoo.export.serving_config import serving_apis, write_server_config, write_warmup_requests
from calozoo.models.base import sample_in_slices

__all__ = ["ServingModule", "export_model", "saved_model_versions", "SIGNATURE_KEYS"]

SIGNATURE_KEYS = ("serving_default", "generate_seeded", "log_prob")
_INT32_SEED_RANGE = 2**31 - 1
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def _energies_spec() -> tf.TensorSpec:
    return tf.TensorSpec([None, 1], tf.float32, name="incident_energies")


def _checked_energies(incident_energies):
    """The energies, after an in-graph check that fails the request (InvalidArgument) on values <= 0 or NaN."""
    check = tf.debugging.assert_positive(incident_energies, message="incident_energies must be > 0 MeV (and not NaN)")
    with tf.control_dependencies([check]):
        return tf.identity(incident_energies)


class ServingModule(tf.Module):
    """A generator wrapped with the serving signatures as `tf.function`s with fixed input signatures.

    Args:
        model: a `calozoo.models.base.ShowerGenerator`; with `has_density` it also gets `log_prob` (the model's
            `log_prob_graph`). The model's in-process samplers (`model.sampler()`) are no part of the module: the
            serving module compiles its own.
    """

    def __init__(self, model):
        super().__init__(name="calozoo_serving")
        self.model = model
        # Only the sampling is compiled: the input check and the fresh seed stay in the plain graph around it,
        # because XLA compiles Assert to nothing and a stateful random op inside would be drawn by XLA.
        self._compiled_sample = tf.function(model.sample_showers, jit_compile=model.supports_xla)
        self.serving_default = tf.function(self._generate, input_signature=[_energies_spec()])
        self.generate_seeded = tf.function(
            self._generate_seeded, input_signature=[_energies_spec(), tf.TensorSpec([2], tf.int64, name="seed")]
        )
        if model.has_density:
            showers_spec = tf.TensorSpec([None, model.n_voxels], tf.float32, name="showers")
            self.log_prob = tf.function(self._log_prob, input_signature=[showers_spec, _energies_spec()])

    def _generate(self, incident_energies):
        seed = tf.random.uniform([2], 0, _INT32_SEED_RANGE, dtype=tf.int32)
        return {"showers": tf.identity(self._sample(_checked_energies(incident_energies), seed), name="showers")}

    def _generate_seeded(self, incident_energies, seed):
        seed32 = tf.cast(tf.math.floormod(seed, _INT32_SEED_RANGE), tf.int32)
        return {"showers": tf.identity(self._sample(_checked_energies(incident_energies), seed32), name="showers")}

    def _sample(self, incident_energies, seed):
        """The compiled sampler slice by slice, as the in-process sampler cuts a large batch."""
        return sample_in_slices(self._compiled_sample, incident_energies, seed, self.model.micro_batch,
                                self.model.sequential_slices)

    def _log_prob(self, showers, incident_energies):
        log_prob = self.model.log_prob_graph(showers, _checked_energies(incident_energies))
        return {"log_prob": tf.cast(log_prob, tf.float32, name="log_prob")}

    def signatures(self) -> dict:
        """The signature dict for `tf.saved_model.save`."""
        found = {key: getattr(self, key) for key in SIGNATURE_KEYS if hasattr(self, key)}
        return found


def saved_model_versions(model_dir: str | Path) -> list[int]:
    """The integer version directories under `BASE/NAME/`, ascending (what TF Serving would consider)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def _target_version(model_dir: Path, version: int | None) -> int:
    if version is None:
        return max(saved_model_versions(model_dir), default=0) + 1
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 1:
        raise ValueError(f"`version` must be an integer >= 1 (TF Serving needs integer versions); got {version!r}.")
    if (model_dir / str(int(version))).exists():
        raise CalozooError(
            f"{model_dir / str(int(version))} already exists; a served version is never overwritten. "
            f"Omit the version to write the next free one ({max(saved_model_versions(model_dir)) + 1})."
        )
    return int(version)


def export_model(model, base_dir: str | Path, name: str, version: int | None = None, warmup: bool = True) -> Path:
    """Writes `model` as SavedModel `BASE/NAME/N/` and refreshes `BASE/models.config` and the batching file.

    The SavedModel is written to a hidden temporary directory beside the target and renamed onto it at the
    end, so a server polling BASE/NAME never sees a half-written version, and a failure leaves nothing.

    Args:
        model: a `ShowerGenerator` (e.g. from `calozoo.load(name)`).
        base_dir: the model base directory of the server (created if missing).
        name: the served model name (letters, digits, '.', '_', '-').
        version: integer version; default the next free one (1 for a new model).
        warmup: write `assets.extra/tf_serving_warmup_requests` (needs `tensorflow-serving-api`).

    Returns:
        The version directory.

    Example:
        >>> from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
        >>> tiny = CaloFlow(CaloFlowConfig(role="student", hidden=16, energy_hidden=8, num_blocks=2, energy_blocks=2))
        >>> export_model(tiny, "served", "tiny")       # doctest: +SKIP
        PosixPath('served/tiny/1')
    """
    if not _NAME_PATTERN.fullmatch(str(name)):
        raise ValueError(f"`name` must be letters, digits, '.', '_' or '-' (a directory name); got {name!r}.")
    if warmup:
        serving_apis()  # fail before any work when tensorflow-serving-api is missing
    model_dir = Path(base_dir) / name
    version = _target_version(model_dir, version)
    model_dir.mkdir(parents=True, exist_ok=True)
    final = model_dir / str(version)
    staging = Path(tempfile.mkdtemp(dir=model_dir, prefix=f".{version}-partial-"))
    try:
        module = ServingModule(model)
        tf.saved_model.save(module, str(staging), signatures=module.signatures())
        if warmup:
            write_warmup_requests(staging, name, model)
        staging.chmod(0o755)  # mkdtemp makes it owner-only; a server may run as another user
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    write_server_config(base_dir)
    return final
