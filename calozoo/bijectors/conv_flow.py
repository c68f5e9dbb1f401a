"""A Glow-style conditional flow for one calorimeter layer image: squeeze, then blocks of
[ActNorm, RQS coupling with a U-Net conditioner, LU 1x1 convolution] (ConvL2LFlow, docs/models.md section 6.2)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from calozoo import stateless
from calozoo.artifacts import parameter_count
from calozoo.bijectors.actnorm import ActNorm
from calozoo.bijectors.composition import Composition, Step
from calozoo.bijectors.gaussian_base import standard_normal_log_prob
from calozoo.bijectors.image_coupling import ImageRQSCoupling
from calozoo.bijectors.lu_conv import LUInvertibleConv1x1, lu_conv_num_params
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.bijectors.squeeze import Squeeze
from calozoo.bijectors.unet import ContextEmbedding, UNet, embedding_num_params, unet_num_params

tfb = tfp.bijectors

__all__ = ["ConvLayerFlow"]


class ConvLayerFlow(tf.Module):
    """p(image | context images) for one layer: images (N, H, W) (r x alpha), context (N, H, W, C_ctx).

    Density direction (x -> z): Squeeze(`squeeze`) to (h, w, c), then `num_blocks` x [ActNorm, coupling,
    LU 1x1 conv]; z is standard normal. The context is embedded once per call (`ContextEmbedding`, to
    `embedding_channels` features at the squeezed size) and fed to every coupling's U-Net with the
    coupling's unchanged channels; with `embedding_channels=0` the context is subsampled to the squeezed
    size instead (the reference's layer 0).

    `exact_reference=True` builds the exact forms of the reference (FLC-QU-hep/ConvL2LFlow with its nflows fork),
    which an imported reference flow needs: the 1x1 convolutions permute their inputs (`permute_inputs`), the
    splines take the fork's identity-init slopes (`parametrization="nflows-identity-init"`, which replaces the
    spline's parametrization) and the U-Nets apply a LeakyReLU at the bottleneck (`bottleneck_activation`). The
    default keeps calozoo's original forms, with which its models were trained (tests/reference/l2lflow: the
    differences are measured there).

    Example:
        >>> flow = ConvLayerFlow((18, 50), context_channels=3, hidden=4, num_blocks=1)
        >>> flow.log_prob(np.zeros((2, 18, 50)), np.zeros((2, 18, 50, 3))).shape
        TensorShape([2])
    """

    def __init__(self, image_shape, context_channels: int, squeeze=(2, 2), num_blocks: int = 8, hidden: int = 32,
                 down_factors=((3, 5), (3, 5)), embedding_channels: int = 8, spline: SplineSettings | None = None,
                 seed: int = 0, dtype=tf.float32, name: str | None = None, exact_reference: bool = False):
        super().__init__(name=name or "conv_layer_flow")
        self.exact_reference = bool(exact_reference)
        height, width = image_shape
        self.squeeze = Squeeze(squeeze)
        fh, fw = self.squeeze.factors
        if height % fh or width % fw:
            raise ValueError(f"`squeeze` {squeeze} must divide the layer image {height} x {width}.")
        self.image_shape = (int(height), int(width))
        self.squeezed_shape = (height // fh, width // fw, fh * fw)
        self.context_channels, self.embedding_channels = int(context_channels), int(embedding_channels)
        self.spline = spline or SplineSettings(10, 15.0, 1e-3, 1e-3, 1e-3)
        if exact_reference:
            self.spline = SplineSettings(**{**self.spline.as_dict(), "parametrization": "nflows-identity-init"})
        self.dtype = tf.as_dtype(dtype)
        channels = self.squeezed_shape[-1]
        with self.name_scope:
            self.embedding = (ContextEmbedding(context_channels, embedding_channels, squeeze, seed=seed * 101 + 1,
                                               dtype=self.dtype) if embedding_channels else None)
            conditioner_context = embedding_channels or context_channels
            self.actnorms, self.couplings, self.convs = [], [], []
            for k in range(num_blocks):
                self.actnorms.append(ActNorm(channels, dtype=self.dtype, name=f"act_norm{k}"))
                coupling = ImageRQSCoupling(channels, None, self.spline, dtype=self.dtype, name=f"coupling{k}")
                coupling.conditioner = UNet(channels - coupling.transform_channels + conditioner_context,
                                            coupling.num_conditioner_outputs, hidden, down_factors,
                                            seed=seed * 101 + 2 + k, dtype=self.dtype, name=f"unet{k}",
                                            bottleneck_activation=exact_reference)
                self.couplings.append(coupling)
                self.convs.append(LUInvertibleConv1x1(channels, seed=seed * 101 + 50 + k, dtype=self.dtype,
                                                      name=f"conv{k}", permute_inputs=exact_reference))
        self.composition = Composition([
            step
            for norm, coupling, conv in zip(self.actnorms, self.couplings, self.convs)
            for step in (Step.density_forward(norm, 3), _coupling_step(coupling), Step.density_forward(conv, 3))
        ])

    # ----- structure -----------------------------------------------------------------------------
    @property
    def num_params(self) -> int:
        return parameter_count(self)

    @staticmethod
    def expected_num_params(image_shape, context_channels, squeeze=(2, 2), num_blocks=8, hidden=32,
                            down_factors=((3, 5), (3, 5)), embedding_channels=8, num_bins=10) -> int:
        """Trainable parameters from the shapes alone (nothing is built)."""
        channels = squeeze[0] * squeeze[1]
        transformed = (channels + 1) // 2
        unet = unet_num_params(channels - transformed + (embedding_channels or context_channels),
                               transformed * (3 * num_bins - 1), hidden, down_factors)
        per_block = 2 * channels + unet + lu_conv_num_params(channels)
        embedding = embedding_num_params(context_channels, embedding_channels, squeeze) if embedding_channels else 0
        return num_blocks * per_block + embedding

    # ----- passes ---------------------------------------------------------------------------------
    def _as_image(self, x):
        x = tf.convert_to_tensor(x, self.dtype)
        return x[..., None] if len(x.shape) == 3 else x

    def embed(self, context, training=False):
        """The coupling context at the squeezed size, (N, h, w, channels)."""
        context = tf.convert_to_tensor(context, self.dtype)
        if self.embedding is not None:
            return self.embedding(context)
        fh, fw = self.squeeze.factors
        return context[:, ::fh, ::fw]

    def to_base(self, x, context, training=False):
        """(z (N, h, w, c), log|dz/dx| (N,)) for images x (N, H, W)."""
        result = self.composition.to_base(self.squeeze.forward(self._as_image(x)),
                                          conditional_input=self.embed(context, training), training=training)
        return result.output, result.logdet

    def cached_weights(self) -> list:
        """W^-1 of every 1x1 convolution, computed once for a whole generation pass."""
        return [conv.inverse_weight() for conv in self.convs]

    def to_data(self, z, context, inverse_weights=None):
        """(images (N, H, W), log|dx/dz| (N,)) for latents z (N, h, w, c); BatchNorm in inference mode."""
        cached = {conv.name: {"inverse_weight": weight} for conv, weight in zip(self.convs, inverse_weights or [])}
        result = self.composition.to_data(tf.convert_to_tensor(z, self.dtype), step_kwargs=cached,
                                          conditional_input=self.embed(context))
        return self.squeeze.inverse(result.output)[..., 0], result.logdet

    def base_log_prob(self, z):
        return standard_normal_log_prob(tf.reshape(z, [tf.shape(z)[0], -1]), int(np.prod(self.squeezed_shape)))

    def log_prob(self, x, context, training=False):
        """log p(x | context) per image, (N,)."""
        z, logdet = self.to_base(x, context, training)
        return self.base_log_prob(z) + logdet

    def sample(self, context, seed, inverse_weights=None):
        """One image (N, H, W) per context row, from a stateless seed int32[2]."""
        context = tf.convert_to_tensor(context, self.dtype)
        z = stateless.normal(tf.concat([tf.shape(context)[:1], self.squeezed_shape], 0), seed,
                             dtype=self.dtype)
        return self.to_data(z, context, inverse_weights)[0]

    def initialize(self, x, context) -> None:
        """Data-dependent ActNorm initialisation from one batch (eager), block after block."""
        h = self.squeeze.forward(self._as_image(x))
        features = self.embed(context)
        norms = {norm.name: norm for norm in self.actnorms}
        for step in self.composition.steps:
            if step.name in norms:
                norms[step.name].initialize(h.numpy())
            h = step.to_base(h, **({"conditional_input": features} if step.conditioned else {}))[0]


def _coupling_step(coupling: ImageRQSCoupling) -> Step:
    """An image coupling as a step: forward is its density direction, output and log-det from one spline call."""

    def to_base(h, conditional_input=None, training=False):
        return coupling.forward_and_log_det(h, conditional_input, training)

    def to_data(h, conditional_input=None, training=False):
        return coupling.inverse_and_log_det(h, conditional_input)

    return Step(coupling.name, to_base, to_data, conditioned=True, bijector=tfb.Invert(coupling, name=coupling.name))
