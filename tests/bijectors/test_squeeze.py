"""Squeeze with per-axis factors: the exact entry mapping, round trips, zero log-det, shape errors."""

import numpy as np
import pytest

from calozoo.bijectors.squeeze import Squeeze
from tests.bijectors.helpers import assert_bijective
from tests.bijectors.image_helpers import Flattened


@pytest.mark.parametrize("factors, shape", [((2, 2), (18, 50, 1)), ((1, 2), (9, 16, 1)), ((3, 2), (9, 16, 2))])
def test_squeeze_moves_each_block_into_channels(factors, shape):
    x = np.random.default_rng(0).normal(size=(3,) + shape)
    y = Squeeze(factors).forward(x).numpy()
    fh, fw = factors
    assert y.shape == (3, shape[0] // fh, shape[1] // fw, shape[2] * fh * fw)
    # channel c * fh * fw + i * fw + j of pixel (a, b) is x[a * fh + i, b * fw + j, c]
    for c in range(shape[2]):
        for i in range(fh):
            for j in range(fw):
                np.testing.assert_array_equal(y[..., c * fh * fw + i * fw + j], x[:, i::fh, j::fw, c])
    np.testing.assert_array_equal(Squeeze(factors).inverse(y).numpy(), x)


def test_squeeze_is_volume_preserving_in_float64():
    squeeze = Squeeze((1, 2))
    x = np.random.default_rng(1).normal(size=(2, 3 * 4))
    assert_bijective(Flattened(squeeze, [3, 4, 1], [3, 2, 2]), x, event_ndims=1, rtol=1e-12)
    assert float(squeeze.forward_log_det_jacobian(np.zeros((1, 3, 4, 1)), event_ndims=3)) == 0.0


def test_squeeze_shape_errors_name_the_fix():
    with pytest.raises(ValueError, match="cannot be squeezed by \\(2, 2\\)"):
        Squeeze((2, 2)).forward(np.zeros((1, 9, 16, 1)))
    with pytest.raises(ValueError, match="two integers >= 1"):
        Squeeze((0, 2))
    assert Squeeze((2, 2)).forward_event_shape([18, 50, 1]) == [9, 25, 4]
    assert Squeeze((1, 2)).inverse_event_shape([9, 8, 2]) == [9, 16, 1]
