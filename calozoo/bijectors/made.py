"""MADE: the masked autoregressive network of nflows v0.14, with its exact masks, context path and sizes."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.artifacts import StoredArray
from calozoo.networks.init import torch_uniform
from calozoo.networks.masked_blocks import MaskedBlockDense

__all__ = ["MADE", "made_num_params", "hidden_degrees", "block_groups", "parameter_major_columns"]


def hidden_degrees(num_hidden_units: int, num_features: int, context_units: int = 0) -> np.ndarray:
    """Degrees of a hidden layer: cycling 1 .. D-1 (nflows, `random_mask=False`), after `context_units` units of
    degree 0 (see `MADE`)."""
    largest = max(1, num_features - 1)
    smallest = min(1, num_features - 1)
    cycling = np.arange(num_hidden_units - context_units) % largest + smallest
    return np.concatenate([np.zeros(context_units, cycling.dtype), cycling])


def block_groups(features: int, hidden: int) -> int:
    """Column blocks per masked layer: 8 for large MADEs with at least as many hidden units as features, 4 for
    mid-sized ones, else 1.

    Measured with benchmarks/made_blocks.py (benchmarks/made_blocks.json, one core, float32, XLA): eight blocks take
    0.63 to 0.80 of the time of one at the CaloFlow paper sizes (D 368, H 736; D 504, H 504) for batches of 1 to
    1 000; at iCaloFlow DS2's Flow-3 (D 144, H 384, two hidden layers) four blocks take 0.85 to 0.97 of it and eight
    0.91 to 1.06; with fewer hidden units than features (iCaloFlow DS3's Flow-3, D 900, H 256) the hidden degrees
    stop at H, the single block already skips the inputs that feed nothing, and more blocks cost 4 to 8 % more; at
    the shipped compact sizes the extra small products cost 10 to 40 % more.
    """
    if hidden < features:
        return 1
    if features * hidden >= BLOCKS_FROM:
        return 8
    return 4 if features * hidden >= FOUR_BLOCKS_FROM else 1


# features x hidden from which a MADE is evaluated in 8 blocks, and in 4 (see `block_groups`)
BLOCKS_FROM = 65_536
FOUR_BLOCKS_FROM = 32_768


def made_num_params(features: int, context: int, hidden: int, num_blocks: int, params_per_feature: int,
                    feature_context: bool = False) -> int:
    """Trainable parameters of a MADE: D·H+H + C·H+H + n·(H²+H) + H·D·M + D·M, + D·M with `feature_context`."""
    size = features * hidden + hidden + num_blocks * (hidden * hidden + hidden)
    size += hidden * features * params_per_feature + features * params_per_feature
    if context:
        size += context * hidden + hidden
    if feature_context:
        size += features * params_per_feature
    return size


class MADE(tf.Module):
    """Masked autoencoder for distribution estimation, feature-major outputs, as nflows' MADE.

    h_0 = relu(W_in x + b_in + relu(W_c c + b_c)); h_k = dropout(relu(W_k h_{k-1} + b_k)), k = 1..n;
    out = W_out h_n + b_out, reshaped to (..., D, M). Output (i, m) depends only on x_{<i}.

    Inside, the hidden units are ordered by degree, so that every masked layer is block triangular and is kept as
    `MaskedBlockDense` column blocks (`groups` of them, `block_groups` by default): the products skip the
    structurally zero part; the output layer's columns run parameter-major inside each block of features
    (`parameter_major_columns`), so that `by_parameter` hands the splines an (M, D) layout without a transpose.
    The weights are stored, imported and counted as nflows lays them out (hidden units
    cycling through the degrees, masked entries as zeros): `in_kernel`, `in_bias`, `hidden_kernels`,
    `hidden_biases`, `out_kernel`, `out_bias`, `ctx_kernel`, `ctx_bias` are `StoredArray`s in that layout, each
    with its `mask` where it has one. The initial weights are the same numbers whatever `groups` is.

    `feature_context` (an extension, not in nflows; default none) gives each feature i its own context column
    c_{j(i)}: out_i += c_{j(i)} * W_f[i], a (D, M) kernel that starts at zero. The shared path squeezes the whole
    context through the H hidden units; this one lets, for example, voxel i of the previous calorimeter layer
    reach voxel i's spline directly. Like every context input it leaves the autoregressive structure intact.

    `context_units` (an extension, default 0 as nflows): that many hidden units per layer get degree 0. They
    see the context and no input, and feed every output. In nflows' MADE the first feature's parameters see no
    hidden unit, hence not the context either, and with fewer hidden units than features the degrees stop at H,
    so the first features of every block see only a few: in iCaloFlow DS3's compact Flow-3 (D 900, H 32) the
    voxels first in a block's order became the hottest voxel of up to 13 % of the generated layers, whatever the layer.

    `compute_dtype` (None: the weights' dtype) runs the one-pass products in another precision, e.g. bfloat16 for
    mixed-precision training (calozoo.training.precision); weights and outputs keep their dtype, and `solve`
    always runs in the weights' dtype.

    References:
        Germain et al., MADE, arXiv:1502.03509; Papamakarios et al., MAF, arXiv:1705.07057.

    Example:
        >>> made = MADE(features=3, context=1, hidden=8, params_per_feature=2, seed=0)
        >>> made(np.zeros((4, 3)), np.zeros((4, 1))).shape
        TensorShape([4, 3, 2])
    """

    def __init__(
        self,
        features: int,
        context: int,
        hidden: int,
        params_per_feature: int,
        num_blocks: int = 1,
        dropout: float = 0.0,
        seed: int = 0,
        dtype=tf.float64,
        groups: int | None = None,
        feature_context=None,
        context_units: int = 0,
        name: str | None = None,
    ):
        super().__init__(name=name or "made")
        if features < 1 or hidden < 1 or params_per_feature < 1:
            raise ValueError(
                f"`features`, `hidden` and `params_per_feature` must be >= 1; got {features}, {hidden}, "
                f"{params_per_feature}."
            )
        self.features, self.context, self.hidden = features, context, hidden
        self.params_per_feature, self.num_blocks, self.dropout = params_per_feature, num_blocks, float(dropout)
        self.groups = block_groups(features, hidden) if groups is None else int(groups)
        if not 0 <= context_units < hidden or (context_units and not context):
            raise ValueError(f"`context_units` must lie in [0, hidden = {hidden}) and needs a context; "
                             f"got {context_units} with {context} context features.")
        self.context_units = int(context_units)
        self.feature_context = None if feature_context is None else np.asarray(feature_context, np.int64)
        if self.feature_context is not None and (self.feature_context.shape != (features,) or not context
                                                 or not np.all((0 <= self.feature_context)
                                                               & (self.feature_context < context))):
            raise ValueError(f"`feature_context` must give one context column in 0..{context - 1} per feature "
                             f"({features}); got shape {self.feature_context.shape}.")
        self.compute_dtype = None
        np_dtype = tf.as_dtype(dtype).as_numpy_dtype
        rng = np.random.default_rng(seed)
        input_degrees = np.arange(1, features + 1)
        degrees = hidden_degrees(hidden, features, self.context_units)
        output_degrees = np.repeat(input_degrees, params_per_feature)  # feature-major
        # drawn in nflows' unit order (the same numbers as before the blocks), then reordered by degree
        layers = [_masked_init(rng, input_degrees, degrees, False, np_dtype)]
        layers += [_masked_init(rng, degrees, degrees, False, np_dtype) for _ in range(num_blocks)]
        layers.append(_masked_init(rng, degrees, output_degrees, True, np_dtype))
        if context:
            ctx_kernel = torch_uniform(rng, context, (context, hidden), np_dtype)
            ctx_bias = torch_uniform(rng, context, (hidden,), np_dtype)
        self.order = np.argsort(degrees, kind="stable")  # position k inside holds nflows' hidden unit order[k]
        self.feature_edges = np.unique(np.linspace(0, features, min(self.groups, features) + 1).round().astype(int))
        self.output_columns = parameter_major_columns(self.feature_edges, params_per_feature)
        with self.name_scope:
            self.input_layer = self._block_layer(*layers[0], rows=None, columns=self.order, name="input")
            self.hidden_layers = [self._block_layer(*layer, rows=self.order, columns=self.order, name=f"h{j}")
                                  for j, layer in enumerate(layers[1:-1])]
            self.parameter_output = self._block_layer(*layers[-1], rows=self.order, columns=self.output_columns,
                                                      name="output", edges=self.feature_edges * params_per_feature)
            if context:
                self.context_kernel = tf.Variable(ctx_kernel[:, self.order], name="context_kernel")
                self.context_bias = tf.Variable(ctx_bias[self.order], name="context_bias")
            if self.feature_context is not None:
                self.feature_context_kernel = tf.Variable(np.zeros((features, params_per_feature), np_dtype),
                                                          name="feature_context_kernel")
        self._stored_arrays()

    def _block_layer(self, kernel, mask, bias, rows, columns, name, edges=None):
        """A `MaskedBlockDense` from a kernel in nflows' order, its rows / columns reordered (by hidden degree, or
        the output's parameter-major order)."""
        if rows is not None:
            kernel, mask = kernel[rows], mask[rows]
        if columns is not None:
            kernel, mask, bias = kernel[:, columns], mask[:, columns], bias[columns]
        return MaskedBlockDense(kernel, mask, bias, self.groups, edges=edges, name=name)

    # ----- weights in nflows' layout -------------------------------------------------------------
    def _stored_arrays(self) -> None:
        """The `StoredArray`s that save, load, import and count the weights in nflows' layout."""
        inverse = np.argsort(self.order)
        inverse_outputs = np.argsort(self.output_columns)
        hidden_columns = (lambda t: tf.gather(t, inverse, axis=-1), lambda v: v[..., self.order])
        both = (lambda t: tf.gather(tf.gather(t, inverse, axis=0), inverse, axis=1),
                lambda v: v[self.order][:, self.order])
        as_is = (lambda t: t, lambda v: v)
        output = (lambda t: tf.gather(tf.gather(t, inverse, axis=0), inverse_outputs, axis=1),
                  lambda v: v[self.order][:, self.output_columns])
        output_columns = (lambda t: tf.gather(t, inverse_outputs, axis=-1), lambda v: v[..., self.output_columns])

        def kernel(name, layer, layout):
            to_stored, from_stored = layout
            return StoredArray(name, lambda: to_stored(layer.dense_kernel()),
                               lambda v: layer.assign_dense_kernel(from_stored(v)), (layer.n_in, layer.n_out),
                               layer.bias.dtype, mask=to_stored(tf.constant(layer.dense_mask)))

        def plain(name, variable, layout):
            to_stored, from_stored = layout
            return StoredArray(name, lambda: to_stored(tf.convert_to_tensor(variable)),
                               lambda v: variable.assign(from_stored(v)), variable.shape, variable.dtype)

        self.in_kernel = kernel("in_kernel", self.input_layer, hidden_columns)
        self.in_bias = plain("in_bias", self.input_layer.bias, hidden_columns)
        self.hidden_kernels = [kernel(f"hidden_kernels/{j}", layer, both) for j, layer in enumerate(self.hidden_layers)]
        self.hidden_biases = [plain(f"hidden_biases/{j}", layer.bias, hidden_columns)
                              for j, layer in enumerate(self.hidden_layers)]
        self.out_kernel = kernel("out_kernel", self.parameter_output, output)
        self.out_bias = plain("out_bias", self.parameter_output.bias, output_columns)
        if self.context:
            self.ctx_kernel = plain("ctx_kernel", self.context_kernel, hidden_columns)
            self.ctx_bias = plain("ctx_bias", self.context_bias, hidden_columns)
        if self.feature_context is not None:
            self.feature_ctx_kernel = plain("feature_ctx_kernel", self.feature_context_kernel, as_is)
        StoredArray.mark(self.variables, owner=self.name)

    # ----- evaluation ----------------------------------------------------------------------------
    @property
    def dtype(self) -> tf.DType:
        return self.parameter_output.bias.dtype

    def first_layer_context(self, context):
        """The part of the first pre-activation that does not depend on x: b_in + relu(W_c c + b_c)."""
        if not self.context:
            return self.input_layer.bias
        if context is None:
            raise ValueError(f"This MADE is conditional ({self.context} context features); pass `context`.")
        bias = tf.cast(self.input_layer.bias, context.dtype)
        return bias + tf.nn.relu(tf.matmul(context, tf.cast(self.context_kernel, context.dtype))
                                 + tf.cast(self.context_bias, context.dtype))

    def _trunk(self, pre_activation, training):
        h = tf.nn.relu(pre_activation)
        for layer in self.hidden_layers:
            h = tf.nn.relu(layer(h))
            if training and self.dropout > 0:
                h = tf.nn.dropout(h, rate=self.dropout)
        return h

    def __call__(self, x, context=None, training=False):
        """Autoregressive parameters, shape (..., D, M), in the weights' dtype (`by_parameter` transposed)."""
        return tf.linalg.matrix_transpose(self.by_parameter(x, context, training))

    def by_parameter(self, x, context=None, training=False):
        """Autoregressive parameters laid out parameter-major, shape (..., M, D): what the splines read fastest
        (calozoo.bijectors.rq_spline, `param_axis=-2`). The output layer computes them in this order."""
        compute = self.compute_dtype or self.dtype
        x = tf.cast(tf.convert_to_tensor(x, dtype=self.dtype), compute)
        if context is not None:
            context = tf.convert_to_tensor(context, dtype=self.dtype)
        if not self.context:
            pre = self.input_layer(x)
        else:
            pre = self.input_layer.product(x) + self.first_layer_context(tf.cast(context, compute))
        out = self._parameter_major(tf.cast(self.parameter_output(self._trunk(pre, training)), self.dtype))
        if self.feature_context is None:
            return out
        return out + self.feature_context_term(context)

    def _parameter_major(self, columns):
        """(..., D·M) in the output layer's column order -> (..., M, D): one reshape per block of features."""
        sizes = np.diff(self.feature_edges)
        lead = tf.shape(columns)[:-1]
        pieces = [tf.reshape(piece, tf.concat([lead, [self.params_per_feature, size]], axis=0))
                  for piece, size in zip(tf.split(columns, (sizes * self.params_per_feature).tolist(), axis=-1),
                                         sizes)]
        return pieces[0] if len(pieces) == 1 else tf.concat(pieces, axis=-1)

    def feature_context_term(self, context):
        """c_{j(i)} * W_f[i] for every feature i, laid out as `by_parameter` (..., M, D): the per-feature context
        path."""
        own = tf.gather(context, self.feature_context, axis=-1)
        return own[..., None, :] * tf.transpose(tf.cast(self.feature_context_kernel, context.dtype))

    def solve(self, targets, context, elementwise, training=False):
        """Solves y_i = elementwise(x_i, params_i(y_{<i})) for y, one feature at a time (D sequential steps).

        The first layer is updated incrementally (rank one per step) and only the output columns of the
        current feature are computed, so a step costs about one hidden-layer product.

        The log-det is summed from each step's elementwise log|dy_i/dx_i|, evaluated at the known x_i with the
        parameters of the solved y_{<i} (what nflows' last pass returns). Recomputing it from the solved y as
        minus the other direction's value is not the same number in floating point: where the slope is tiny the
        solved y has too few digits left in its bin, and the log-det is off by up to 1e-3.

        Args:
            targets: x, shape (B, D).
            context: conditions, shape (B, C) or None.
            elementwise: fn(x_i (B,), params_i (B, M)) -> (y_i (B,), log|dy_i/dx_i| (B,)).
        Returns:
            (y of shape (B, D), log|dy/dx| of shape (B,)).
        """
        targets = tf.convert_to_tensor(targets, dtype=self.dtype)
        if context is not None:
            context = tf.convert_to_tensor(context, dtype=self.dtype)
        in_kernel = self.input_layer.dense_kernel()  # hidden units in degree order, as `pre`
        out_kernel = tf.transpose(self._parameter_major(self.parameter_output.dense_kernel()), [2, 0, 1])  # (D, H, M)
        out_bias = tf.linalg.matrix_transpose(self._parameter_major(self.parameter_output.bias))  # (D, M)
        batch = tf.shape(targets)[0]
        pre = tf.zeros([batch, self.hidden], targets.dtype) + self.first_layer_context(context)
        outputs = tf.TensorArray(targets.dtype, size=self.features)
        logdets = tf.TensorArray(targets.dtype, size=self.features)
        targets_by_feature = tf.transpose(targets)
        if self.feature_context is not None:
            out_bias = out_bias[:, None, :] + tf.transpose(self.feature_context_term(context), [2, 0, 1])  # (D, B, M)

        def step(i, pre, outputs, logdets):
            params = tf.matmul(self._trunk(pre, training), out_kernel[i]) + out_bias[i]
            y_i, logdet_i = elementwise(targets_by_feature[i], params)
            pre = pre + y_i[:, None] * in_kernel[i][None, :]
            return i + 1, pre, outputs.write(i, y_i), logdets.write(i, logdet_i)

        _, _, outputs, logdets = tf.while_loop(
            lambda i, *_: i < self.features, step, (tf.constant(0), pre, outputs, logdets), parallel_iterations=1,
            maximum_iterations=self.features,  # a static trip count lets XLA compile the loop under a GradientTape
        )
        return tf.transpose(outputs.stack()), tf.reduce_sum(logdets.stack(), axis=0)


def parameter_major_columns(feature_edges, params_per_feature: int) -> np.ndarray:
    """The output layer's column order: nflows' column i * M + m (feature i, parameter m) at position k, where
    inside each range of features [a, b) of `feature_edges` the columns run parameter by parameter
    (m = 0: features a..b-1, then m = 1, ...). Each range is one column block, so its product yields an (M, b - a)
    slab and the blocks concatenate to the (M, D) layout."""
    columns = [feature * params_per_feature + m
               for a, b in zip(feature_edges[:-1], feature_edges[1:])
               for m in range(params_per_feature) for feature in range(a, b)]
    return np.asarray(columns, np.int64)


def _masked_init(rng, in_degrees, out_degrees, strict, dtype):
    """nflows' initial (kernel * mask, mask, bias) of a masked layer, kernel (in, out), units in the given order."""
    mask = (out_degrees[None, :] > in_degrees[:, None]) if strict else (out_degrees[None, :] >= in_degrees[:, None])
    fan_in = len(in_degrees)
    kernel = torch_uniform(rng, fan_in, mask.shape, dtype) * mask
    bias = torch_uniform(rng, fan_in, (mask.shape[1],), dtype)
    return kernel, mask, bias
