"""The interface every calozoo model implements: showers in MeV from incident energies and a seed."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.data.geometry import Geometry, load_geometry

__all__ = ["ShowerGenerator", "seed_pair"]


def seed_pair(seed: int, index: int = 0) -> tf.Tensor:
    """A stateless-RNG seed (int32[2]) for batch `index` of a run seeded with `seed`."""
    return tf.constant([int(seed) % (2**31 - 1), int(index) % (2**31 - 1)], dtype=tf.int32)


class ShowerGenerator(tf.Module):
    """Base class of all generators: a `tf.Module`, so that it exports to a SavedModel.

    Subclasses implement `sample_showers(incident_energies, seed)` in TensorFlow ops (graph friendly),
    and `log_prob` where the model has a density.
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

    def __init__(self, dataset: str, name: str | None = None):
        super().__init__(name=name)
        self.dataset = dataset
        self._samplers = {}

    def sampler(self, jit_compile: bool = True):
        """`sample_showers` as a compiled graph (XLA by default, where the family `supports_xla`), built once per
        setting."""
        jit_compile = jit_compile and self.supports_xla
        if jit_compile not in self._samplers:
            self._samplers[jit_compile] = tf.function(self._sample_in_slices, jit_compile=jit_compile,
                                                      reduce_retracing=True)
        return self._samplers[jit_compile]

    def _sample_in_slices(self, incident_energies, seed):
        n = incident_energies.shape[0]
        if n is None or n <= self.micro_batch:
            return self.sample_showers(incident_energies, seed)
        seeds = tf.random.experimental.stateless_split(seed, -(-n // self.micro_batch))
        parts = []
        for i in range(0, n, self.micro_batch):
            with tf.control_dependencies(parts[-1:] if self.sequential_slices else []):
                energies = tf.identity(incident_energies[i : i + self.micro_batch])
                parts.append(self.sample_showers(energies, seeds[i // self.micro_batch]))
        return tf.concat(parts, axis=0)

    @property
    def geometry(self) -> Geometry:
        return load_geometry(self.dataset)

    @property
    def n_voxels(self) -> int:
        return self.geometry.n_voxels

    def sample_showers(self, incident_energies, seed):
        """Showers (N, n_voxels) float32 in MeV for incident energies (N, 1) MeV and a seed int32[2]."""
        raise NotImplementedError

    def generate(self, incident_energies, seed: int = 0, batch_size: int = 10_000) -> np.ndarray:
        """Showers in MeV, float32 (N, n_voxels), for incident energies in MeV (N,) or (N, 1).

        The same seed and batch size give the same showers.
        """
        from calozoo.data.files import validate_incident_energies

        energies = np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)
        validate_incident_energies(energies)
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1; got {batch_size}.")
        sample = self.sampler()
        chunks = [
            sample(tf.constant(energies[i : i + batch_size], tf.float32), seed_pair(seed, i // batch_size))
            for i in range(0, len(energies), batch_size)
        ]
        if not chunks:
            return np.zeros((0, self.n_voxels), np.float32)
        return np.concatenate([c.numpy() for c in chunks], axis=0)

    def log_prob(self, showers, incident_energies):
        """Log density of showers given incident energies (models with `has_density`)."""
        raise NotImplementedError(f"{type(self).__name__} has no density; use a teacher model for log_prob.")

    @property
    def num_params(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.trainable_variables))
