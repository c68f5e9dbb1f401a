"""How every calozoo flow composes its steps: one ordered list, run towards the base or towards the data.

A flow lists its steps once, in the density order x -> z. `Composition.to_base` runs them in that order and
`Composition.to_data` in reverse, summing log|det J| and, on request, recording the tensor after every step and
what each step reports besides (the MADE outputs that CaloFlow's distillation compares). `Composition.bijector`
is the same list as one `tfb.Chain` (base -> data) built from each step's own TFP bijector, so the TFP view
and the production passes cannot disagree on the order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import tensorflow as tf
import tensorflow_probability as tfp

tfb = tfp.bijectors

__all__ = ["Composition", "FlowPass", "Step"]


class FlowPass:
    """What one pass through a flow produced: output, log|det| and (optionally) everything on the way.

    `steps` holds the input and the tensor after every step (permutations included) in the order of the
    pass; `params` holds what the steps reported besides their output (one MADE output per one-pass block).
    """

    def __init__(self, output, logdet, steps=None, params=None):
        self.output, self.logdet, self.steps, self.params = output, logdet, steps or [], params or []


@dataclass(frozen=True)
class Step:
    """One invertible step of a flow.

    `to_base(h, **kwargs)` and `to_data(h, **kwargs)` return `(h', log|dh'/dh| or None[, reported])`: None
    marks a volume-preserving step, a third element is recorded in `FlowPass.params`. A `conditioned` step
    receives the pass's keyword arguments; `bijector` is the step as a TFP bijector mapping its base side to
    its data side (for `Composition.bijector`).
    """

    name: str
    to_base: Callable[..., tuple]
    to_data: Callable[..., tuple]
    conditioned: bool = False
    bijector: tfb.Bijector | None = None

    @classmethod
    def of(cls, module, conditioned: bool = False, bijector=None) -> Step:
        """A step from a module whose `to_base` / `to_data` already return (h, log|det|)."""
        return cls(module.name, module.to_base, module.to_data, conditioned,
                   module if bijector is None else bijector)

    @classmethod
    def permutation(cls, permutation) -> Step:
        """A `FixedPermutation` (volume-preserving)."""
        return cls(permutation.name, lambda h: (permutation.to_base(h), None),
                   lambda h: (permutation.to_data(h), None), bijector=permutation.bijector)

    @classmethod
    def density_forward(cls, bijector, event_ndims: int, conditioned: bool = False) -> Step:
        """A TFP bijector whose forward is the density direction (ActNorm, 1x1 convolutions, image couplings)."""

        def to_base(h, **kwargs):
            return bijector.forward(h, **kwargs), bijector.forward_log_det_jacobian(h, event_ndims, **kwargs)

        def to_data(h, **kwargs):
            return bijector.inverse(h, **kwargs), bijector.inverse_log_det_jacobian(h, event_ndims, **kwargs)

        return cls(bijector.name, to_base, to_data, conditioned, tfb.Invert(bijector, name=bijector.name))


class Composition:
    """An ordered sequence of `Step`s, listed in the density order x -> z.

    Example:
        >>> import numpy as np
        >>> from calozoo.bijectors.layerwise_permutation import FixedPermutation
        >>> flow = Composition([Step.permutation(FixedPermutation(np.array([1, 2, 0]), name="p"))])
        >>> flow.to_base(tf.constant([[10.0, 20.0, 30.0]], tf.float64)).output.numpy().tolist()
        [[20.0, 30.0, 10.0]]
    """

    def __init__(self, steps: Sequence[Step]):
        self.steps = tuple(steps)
        names = [step.name for step in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"Step names must be unique; got {names}.")

    def to_base(self, x, step_kwargs: Mapping[str, dict] | None = None, record: bool = False, **kwargs) -> FlowPass:
        """Density direction x -> z with log|dz/dx|; `kwargs` go to every conditioned step, `step_kwargs[name]`
        to one step only."""
        return self._run(self.steps, "to_base", x, step_kwargs, record, kwargs)

    def to_data(self, z, step_kwargs: Mapping[str, dict] | None = None, record: bool = False, **kwargs) -> FlowPass:
        """Sampling direction z -> x with log|dx/dz|; arguments as in `to_base`."""
        return self._run(self.steps[::-1], "to_data", z, step_kwargs, record, kwargs)

    @staticmethod
    def _run(steps, direction, h, step_kwargs, record, kwargs) -> FlowPass:
        logdet, history, reported = None, [h], []
        for step in steps:
            arguments = dict(kwargs) if step.conditioned else {}
            arguments.update((step_kwargs or {}).get(step.name, {}))
            h, step_logdet, *extra = getattr(step, direction)(h, **arguments)
            if step_logdet is not None:
                logdet = step_logdet if logdet is None else logdet + step_logdet
            if record:
                history.append(h)
                reported += extra
        if logdet is None:
            logdet = tf.zeros(tf.shape(h)[:-1], h.dtype)
        return FlowPass(h, logdet, history if record else None, reported if record else None)

    def conditioning(self, **kwargs) -> dict:
        """Name-keyed keyword arguments for `bijector()`: `kwargs` for every conditioned step."""
        return {step.name: dict(kwargs) for step in self.steps if step.conditioned}

    def bijector(self, name: str | None = None) -> tfb.Chain:
        """The composition as one TFP bijector, base -> data (condition it with name-keyed kwargs)."""
        missing = [step.name for step in self.steps if step.bijector is None]
        if missing:
            raise ValueError(f"Steps without a TFP bijector: {missing}.")
        return tfb.Chain([step.bijector for step in self.steps], name=name or "composition")
