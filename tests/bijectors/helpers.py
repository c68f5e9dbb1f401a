"""One shared float64 check that a TFP bijector is a bijection with a correct log-det Jacobian."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["assert_bijective", "relative_error", "assert_relative_close"]


def relative_error(actual, expected) -> float:
    """max |actual - expected| / max(1, |expected|), elementwise: absolute near 0, relative for large values."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    if actual.shape != expected.shape:
        raise AssertionError(f"shape mismatch: {actual.shape} vs {expected.shape}")
    if actual.size == 0:
        return 0.0
    return float(np.max(np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))))


def assert_relative_close(actual, expected, rtol: float, what: str) -> None:
    """Fails with the size of the error and `what` was compared."""
    _assert_finite(actual, what)
    error = relative_error(actual, expected)
    assert error < rtol, f"{what}: relative error {error:.3e} >= {rtol:.1e}"


def _assert_finite(value, what: str) -> None:
    value = np.asarray(value)
    bad = ~np.isfinite(value)
    assert not bad.any(), f"{what}: {int(bad.sum())} non-finite entries of {value.size}"


def _autodiff_log_det(fn, x, event_ndims: int) -> np.ndarray:
    """log|det J| of fn at x from a GradientTape: slogdet of the batch Jacobian, or the elementwise derivative.

    `tf.identity(x)` is what is fed to `fn`, so that a TFP bijector cache filled outside the tape cannot hand
    back a tensor without gradient history.
    """
    x = tf.identity(x)
    with tf.GradientTape(persistent=event_ndims == 1) as tape:
        tape.watch(x)
        y = fn(x)
    if event_ndims == 0:
        derivative = tape.gradient(y, x)  # the sum of the outputs' gradients
        assert derivative is not None, "the output does not depend on the input (no gradient)"
        return np.log(np.abs(derivative.numpy()))
    if event_ndims == 1:
        if len(x.shape) != 2:
            raise ValueError(f"`x` must have shape (batch, features) for event_ndims=1; got {x.shape}.")
        # Without pfor: one backward pass per output feature, fast for the small D used in tests, and no
        # vectorisation of the sequential (while_loop) direction.
        jacobian = tape.batch_jacobian(y, x, experimental_use_pfor=False)
        assert jacobian is not None, "the output does not depend on the input (no Jacobian)"
        sign, logdet = np.linalg.slogdet(jacobian.numpy())
        assert np.all(sign != 0), "singular Jacobian"
        return logdet
    raise ValueError(f"`event_ndims` must be 0 or 1; got {event_ndims}.")


def assert_bijective(bijector, x, event_ndims: int, bijector_kwargs=None, rtol: float = 1e-8, y=None):
    """Checks a bijector in float64 in both directions.

    * x -> forward -> inverse gives x back, and y -> inverse -> forward gives y back (relative error < rtol);
      the second call always receives `tf.identity(...)` of the first one's output, so the bijector's
      cache cannot fake the round trip by returning the remembered input;
    * fldj(x) = -ildj(forward(x)) and fldj(inverse(y)) = -ildj(y);
    * fldj(x) and ildj(y) equal the log-det of the autodiff Jacobian (slogdet of a `batch_jacobian` for
      event_ndims=1, the log of the elementwise derivative for event_ndims=0);
    * every output is finite.

    Args:
        bijector: a `tfb.Bijector`.
        x: points in the forward domain; shape (batch, features) when event_ndims=1.
        event_ndims: 0 (elementwise) or 1 (vector events).
        bijector_kwargs: keyword arguments passed to every bijector call (e.g. `conditional_input=`).
        rtol: bound on the relative errors of the round trips and log-dets.
        y: points in the inverse domain; defaults to x.

    Returns:
        forward(x) as a numpy array.
    """
    kwargs = dict(bijector_kwargs or {})
    x = tf.convert_to_tensor(x, tf.float64)
    y = x if y is None else tf.convert_to_tensor(y, tf.float64)
    assert bijector.dtype in (None, tf.float64), f"bijector dtype is {bijector.dtype}, expected float64"

    # x -> z -> x
    z = bijector.forward(x, **kwargs)
    assert z.dtype == tf.float64 and z.shape == x.shape, f"forward gave {z.dtype} {z.shape} for {x.shape}"
    _assert_finite(z, "forward(x)")
    x_back = bijector.inverse(tf.identity(z), **kwargs)
    assert x_back is not x, "the inverse returned its cached input"
    assert_relative_close(x_back, x, rtol, "x -> forward -> inverse")

    # y -> u -> y
    u = bijector.inverse(y, **kwargs)
    _assert_finite(u, "inverse(y)")
    y_back = bijector.forward(tf.identity(u), **kwargs)
    assert_relative_close(y_back, y, rtol, "y -> inverse -> forward")

    # fldj = -ildj, each computed at freshly created tensors.
    fldj_x = bijector.forward_log_det_jacobian(tf.identity(x), event_ndims=event_ndims, **kwargs)
    ildj_z = bijector.inverse_log_det_jacobian(tf.identity(z), event_ndims=event_ndims, **kwargs)
    ildj_y = bijector.inverse_log_det_jacobian(tf.identity(y), event_ndims=event_ndims, **kwargs)
    fldj_u = bijector.forward_log_det_jacobian(tf.identity(u), event_ndims=event_ndims, **kwargs)
    for value, what in ((fldj_x, "fldj(x)"), (ildj_z, "ildj(z)"), (ildj_y, "ildj(y)"), (fldj_u, "fldj(u)")):
        _assert_finite(value, what)
    expected_shape = x.shape if event_ndims == 0 else x.shape[:-1]
    assert np.broadcast_shapes(np.shape(fldj_x), expected_shape) == tuple(expected_shape), (
        f"fldj shape {np.shape(fldj_x)} does not fit the batch shape {expected_shape}"
    )
    assert_relative_close(-np.asarray(ildj_z), np.broadcast_to(fldj_x, ildj_z.shape), rtol, "fldj(x) vs -ildj(z)")
    assert_relative_close(-np.asarray(fldj_u), np.broadcast_to(ildj_y, fldj_u.shape), rtol, "ildj(y) vs -fldj(u)")

    # Against autodiff, in both directions.
    forward_autodiff = _autodiff_log_det(lambda t: bijector.forward(t, **kwargs), x, event_ndims)
    assert_relative_close(
        np.broadcast_to(fldj_x, forward_autodiff.shape), forward_autodiff, rtol, "fldj vs autodiff log|det J|"
    )
    inverse_autodiff = _autodiff_log_det(lambda t: bijector.inverse(t, **kwargs), y, event_ndims)
    assert_relative_close(
        np.broadcast_to(ildj_y, inverse_autodiff.shape), inverse_autodiff, rtol, "ildj vs autodiff log|det J^-1|"
    )
    return z.numpy()
