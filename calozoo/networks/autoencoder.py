"""CaloMan's generalized autoencoder: a conditional Gaussian VAE (one shared decoder sigma) or a plain AE."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

from calozoo import stateless
from calozoo.networks.mlp import MLP, ParallelMLP, mlp_num_params, parallel_mlp_num_params

__all__ = ["GeneralizedAutoencoder", "autoencoder_num_params"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def _network_params(inputs, labels, hidden, outputs):
    if labels:
        return parallel_mlp_num_params(inputs, labels, hidden, outputs)
    return mlp_num_params(inputs, hidden, outputs)


def autoencoder_num_params(kind: str, data_dim: int, label_dim: int, latent_dim: int, encoder_hidden: Sequence[int],
                           decoder_hidden: Sequence[int]) -> dict:
    """{'encoder', 'decoder'} trainable parameters; label_dim 0 means unconditional."""
    variational = kind == "vae"
    encoder = _network_params(data_dim, label_dim, encoder_hidden, (2 if variational else 1) * latent_dim)
    decoder = _network_params(latent_dim, label_dim, decoder_hidden, data_dim + (1 if variational else 0))
    return {"encoder": encoder, "decoder": decoder}


class GeneralizedAutoencoder(tf.Module):
    """Encoder q(z | x, y) and decoder p(x | z, y) of CaloMan, as MLPs (ParallelMLP when conditioned on labels).

    * `kind="vae"`: the encoder gives a mean and log sigma per latent; the decoder gives the means of x and one
      log sigma shared by all features ("single_sigma"). Loss: -ELBO with one latent draw and beta-weighted KL.
    * `kind="ae"`: deterministic encoder and decoder. Loss: squared reconstruction error summed over features.

    Generation uses only the decoder mean.

    References:
        Kingma & Welling, arXiv:1312.6114; Cresswell et al., CaloMan, arXiv:2211.15380.
    """

    def __init__(self, kind: str, data_dim: int, label_dim: int, latent_dim: int, encoder_hidden: Sequence[int],
                 decoder_hidden: Sequence[int], beta: float = 1.0, seed: int = 0, dtype=tf.float32,
                 name: str | None = None):
        super().__init__(name=name or "autoencoder")
        if kind not in ("vae", "ae"):
            raise ValueError(f"`gae` must be 'vae' or 'ae'; got {kind!r}.")
        if latent_dim < 1:
            raise ValueError(f"`latent_dim` must be >= 1; got {latent_dim}.")
        self.kind, self.data_dim, self.label_dim, self.latent_dim = kind, data_dim, label_dim, latent_dim
        self.beta = float(beta)
        self.dtype = tf.as_dtype(dtype)
        variational = kind == "vae"
        with self.name_scope:
            self.encoder = self._network(data_dim, encoder_hidden, (2 if variational else 1) * latent_dim, seed,
                                         "encoder")
            self.decoder = self._network(latent_dim, decoder_hidden, data_dim + (1 if variational else 0), seed + 1,
                                         "decoder")

    def _network(self, inputs, hidden, outputs, seed, name):
        if self.label_dim:
            return ParallelMLP(inputs, self.label_dim, hidden, outputs, seed=seed, dtype=self.dtype, name=name)
        return MLP(inputs, hidden, outputs, seed=seed, dtype=self.dtype, name=name)

    def encode(self, x, labels=None):
        """(mean, log sigma) of q(z | x, y); log sigma is None for an AE."""
        out = self.encoder(x, labels)
        if self.kind == "ae":
            return out, None
        return out[:, : self.latent_dim], out[:, self.latent_dim :]

    def decode(self, z, labels=None):
        """(mean, log sigma (N, 1)) of p(x | z, y); log sigma is None for an AE."""
        out = self.decoder(z, labels)
        if self.kind == "ae":
            return out, None
        return out[:, : self.data_dim], out[:, self.data_dim :]

    def reconstruct(self, x, labels=None):
        """Decoder mean at the encoder mean."""
        return self.decode(self.encode(x, labels)[0], labels)[0]

    def reconstruction_error(self, x, labels=None):
        """Mean over rows of the squared L2 distance between x and its reconstruction."""
        x = tf.convert_to_tensor(x, self.dtype)
        return tf.reduce_mean(tf.reduce_sum((self.reconstruct(x, labels) - x) ** 2, axis=-1))

    def negative_elbo(self, x, labels, noise):
        """Per row: -ELBO of a VAE with the latent draw z = mean + sigma * `noise` (N, latent), and the KL term in
        closed form; the squared reconstruction error for an AE (`noise` unused).

        The reference's ELBO takes log p(z) + H(q) at the same draw instead of -KL(q || N(0, I)): the same
        expectation, one more source of noise (docs/models.md section 5.5)."""
        x = tf.convert_to_tensor(x, self.dtype)
        mean, log_sigma = self.encode(x, labels)
        if self.kind == "ae":
            return tf.reduce_sum((self.decode(mean, labels)[0] - x) ** 2, axis=-1)
        z = mean + tf.exp(log_sigma) * tf.convert_to_tensor(noise, self.dtype)
        x_mean, x_log_sigma = self.decode(z, labels)
        log_likelihood = -tf.reduce_sum(0.5 * ((x - x_mean) * tf.exp(-x_log_sigma)) ** 2 + x_log_sigma + 0.5 * _LOG_2PI,
                                        axis=-1)
        # KL(q || N(0, I)) = log p(z) + entropy of q, per row, in closed form
        kl = tf.reduce_sum(0.5 * (mean**2 + tf.exp(2.0 * log_sigma)) - log_sigma - 0.5, axis=-1)
        return -log_likelihood + self.beta * kl

    def loss(self, x, labels, seed):
        """Training loss per batch: the mean -ELBO (VAE, one draw from a stateless `seed`) or squared error (AE)."""
        x = tf.convert_to_tensor(x, self.dtype)
        noise = stateless.normal([tf.shape(x)[0], self.latent_dim], seed, dtype=self.dtype)
        return tf.reduce_mean(self.negative_elbo(x, labels, noise))
