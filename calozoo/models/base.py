"""The interface every calozoo model implements: showers in MeV from incident energies and a seed.

`ShowerGenerator` declares everything the rest of the package uses of a model: `sample_showers` (the family's
TensorFlow graph), `sampler`, `generate` and `iter_generate` (seeded, batched, optionally one shard of a run),
`log_prob` / `log_prob_graph` (families with a density), and `artifact_dir` / `artifact_origin` (set by
`calozoo.load`). The seeding rule of batches and shards (`seed_pair`, `shard_seed`, `shard_rows`) lives here too.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.artifacts import parameter_count
from calozoo.data.geometry import Geometry, load_geometry

__all__ = ["ShowerGenerator", "sample_in_slices", "seed_pair", "shard_seed", "shard_rows"]

_INT32_SEED_RANGE = 2**31 - 1


def seed_pair(seed: int, index: int = 0) -> tf.Tensor:
    """A stateless-RNG seed (int32[2]) for batch `index` of a run seeded with `seed`."""
    return tf.constant([int(seed) % _INT32_SEED_RANGE, int(index) % _INT32_SEED_RANGE], dtype=tf.int32)


def shard_rows(n_rows: int, index: int, count: int) -> slice:
    """Rows [index*N/count, (index+1)*N/count) of N: the shards tile the rows exactly, sizes differ by <= 1."""
    return slice(index * n_rows // count, (index + 1) * n_rows // count)


def shard_seed(seed: int, batch: int, index: int = 0, count: int = 1) -> tf.Tensor:
    """The stateless seed (int32[2]) of batch `batch` of shard `index` of `count`.

    The whole run (count 1) keeps `seed_pair(seed, batch)`; shards hash (seed, index, count, batch) into
    independent streams, so no two (shard, batch) pairs share one.
    """
    if count == 1:
        return seed_pair(seed, batch)
    state = np.random.SeedSequence([int(seed), index, count, batch]).generate_state(2) % _INT32_SEED_RANGE
    return tf.constant(state.astype(np.int32))


def _checked_shard(shard) -> tuple[int, int]:
    try:
        index, count = shard
    except (TypeError, ValueError):
        raise ValueError(f"`shard` must be a pair (index, count); got {shard!r}.") from None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (index, count)) \
            or count < 1 or not 0 <= index < count:
        raise ValueError(f"`shard` (index, count) needs integers with count >= 1 and 0 <= index < count; "
                         f"got {shard!r}.")
    return int(index), int(count)


# The compiled samplers of each model, outside the model: a dict of tf.functions is no trackable state, so as an
# attribute it would stop `tf.saved_model.save` (the serving module compiles its own). Keyed weakly by the model, and
# the functions reach the model only through a weak reference, so the cache never keeps a model alive.
_SAMPLERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sample_in_slices(sample, incident_energies, seed, size: int, sequential: bool = False):
    """`sample(incident_energies, seed)` on a large batch, as slices of `size` rows with seeds of their own.

    A batch of at most `size` rows is one call with `seed`; a larger one is cut into slices of `size` rows (the last
    one shorter) that get `stateless.split(seed, number of slices)`. The full slices run as one loop, so a graph holds
    `sample` twice (the loop's body and the last slice; three times when the batch size is unknown, with the
    one-call branch) whatever the batch size: unrolled, a batch of 10 000 in
    slices of 100 held it 100 times (minutes of XLA compilation, gigabytes). In a plain graph the batch size may be
    unknown when the graph is built (a SavedModel signature, whose `sample` is XLA-compiled on its own): the same
    slices and seeds are then chosen when it runs, so a served model gives the showers of `model.generate` at every
    batch size. Inside an XLA-compiled function the batch size must be known when it is traced.

    Args:
        sample: fn(energies (n, 1), seed int32[2]) -> showers (n, V).
        incident_energies: (N, 1).
        seed: int32[2].
        size: rows per slice.
        sequential: the slices strictly one after another (their temporaries together would not fit in memory).
    Returns:
        showers (N, V) float32.
    """
    n = incident_energies.shape[0]
    if n is None:
        rows = tf.shape(incident_energies)[0]
        return tf.cond(rows <= size, lambda: sample(incident_energies, seed),
                       lambda: _sliced(sample, incident_energies, seed, size, sequential, rows))
    if n <= size:
        return sample(incident_energies, seed)
    return _sliced(sample, incident_energies, seed, size, sequential, n)


def _sliced(sample, incident_energies, seed, size, sequential, rows):
    """`sample_in_slices` for more than `size` rows (an int, or a scalar tensor when unknown at tracing)."""
    count, rest = rows // size, rows % size
    known = isinstance(rows, int)
    seeds = stateless.split(seed, count + (rest > 0) if known else count + tf.cast(rest > 0, count.dtype))
    full = tf.reshape(incident_energies[: count * size], [count, size, -1])
    showers = tf.map_fn(lambda args: tf.cast(sample(args[0], args[1]), tf.float32), (full, seeds[:count]),
                        fn_output_signature=tf.float32, parallel_iterations=1 if sequential else None)
    showers = tf.reshape(showers, tf.concat([[count * size], tf.shape(showers)[2:]], axis=0))

    def with_last_slice():
        with tf.control_dependencies([showers] if sequential else []):
            last = tf.identity(incident_energies[count * size :])
        return tf.concat([showers, tf.cast(sample(last, seeds[count]), tf.float32)], axis=0)

    if known:
        return with_last_slice() if rest else showers
    return tf.cond(rest > 0, with_last_slice, lambda: showers)


class ShowerGenerator(tf.Module):
    """Base class of all generators: a `tf.Module`, so that it exports to a SavedModel.

    Subclasses implement `sample_showers(incident_energies, seed)` in TensorFlow ops (graph friendly), and where
    the family has a density `log_prob` (seeded noise, for NLLs) and `log_prob_graph` (deterministic, exported).
    """

    has_density = False
    # where `log_prob` measures the density (its units differ from family to family), for model cards
    log_prob_space: str | None = None
    # Large batches are cut into slices of this size inside the compiled graph: the activations of a
    # slice stay in cache, which is faster on CPU than one huge matrix product per layer.
    micro_batch = 1000
    # Slices run one after another when their intermediate tensors together would not fit in memory
    # (CaloPointFlow's point clouds at batch 10 000); otherwise TensorFlow may run them side by side.
    sequential_slices = False
    # False where the sampling graph has data-dependent shapes that XLA cannot compile.
    supports_xla = True
    # The artifact directory the weights were loaded from, None for a model built in memory (`calozoo.create`);
    # set by `calozoo.load`.
    artifact_dir: Path | None = None
    # Which store that artifact came from: 'shipped', 'user' or 'path' (a directory given by path); None for a model
    # built in memory. Set by `calozoo.load`.
    artifact_origin: str | None = None

    def __init__(self, dataset: str, name: str | None = None):
        super().__init__(name=name)
        self.dataset = dataset

    def sampler(self, jit_compile: bool = True):
        """`sample_showers` as a compiled graph (XLA by default, where the family `supports_xla`), built once per
        setting and model; `sampler()(energies (N, 1) float32, seed_pair(...))` -> showers (N, n_voxels).

        The compiled functions are cached outside the module, so they are not part of what a SavedModel saves."""
        jit_compile = bool(jit_compile and self.supports_xla)
        samplers = _SAMPLERS.setdefault(self, {})
        if jit_compile not in samplers:
            model = weakref.ref(self)

            def _sample_in_slices(incident_energies, seed):
                generator = model()
                if generator is None:
                    raise RuntimeError("The model of this sampler no longer exists; keep a reference to the model "
                                       "while its sampler is used.")
                return generator._sample_in_slices(incident_energies, seed)

            # Under XLA every batch size is traced on its own (XLA compiles one program per shape anyway), so the
            # slices are cut from a known batch size; a plain graph may be traced once for all sizes.
            samplers[jit_compile] = tf.function(_sample_in_slices, jit_compile=jit_compile,
                                                reduce_retracing=not jit_compile)
        return samplers[jit_compile]

    def _sample_in_slices(self, incident_energies, seed):
        return sample_in_slices(self.sample_showers, incident_energies, seed, self.micro_batch, self.sequential_slices)

    @property
    def geometry(self) -> Geometry:
        return load_geometry(self.dataset)

    @property
    def n_voxels(self) -> int:
        return self.geometry.n_voxels

    def sample_showers(self, incident_energies, seed):
        """Showers (N, n_voxels) float32 in MeV for incident energies (N, 1) MeV and a seed int32[2]."""
        raise NotImplementedError

    def iter_generate(self, incident_energies, seed: int = 0, batch_size: int = 10_000,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Generates batch by batch: yields (incident energies (n, 1) float64, showers (n, n_voxels) float32), MeV.

        With `shard=(i, n)` only rows [i*N/n, (i+1)*N/n) of the N incident energies are generated (`shard_rows`),
        with random streams independent of the other shards' and of the whole run's (`shard_seed`); the whole run
        (the default (0, 1)) seeds batch b with `seed_pair(seed, b)`. The same seed, batch size and shard give the
        same showers. The energies, batch size and shard are checked when this is called, before the first batch.
        """
        from calozoo.data.files import validate_incident_energies

        energies = validate_incident_energies(np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1))
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
        index, count = _checked_shard(shard)
        energies = energies[shard_rows(len(energies), index, count)]
        return self._batches(energies, int(seed), int(batch_size), index, count)

    def _batches(self, energies, seed, batch_size, index, count):
        sample = self.sampler()
        for batch, start in enumerate(range(0, len(energies), batch_size)):
            chunk = energies[start : start + batch_size]
            showers = sample(tf.constant(chunk, tf.float32), shard_seed(seed, batch, index, count))
            yield chunk, showers.numpy()

    def generate(self, incident_energies, seed: int = 0, batch_size: int = 10_000) -> np.ndarray:
        """Showers in MeV, float32 (N, n_voxels), for incident energies in MeV (N,) or (N, 1).

        The same seed and batch size give the same showers (see `iter_generate`, which this collects).
        """
        chunks = [showers for _, showers in self.iter_generate(incident_energies, seed, batch_size)]
        if not chunks:
            return np.zeros((0, self.n_voxels), np.float32)
        return np.concatenate(chunks, axis=0)

    def log_prob(self, showers, incident_energies):
        """Log density of showers given incident energies (models with `has_density`)."""
        raise NotImplementedError(f"{type(self).__name__} has no density; use a teacher model for log_prob.")

    def log_prob_graph(self, showers, incident_energies):
        """The density a SavedModel exports (`calozoo.export`, signature `log_prob`): log p (N,) of showers (N,
        n_voxels) MeV given incident energies (N, 1) MeV, in TensorFlow ops, deterministic (every noise term of
        `log_prob` replaced by its mean) and row by row. Families with a density implement it; the others raise
        NotImplementedError."""
        raise NotImplementedError(f"{type(self).__name__} has no density to export (log_prob_graph).")

    @property
    def num_params(self) -> int:
        return parameter_count(self)
