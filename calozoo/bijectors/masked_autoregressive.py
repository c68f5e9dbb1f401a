"""MAF-RQS: a masked autoregressive rational-quadratic spline block; IAF-RQS is its `tfb.Invert`."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from calozoo.bijectors.made import MADE
from calozoo.bijectors.rq_spline import SplineSettings, rqs_forward, rqs_inverse
from calozoo.bijectors.zuko_made import ZukoMADE

tfb = tfp.bijectors

__all__ = ["MaskedAutoregressiveRQS", "MAF", "IAF", "maf_block", "iaf_block"]


class MaskedAutoregressiveRQS(tfb.Bijector):
    """One autoregressive RQS block on the flow's bijector direction (base -> data), as TFP's MAF.

    inverse (data y -> base x), one MADE pass:  x_i = S(y_i; theta_i(y_{<i}))
    forward (base x -> data y), D sequential passes: y_i = S^{-1}(x_i; theta_i(y_{<i}))

    With `spline_direction="forward"`, S is the spline itself: nflows' MAF-RQS (density in one pass,
    the CaloFlow teacher). With `"inverse"`, S is the inverse spline; wrapped in `tfb.Invert` this is
    nflows' IAF-RQS (sampling in one pass, the CaloFlow student): z -> x = RQS^{-1}(z; theta(z)).

    The condition is passed as `conditional_input` (through `bijector_kwargs` by the block's name).

    References:
        Papamakarios et al., arXiv:1705.07057; Kingma et al., arXiv:1606.04934; Durkan et al., arXiv:1906.04032.
    """

    def __init__(self, made: MADE | ZukoMADE, spline: SplineSettings, spline_direction="forward", validate_args=False,
                 name=None):
        parameters = dict(locals())
        if spline_direction not in ("forward", "inverse"):
            raise ValueError(f"`spline_direction` must be 'forward' or 'inverse'; got {spline_direction!r}.")
        if made.params_per_feature != spline.num_params:
            raise ValueError(
                f"The MADE gives {made.params_per_feature} parameters per feature but a {spline.num_bins}-bin "
                f"spline needs {spline.num_params}."
            )
        name = name or "masked_autoregressive_rqs"
        with tf.name_scope(name) as name:
            self.made = made
            self.spline = spline
            self.spline_direction = spline_direction
            super().__init__(
                forward_min_event_ndims=1,
                validate_args=validate_args,
                dtype=made.dtype,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict()

    def _one_pass_elementwise(self, values, params):
        """The spline of the one-pass direction on parameters laid out (..., 3K-1, D)."""
        fn = rqs_forward if self.spline_direction == "forward" else rqs_inverse
        return fn(values, params, self.spline, param_axis=-2)

    def _sequential_elementwise(self, values, params):
        fn = rqs_inverse if self.spline_direction == "forward" else rqs_forward
        return fn(values, params, self.spline)

    def one_pass(self, y, conditional_input=None, training=False):
        """The one-pass direction with everything distillation needs.

        Returns:
            (x, log|dx/dy| per example, the MADE output laid out (..., 3K-1, D)).
        """
        params = self.made.by_parameter(y, conditional_input, training=training)
        x, logdet = self._one_pass_elementwise(y, params)
        return x, tf.reduce_sum(logdet, axis=-1), params

    def sequential(self, x, conditional_input=None, training=False):
        """The D-step direction: y with x_i = S(y_i; theta_i(y_{<i}))."""
        return self.sequential_with_log_det(x, conditional_input, training)[0]

    def sequential_with_log_det(self, x, conditional_input=None, training=False):
        """The D-step direction and its log|dy/dx| per example, kept from the solve's last step of each feature
        (as nflows does), not recomputed from the solved y (see `MADE.solve`)."""
        return self.made.solve(x, conditional_input, self._sequential_elementwise, training=training)

    def _inverse(self, y, conditional_input=None):
        return self.one_pass(y, conditional_input)[0]

    def _inverse_log_det_jacobian(self, y, conditional_input=None):
        return self.one_pass(y, conditional_input)[1]

    def _forward(self, x, conditional_input=None):
        return self.sequential(x, conditional_input)

    def _forward_log_det_jacobian(self, x, conditional_input=None):
        return self.sequential_with_log_det(x, conditional_input)[1]


MAF = MaskedAutoregressiveRQS


def maf_block(made: MADE, spline: SplineSettings, name: str) -> MaskedAutoregressiveRQS:
    """A teacher block: density (data -> base) in one pass, sampling in D passes."""
    return MaskedAutoregressiveRQS(made, spline, spline_direction="forward", name=name)


def iaf_block(made: MADE, spline: SplineSettings, name: str) -> tfb.Invert:
    """A student block: sampling (base -> data) in one pass, x = RQS^{-1}(z; theta(z)); density in D passes."""
    return tfb.Invert(MaskedAutoregressiveRQS(made, spline, spline_direction="inverse", name=f"{name}_maf"), name=name)


IAF = iaf_block
