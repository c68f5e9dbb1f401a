"""ConvL2LFlow state_dicts (the reference's `weights`, as numpy arrays) onto calozoo's convolutional layer flows.

The reference is FLC-QU-hep/ConvL2LFlow with its nflows fork (ThorstenBuss/nflows); a `ConvFlow` state_dict has
`transform._transforms.{i}` for [SqueezeTransform, then per block ActNorm, PiecewiseRationalQuadraticCoupling
with a U-Net, OneByOneConvolution] and `embedding_net.{j}` (layers >= 1). The mapping, checked against the reference
code by tests/reference/test_l2lflow_reference.py:

- Images: the reference is channels-first (N, C, r, alpha), calozoo channels-last (N, r, alpha, C); the squeeze
  orders the channels alike (c f_r f_a + i f_a + j).
- `Conv2d.weight` (out, in, kh, kw) -> kernel (kh, kw, in, out); `ConvTranspose2d.weight` (in, out, kh, kw) ->
  `tf.nn.conv2d_transpose` filter (kh, kw, out, in): both `transpose(2, 3, 1, 0)`. BatchNorm2d weight, bias,
  running_mean, running_var -> gamma, beta, moving_mean, moving_variance (both eps 1e-5).
- U-Net (with `cyclic_padding`, the paper's setting): `encoder_blocks.{l}` / `decoder_blocks.{l}` hold
  [pad, conv, BN, act, pad, conv(, BN, act)] at indices 1, 2, 5, 6; calozoo's `ups` and `decoders` are listed from
  the deepest level up, the reference's from level 0.
- Context embedding (squeeze <= 2, cyclic): `embedding_net` indices 0, 3, 5, 8 -> calozoo's four convolutions.
- ActNorm: `log_scale`, `shift` as they are; calozoo's `initialized` is set.
- OneByOneConvolution: `lower_entries` in `np.tril_indices(C, -1)` order (calozoo's), `upper_entries` in
  `np.triu_indices(C, 1)` order (calozoo stores the strict upper triangle in the transposed `tril` order, so they
  are reordered), `unconstrained_upper_diag` -> raw_diagonal, `bias`, `permutation._permutation` -> permutation.
  The reference permutes the conv's INPUT (W = L U P): the calozoo flow must be built with `exact_reference=True`.
- Coupling: the fork's mask transforms the first C // 2 channels (calozoo's first (C + 1) // 2; C is even after a
  squeeze); the U-Net output is channel-major, [K widths, K heights, K - 1 slopes] per transformed channel, as
  calozoo's; the fork's identity-init slopes need `exact_reference=True` too.

The energy flow (`MAFlow`) is nflows MADE-RQS blocks, mapped by `calozoo.bijectors.nflows_state_dict.assign_made`;
its transforms are [Permutation, MADE] per block, a permutation BEFORE each block, whereas calozoo's
`AutoregressiveRQSFlow` puts one after each block: `assign_permuted_maf` maps permutation k + 1 to calozoo's
permutation k and the reference's first permutation to the flow's `input_permutation` (L2LFlow's config
`energy_input_permutation: true`); a flow without one gets it returned, for the caller to apply to the input.
"""

from __future__ import annotations

import re

import numpy as np

from calozoo.bijectors.nflows_state_dict import assign_made
from calozoo.errors import CheckpointError

__all__ = ["TRANSFORM_PREFIX", "conv_kernel", "assign_conv", "assign_batch_norm", "assign_unet", "assign_embedding",
           "assign_actnorm", "assign_lu_conv", "assign_conv_layer_flow", "assign_permuted_maf"]

TRANSFORM_PREFIX = "transform._transforms"
_UNET_CONV, _UNET_NORM = (1, 5), (2, 6)  # indices in a cyclic-padding block: pad, conv, BN, act, pad, conv, BN, act
_EMBEDDING_CONVS = (0, 3, 5, 8)  # conv1x1, act, pad, conv3x3, act, strided conv, act, pad, conv3x3


def _array(state_dict: dict, key: str) -> np.ndarray:
    if key not in state_dict:
        raise CheckpointError(f"the state_dict has no '{key}' (is it a ConvL2LFlow `ConvFlow` with cyclic padding "
                              "and the sizes of this model?).")
    return np.asarray(state_dict[key], np.float64)


def _assign(variable, value: np.ndarray, key: str) -> None:
    if tuple(value.shape) != tuple(variable.shape):
        raise CheckpointError(f"{key} has shape {value.shape}; calozoo expects {tuple(variable.shape)}.")
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def conv_kernel(weight) -> np.ndarray:
    """A PyTorch Conv2d (out, in, kh, kw) or ConvTranspose2d (in, out, kh, kw) weight as TF's kernel / filter."""
    return np.transpose(np.asarray(weight, np.float64), (2, 3, 1, 0))


def assign_conv(conv, state_dict: dict, prefix: str) -> None:
    """`prefix.weight`, `prefix.bias` of a Conv2d or ConvTranspose2d into a calozoo `Conv2D` / `TransposedConv2D`."""
    _assign(conv.kernel, conv_kernel(_array(state_dict, f"{prefix}.weight")), f"{prefix}.weight")
    _assign(conv.bias, _array(state_dict, f"{prefix}.bias"), f"{prefix}.bias")


def assign_batch_norm(norm, state_dict: dict, prefix: str) -> None:
    """A BatchNorm2d (affine, running statistics) into a calozoo `BatchNorm`."""
    for name, key in (("gamma", "weight"), ("beta", "bias"), ("moving_mean", "running_mean"),
                      ("moving_variance", "running_var")):
        _assign(getattr(norm, name), _array(state_dict, f"{prefix}.{key}"), f"{prefix}.{key}")


def assign_unet(unet, state_dict: dict, prefix: str) -> None:
    """The reference `UNet` (cyclic padding) under `prefix` into a calozoo `UNet` of the same sizes."""
    levels = len(unet.encoders)
    if f"{prefix}.encoder_blocks.0.1.weight" not in state_dict:
        raise CheckpointError(f"{prefix} is not a U-Net with cyclic padding (no encoder_blocks.0.1.weight); the "
                              "reference's zero-padded U-Net is not implemented by calozoo.")
    if f"{prefix}.encoder_blocks.{levels}.1.weight" in state_dict:
        raise CheckpointError(f"{prefix} has more than the {levels} levels of this model's U-Net.")
    for level in range(levels):
        encoder, decoder = unet.encoders[level], unet.decoders[levels - 1 - level]
        for layer, index in zip((encoder[0], encoder[2]), _UNET_CONV):
            assign_conv(layer, state_dict, f"{prefix}.encoder_blocks.{level}.{index}")
        for layer, index in zip((encoder[1], encoder[3]), _UNET_NORM):
            assign_batch_norm(layer, state_dict, f"{prefix}.encoder_blocks.{level}.{index}")
        assign_conv(decoder[0], state_dict, f"{prefix}.decoder_blocks.{level}.1")
        assign_batch_norm(decoder[1], state_dict, f"{prefix}.decoder_blocks.{level}.2")
        assign_conv(decoder[2], state_dict, f"{prefix}.decoder_blocks.{level}.5")
        if level:
            assign_batch_norm(decoder[3], state_dict, f"{prefix}.decoder_blocks.{level}.6")
        assign_conv(unet.downs[level], state_dict, f"{prefix}.downs.{level}")
        assign_conv(unet.ups[levels - 1 - level], state_dict, f"{prefix}.ups.{level}")


def assign_embedding(embedding, state_dict: dict, prefix: str = "embedding_net") -> None:
    """The reference's context embedding (squeeze <= 2, cyclic padding) into a calozoo `ContextEmbedding`."""
    for layer, index in zip(embedding.layers, _EMBEDDING_CONVS):
        assign_conv(layer, state_dict, f"{prefix}.{index}")


def assign_actnorm(norm, state_dict: dict, prefix: str) -> None:
    """An nflows ActNorm into a calozoo `ActNorm` (marked initialised)."""
    _assign(norm.log_scale, _array(state_dict, f"{prefix}.log_scale"), f"{prefix}.log_scale")
    _assign(norm.shift, _array(state_dict, f"{prefix}.shift"), f"{prefix}.shift")
    norm.initialized.assign(True)


def assign_lu_conv(conv, state_dict: dict, prefix: str) -> None:
    """An nflows OneByOneConvolution into a calozoo `LUInvertibleConv1x1` built with `permute_inputs=True`."""
    if not conv.permute_inputs:
        raise CheckpointError(f"{prefix}: the reference permutes the 1x1 convolution's inputs (W = L U P); build the "
                              "calozoo flow with `exact_reference=True`.")
    channels = conv.channels
    rows, cols = np.triu_indices(channels, 1)
    upper = np.zeros((channels, channels))
    upper[rows, cols] = _array(state_dict, f"{prefix}.upper_entries")
    lower_rows, lower_cols = np.tril_indices(channels, -1)
    _assign(conv.lower_entries, _array(state_dict, f"{prefix}.lower_entries"), f"{prefix}.lower_entries")
    _assign(conv.upper_entries, upper[lower_cols, lower_rows], f"{prefix}.upper_entries")
    _assign(conv.raw_diagonal, _array(state_dict, f"{prefix}.unconstrained_upper_diag"),
            f"{prefix}.unconstrained_upper_diag")
    _assign(conv.bias, _array(state_dict, f"{prefix}.bias"), f"{prefix}.bias")
    permutation = np.asarray(state_dict[f"{prefix}.permutation._permutation"]).astype(np.int64)
    if sorted(permutation.tolist()) != list(range(channels)):
        raise CheckpointError(f"{prefix}.permutation._permutation is not a permutation of 0..{channels - 1}.")
    conv.permutation.assign(permutation)


def _check_coupling(state_dict: dict, prefix: str, coupling) -> None:
    transformed = np.asarray(state_dict[f"{prefix}.transform_features"]).tolist()
    if transformed != list(range(coupling.transform_channels)):
        raise CheckpointError(f"{prefix} transforms channels {transformed}; calozoo's coupling transforms the first "
                              f"{coupling.transform_channels}.")


def assign_conv_layer_flow(flow, state_dict: dict, prefix: str = TRANSFORM_PREFIX) -> None:
    """A reference `ConvFlow` state_dict into a calozoo `ConvLayerFlow` of the same sizes (built with
    `exact_reference=True`). Raises CheckpointError where the two do not fit."""
    if not flow.exact_reference:
        raise CheckpointError("the calozoo layer flow must be built with `exact_reference=True` to hold a reference "
                              "ConvFlow (1x1-conv permutation, spline slopes, U-Net bottleneck).")
    indices = sorted({int(m.group(1)) for key in state_dict
                      if (m := re.match(rf"{re.escape(prefix)}\.(\d+)\.", key))})
    blocks = len(flow.couplings)
    if indices != list(range(1, 3 * blocks + 1)):
        raise CheckpointError(f"the state_dict's transforms {indices[:4]}... are not a squeeze and {blocks} blocks of "
                              "[ActNorm, coupling, 1x1 conv] (was it built with use_act_norm and use_one_by_ones?).")
    has_embedding = any(key.startswith("embedding_net.") for key in state_dict)
    if has_embedding != (flow.embedding is not None):
        raise CheckpointError("the state_dict and the calozoo flow disagree on the context embedding (the "
                              "reference's layer 0 has none: build it with embedding_channels=0).")
    for k, (norm, coupling, conv) in enumerate(zip(flow.actnorms, flow.couplings, flow.convs)):
        assign_actnorm(norm, state_dict, f"{prefix}.{3 * k + 1}")
        _check_coupling(state_dict, f"{prefix}.{3 * k + 2}", coupling)
        assign_unet(coupling.conditioner, state_dict, f"{prefix}.{3 * k + 2}.transform_net")
        assign_lu_conv(conv, state_dict, f"{prefix}.{3 * k + 3}")
    if has_embedding:
        assign_embedding(flow.embedding, state_dict)


def assign_permuted_maf(flow, state_dict: dict, prefix: str = TRANSFORM_PREFIX) -> np.ndarray:
    """A reference `MAFlow` ([Permutation, MADE-RQS] per block) into an `AutoregressiveRQSFlow` (MAF), whose
    permutation k becomes the reference's permutation k + 1. Returns the reference's first permutation `p`.

    A flow with an `input_permutation` (and blocks - 1 permutations after its blocks) takes `p` there and is then
    the reference's function. A flow without one (one permutation per block) gets the identity as its last
    permutation and models `x[:, p]` (nflows' Permutation forward): log p(x) = flow.log_prob(x[:, p]), and a
    sample is flow.sample(...)[:, argsort(p)]."""
    blocks = len(flow.mades)
    after = blocks - (flow.input_permutation is not None)
    if flow.kind != "maf" or len(flow.permutations) != after:
        raise CheckpointError("the reference's energy flow needs a MAF with an input permutation and one permutation "
                              "between blocks, or one permutation per block.")
    permutations = []
    for k in range(blocks):
        key = f"{prefix}.{2 * k}._permutation"
        if key not in state_dict or f"{prefix}.{2 * k + 1}.autoregressive_net.initial_layer.weight" not in state_dict:
            raise CheckpointError(f"transform {2 * k} / {2 * k + 1} of the state_dict is not [Permutation, MADE] "
                                  "(the reference's `permutation: random`).")
        permutation = np.asarray(state_dict[key]).astype(np.int64)
        if sorted(permutation.tolist()) != list(range(flow.features)):
            raise CheckpointError(f"{key} is not a permutation of 0..{flow.features - 1}.")
        permutations.append(permutation)
        assign_made(flow.mades[k], state_dict, f"{prefix}.{2 * k + 1}.autoregressive_net")
    if f"{prefix}.{2 * blocks}._permutation" in state_dict:
        raise CheckpointError(f"the state_dict has more than the {blocks} blocks of this model.")
    if flow.input_permutation is None:
        pairs = list(zip(flow.permutations, permutations[1:] + [np.arange(flow.features)]))
    else:
        pairs = list(zip(flow.permutations, permutations[1:])) + [(flow.input_permutation, permutations[0])]
    for permutation, values in pairs:
        permutation.permutation.assign(values)
        permutation.inverse_permutation.assign(np.argsort(values))
    return permutations[0]
