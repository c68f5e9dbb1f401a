"""Tests of calozoo.bijectors.made: nflows' MADE with cyclic hidden degrees, feature-major outputs, context path."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from calozoo.artifacts import parameter_count, variables_by_path
from calozoo.bijectors.made import MADE, block_groups, hidden_degrees, made_num_params
from calozoo.bijectors.masked_autoregressive import MaskedAutoregressiveRQS
from calozoo.bijectors.rq_spline import SplineSettings, rqs_inverse
from tests.bijectors.helpers import assert_relative_close


def inputs(batch, features, context, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch, features)), rng.normal(size=(batch, context))


def all_kernels(made):
    return [made.in_kernel, *made.hidden_kernels, made.out_kernel]


def output_jacobian(made, x, c):
    """d out[b, i, m] / d x[b, j] of a MADE, shape (B, D, M, D)."""
    x = tf.constant(x)
    batch, features = x.shape
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = tf.reshape(made(x, c), [batch, features * made.params_per_feature])
    return tape.batch_jacobian(out, x).numpy().reshape(batch, features, made.params_per_feature, features)


def assert_autoregressive(jacobian):
    """Output i depends on no x_j with j >= i."""
    for i in range(jacobian.shape[1]):
        assert np.all(jacobian[:, i, :, i:] == 0), f"output {i} depends on x_{i} or a later feature"


def block_layers(made):
    return [made.input_layer, *made.hidden_layers, made.parameter_output]


# ----- autoregressive structure --------------------------------------------------------------------------------


@pytest.mark.parametrize("features, hidden, num_blocks", [(6, 20, 2), (7, 4, 1)])  # H > D and H < D
def test_autoregressive_property_from_the_jacobian(features, hidden, num_blocks):
    params = 3
    made = MADE(features, context=2, hidden=hidden, params_per_feature=params, num_blocks=num_blocks, seed=3)
    jacobian = output_jacobian(made, *inputs(64, features, 2))  # (B, i, m, j)
    assert_autoregressive(jacobian)
    # The network is not trivially constant: some output of every feature i >= 1 depends on x_{<i}.
    for i in range(1, features):
        assert np.any(jacobian[:, i, :, :i] != 0), f"output {i} depends on none of x_0..x_{i - 1}"


def test_hidden_degrees_cycle():
    # H > D: the degrees 1..D-1 repeat.
    np.testing.assert_array_equal(hidden_degrees(10, 4), [1, 2, 3, 1, 2, 3, 1, 2, 3, 1])
    # H < D: the first H of 1..D-1; degree D-1 is never reached.
    np.testing.assert_array_equal(hidden_degrees(3, 6), [1, 2, 3])
    # nflows' edge cases: D = 2 gives all 1; D = 1 gives all 0 (max(1, D-1) = 1, min(1, D-1) = 0).
    np.testing.assert_array_equal(hidden_degrees(4, 2), [1, 1, 1, 1])
    np.testing.assert_array_equal(hidden_degrees(3, 1), [0, 0, 0])


def test_masks_small_example():
    """D 3, H 4 (degrees 1 2 1 2), M 2: masks written out by hand."""
    made = MADE(features=3, context=0, hidden=4, params_per_feature=2, num_blocks=1, seed=0)
    np.testing.assert_array_equal(
        made.in_kernel.mask.numpy(),
        [[1, 1, 1, 1],  # x_1 (degree 1) feeds every unit (degrees >= 1)
         [0, 1, 0, 1],  # x_2 feeds the degree-2 units only
         [0, 0, 0, 0]],  # x_3 feeds nothing
    )
    np.testing.assert_array_equal(
        made.hidden_kernels[0].mask.numpy(),
        [[1, 1, 1, 1], [0, 1, 0, 1], [1, 1, 1, 1], [0, 1, 0, 1]],
    )
    # Feature-major outputs: columns (feature 1: m0 m1, feature 2: m0 m1, feature 3: m0 m1); strict ">".
    np.testing.assert_array_equal(
        made.out_kernel.mask.numpy(),
        [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 1, 1]],
    )


@pytest.mark.parametrize("features, hidden", [(5, 12), (8, 3)])  # H > D and H < D
def test_masks_follow_the_degrees(features, hidden):
    params = 3
    made = MADE(features, context=1, hidden=hidden, params_per_feature=params, num_blocks=2, seed=1)
    degrees = hidden_degrees(hidden, features)
    input_degrees = np.arange(1, features + 1)
    output_degrees = np.repeat(input_degrees, params)
    expected = [
        degrees[None, :] >= input_degrees[:, None],
        degrees[None, :] >= degrees[:, None],
        degrees[None, :] >= degrees[:, None],
        output_degrees[None, :] > degrees[:, None],  # strict
    ]
    for kernel, mask in zip(all_kernels(made), expected):
        np.testing.assert_array_equal(kernel.mask.numpy(), mask.astype(np.float64), err_msg=kernel.name)
        np.testing.assert_array_equal(kernel.numpy()[~mask], 0.0, err_msg=f"{kernel.name}: masked weights not zero")
        assert np.all(kernel.numpy()[mask] != 0), f"{kernel.name}: an unmasked weight is zero at init"
    # Strict output mask: the first feature's columns are empty; the last hidden degree layer reaches feature D.
    assert not made.out_kernel.mask.numpy()[:, :params].any()


# ----- sizes and training mechanics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "features, context, hidden, num_blocks, params",
    [(5, 1, 64, 2, 23), (6, 0, 10, 1, 4), (3, 4, 2, 0, 1), (1, 2, 7, 3, 5)],
)
def test_made_num_params_counts_the_stored_weights(features, context, hidden, num_blocks, params):
    made = MADE(features, context, hidden, params, num_blocks=num_blocks, seed=0)
    assert parameter_count(made) == made_num_params(features, context, hidden, num_blocks, params)
    assert len(variables_by_path(made)) == 2 * (num_blocks + 2) + (2 if context else 0)
    assert all(v.dtype == tf.float64 for v in made.trainable_variables)


def test_masked_weights_stay_zero_under_tf_keras_adam():
    made = MADE(features=5, context=2, hidden=12, params_per_feature=3, num_blocks=1, seed=2, groups=2)
    x, c = inputs(32, 5, 2)
    target = np.random.default_rng(4).normal(size=(32, 5, 3))
    block_masks = {id(block): mask.numpy().astype(bool)
                   for layer in block_layers(made) for block, mask in zip(layer.blocks, layer.masks)}
    masks = {kernel.name: kernel.mask.numpy().astype(bool) for kernel in all_kernels(made)}
    before = {kernel.name: kernel.numpy().copy() for kernel in all_kernels(made)}
    optimizer = tf_keras.optimizers.Adam(learning_rate=1e-2)
    masked_gradient_seen = False
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((made(x, c) - target) ** 2)
        gradients = tape.gradient(loss, made.trainable_variables)
        for variable, gradient in zip(made.trainable_variables, gradients):
            if id(variable) in block_masks:
                masked_gradient_seen |= bool(np.any(gradient.numpy()[~block_masks[id(variable)]] != 0))
        optimizer.apply_gradients(zip(gradients, made.trainable_variables))
    # The test is only meaningful if the raw gradient would have moved masked weights off zero.
    assert masked_gradient_seen
    for kernel in all_kernels(made):
        mask = masks[kernel.name]
        np.testing.assert_array_equal(kernel.numpy()[~mask], 0.0, err_msg=f"{kernel.name}: masked weights moved")
        assert np.any(kernel.numpy()[mask] != before[kernel.name][mask]), f"{kernel.name}: Adam did not step"


# ----- evaluation in blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("features, hidden, groups", [(6, 20, 3), (9, 4, 4), (40, 96, 8)])
def test_blocks_compute_the_same_function_from_the_same_weights(features, hidden, groups):
    """Blocks only skip zeros: one block per layer and `groups` blocks give the same outputs, solve and weights."""
    dense = MADE(features, context=2, hidden=hidden, params_per_feature=5, num_blocks=2, seed=7, groups=1)
    blocked = MADE(features, context=2, hidden=hidden, params_per_feature=5, num_blocks=2, seed=7, groups=groups)
    for key, value in variables_by_path(dense).items():
        np.testing.assert_array_equal(variables_by_path(blocked)[key].numpy(), value.numpy(), err_msg=key)
    x, c = inputs(16, features, 2)
    assert_relative_close(blocked(x, c), dense(x, c), 1e-13, "params")

    def shift(x_i, params):
        return x_i + tf.reduce_sum(params, axis=-1), tf.zeros_like(x_i)

    for got, expected in zip(blocked.solve(x, c, shift), dense.solve(x, c, shift)):
        assert_relative_close(got, expected, 1e-12, "solve")


def test_large_mades_multiply_little_more_than_half_of_the_output_kernel():
    made = MADE(features=368, context=0, hidden=736, params_per_feature=23, seed=0, dtype=tf.float32)
    assert made.groups == 8
    multiplied = sum(int(np.prod(block.shape)) for block in made.parameter_output.blocks)
    assert multiplied / (736 * 368 * 23) < 0.57
    assert MADE(features=144, context=0, hidden=64, params_per_feature=23, seed=0).groups == 1
    assert block_groups(900, 256) == 1  # fewer hidden units than features: nothing more to skip
    assert block_groups(144, 384) == 4  # iCaloFlow DS2's paper-size Flow-3: four blocks measured fastest


@pytest.mark.parametrize("groups", [1, 3])
def test_parameter_major_outputs_are_nflows_outputs_transposed(groups):
    """`by_parameter` (M, D) holds nflows' feature-major output (D, M), computed from the stored weights with
    nflows' formula, whatever the column blocks."""
    made = MADE(7, context=2, hidden=12, params_per_feature=4, num_blocks=1, seed=4, groups=groups)
    stored = {key: value.numpy() for key, value in variables_by_path(made).items()}
    x, c = inputs(5, 7, 2)

    def relu(v):
        return np.maximum(v, 0.0)

    h = relu(x @ stored["in_kernel"] + stored["in_bias"]
             + relu(c @ stored["ctx_kernel"] + stored["ctx_bias"]))
    h = relu(h @ stored["hidden_kernels/0"] + stored["hidden_biases/0"])
    expected = (h @ stored["out_kernel"] + stored["out_bias"]).reshape(5, 7, 4)
    assert_relative_close(made.by_parameter(x, c), expected.transpose(0, 2, 1), 1e-13, "by_parameter")
    assert_relative_close(made(x, c), expected, 1e-13, "params")


def test_stored_weights_load_into_another_block_layout():
    """Artifacts hold nflows' layout: weights saved from one block layout load into another unchanged."""
    source = MADE(12, context=3, hidden=30, params_per_feature=4, num_blocks=1, seed=1, groups=5)
    target = MADE(12, context=3, hidden=30, params_per_feature=4, num_blocks=1, seed=2, groups=2)
    for key, stored in variables_by_path(source).items():
        variables_by_path(target)[key].assign(stored.numpy())
    x, c = inputs(8, 12, 3)
    assert_relative_close(target(x, c), source(x, c), 1e-13, "params")


# ----- solve, context, dropout ---------------------------------------------------------------------------------


def test_solve_satisfies_the_autoregressive_equations():
    """y_i = f(x_i, params_i(y_{<i})) for an affine f; checked against one full MADE pass on the solution."""
    made = MADE(features=7, context=2, hidden=16, params_per_feature=2, num_blocks=2, seed=5)
    x, c = inputs(16, 7, 2)

    def affine(values, params):
        return values * tf.exp(0.5 * params[..., 0]) + params[..., 1], 0.5 * params[..., 0]

    y, logdet = made.solve(x, c, affine)
    expected_y, expected_logdets = affine(tf.constant(x), made(y, c))
    assert_relative_close(expected_y, y, 1e-12, "solve vs one pass")
    assert_relative_close(tf.reduce_sum(expected_logdets, axis=-1), logdet, 1e-12, "the steps' log-dets, summed")


def naive_sequential(made, spline, z, c):
    """The MAF-RQS sampling direction with D full MADE passes (the textbook loop)."""
    y = np.zeros_like(z)
    for i in range(z.shape[1]):
        params = made(y, c)
        y[:, i] = rqs_inverse(tf.constant(z[:, i]), params[:, i], spline)[0].numpy()
    return y


def test_solve_inverts_the_one_pass_map_of_a_block():
    spline = SplineSettings(tail_bound=4.0)
    made = MADE(features=6, context=3, hidden=18, params_per_feature=spline.num_params, num_blocks=1, seed=6)
    block = MaskedAutoregressiveRQS(made, spline)
    z, c = inputs(20, 6, 3)
    z = 2.0 * z
    y = block.sequential(z, c)
    assert_relative_close(block.one_pass(y, c)[0], z, 1e-10, "one_pass(solve(z)) vs z")
    assert_relative_close(y, naive_sequential(made, spline, z, c), 1e-10, "incremental solve vs D full passes")


def test_context_changes_the_outputs():
    made = MADE(features=5, context=3, hidden=16, params_per_feature=2, num_blocks=1, seed=7)
    x, c = inputs(10, 5, 3)
    base = made(x, c).numpy()
    shifted = made(x, c + 1.0).numpy()
    assert np.all(np.any(base[:, 1:] != shifted[:, 1:], axis=(1, 2))), "context had no effect on some example"
    # nflows-faithful: the strict output mask leaves feature 1's parameters a bias only, context included.
    np.testing.assert_array_equal(base[:, 0], shifted[:, 0])
    np.testing.assert_array_equal(base[:, 0], np.broadcast_to(made.out_bias.numpy()[:2], base[:, 0].shape))


def test_context_path_is_relu_then_added():
    """h_0 = relu(W_in x + b_in + relu(W_c c + b_c)): a context that drives W_c c + b_c negative is ignored."""
    made = MADE(features=4, context=1, hidden=8, params_per_feature=2, num_blocks=1, seed=8)
    made.ctx_kernel.assign(np.ones((1, 8)))
    made.ctx_bias.assign(np.zeros(8))
    x = np.random.default_rng(9).normal(size=(6, 4))
    np.testing.assert_array_equal(made(x, np.full((6, 1), -1.0)).numpy(), made(x, np.full((6, 1), -5.0)).numpy())
    assert np.any(made(x, np.full((6, 1), 1.0)).numpy() != made(x, np.full((6, 1), -1.0)).numpy())


def test_dropout_only_with_training_true():
    made = MADE(features=6, context=2, hidden=32, params_per_feature=2, num_blocks=2, dropout=0.5, seed=10)
    x, c = inputs(8, 6, 2)
    evaluation = made(x, c).numpy()
    np.testing.assert_array_equal(made(x, c, training=False).numpy(), evaluation)
    np.testing.assert_array_equal(made(x, c).numpy(), evaluation)
    first, second = made(x, c, training=True).numpy(), made(x, c, training=True).numpy()
    assert np.any(first != evaluation) and np.any(first != second)
    # No dropout configured: training changes nothing.
    plain = MADE(features=6, context=2, hidden=32, params_per_feature=2, num_blocks=2, dropout=0.0, seed=10)
    np.testing.assert_array_equal(plain(x, c, training=True).numpy(), plain(x, c).numpy())
    # Same seed, same weights: only dropout distinguishes the two.
    np.testing.assert_array_equal(plain(x, c).numpy(), evaluation)


def test_same_seed_same_weights_and_pytorch_init_range():
    a = MADE(features=4, context=2, hidden=9, params_per_feature=3, seed=11)
    b = MADE(features=4, context=2, hidden=9, params_per_feature=3, seed=11)
    for va, vb in zip(a.trainable_variables, b.trainable_variables):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    # torch.nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases.
    assert np.max(np.abs(a.in_kernel.numpy())) <= 1 / np.sqrt(4)
    assert np.max(np.abs(a.out_kernel.numpy())) <= 1 / np.sqrt(9)
    assert np.max(np.abs(a.ctx_kernel.numpy())) <= 1 / np.sqrt(2)


def test_output_shape_and_validation():
    made = MADE(features=4, context=0, hidden=5, params_per_feature=23, seed=0)
    assert made(np.zeros((3, 4))).shape == (3, 4, 23)
    assert made(np.zeros((2, 3, 4))).shape == (2, 3, 4, 23)
    with pytest.raises(ValueError, match=r"`features`, `hidden` and `params_per_feature` must be >= 1; got 0, 5, 2\."):
        MADE(features=0, context=0, hidden=5, params_per_feature=2)


# ----- the per-feature context path (an extension; off in every nflows-compatible MADE) ---------------------------


def made_with_feature_context(seed=4):
    """A MADE whose features 0..4 each read context column 1..5, with a random per-feature kernel."""
    made = MADE(5, context=6, hidden=4, params_per_feature=3, seed=seed, feature_context=np.arange(1, 6))
    made.feature_context_kernel.assign(np.random.default_rng(seed).normal(size=(5, 3)))
    return made


def test_feature_context_adds_each_features_own_column_times_its_kernel():
    made = made_with_feature_context()
    plain = MADE(5, context=6, hidden=4, params_per_feature=3, seed=4)
    x, c = inputs(8, 5, 6)
    expected = plain(x, c).numpy() + c[:, 1:6, None] * made.feature_context_kernel.numpy()[None]
    np.testing.assert_allclose(made(x, c).numpy(), expected, rtol=1e-12)
    assert parameter_count(made) == made_num_params(5, 6, 4, 1, 3, feature_context=True)
    assert made_num_params(5, 6, 4, 1, 3, feature_context=True) - made_num_params(5, 6, 4, 1, 3) == 15


def test_feature_context_starts_at_zero_and_keeps_the_autoregressive_structure():
    fresh = MADE(5, context=6, hidden=4, params_per_feature=3, seed=4, feature_context=np.arange(1, 6))
    plain = MADE(5, context=6, hidden=4, params_per_feature=3, seed=4)
    x, c = inputs(8, 5, 6)
    np.testing.assert_array_equal(fresh(x, c).numpy(), plain(x, c).numpy())
    assert_autoregressive(output_jacobian(made_with_feature_context(), x, c))


def test_feature_context_needs_one_valid_column_per_feature():
    with pytest.raises(ValueError, match="`feature_context` must give one context column in 0..5 per feature"):
        MADE(5, context=6, hidden=4, params_per_feature=3, feature_context=np.arange(2, 7))
    with pytest.raises(ValueError, match="per feature"):
        MADE(5, context=6, hidden=4, params_per_feature=3, feature_context=np.arange(4))


# ----- context-only hidden units (an extension; 0 in every nflows-compatible MADE) ------------------------------


def test_context_units_get_degree_0_before_the_cycle():
    np.testing.assert_array_equal(hidden_degrees(6, 10, context_units=2), [0, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(hidden_degrees(6, 10), [1, 2, 3, 4, 5, 6])


def test_context_units_bring_the_context_to_the_first_feature_and_keep_the_structure():
    """nflows' first feature sees no hidden unit, so not the context either; with context units it does. The
    masked count (nflows' layout) is unchanged and the outputs stay autoregressive."""
    x, c = inputs(8, 7, 2)
    shifted = c + np.array([1.0, 0.0])
    plain = MADE(7, context=2, hidden=4, params_per_feature=3, num_blocks=2, seed=3)
    made = MADE(7, context=2, hidden=4, params_per_feature=3, num_blocks=2, seed=3, context_units=2)
    np.testing.assert_array_equal(plain(x, c).numpy()[:, 0], plain(x, shifted).numpy()[:, 0])
    assert np.abs(made(x, c).numpy()[:, 0] - made(x, shifted).numpy()[:, 0]).max() > 1e-4
    assert parameter_count(made) == parameter_count(plain) == made_num_params(7, 2, 4, 2, 3)
    assert_autoregressive(output_jacobian(made, x, c))


@pytest.mark.parametrize("extension", [dict(feature_context=np.arange(1, 6)), dict(context_units=3)])
def test_solve_inverts_a_block_with_either_extension(extension):
    spline = SplineSettings(num_bins=4, tail_bound=3.0)
    made = MADE(5, context=6, hidden=6, params_per_feature=spline.num_params, seed=2, **extension)
    if made.feature_context is not None:
        made.feature_context_kernel.assign(0.3 * np.random.default_rng(2).normal(size=(5, spline.num_params)))
    block = MaskedAutoregressiveRQS(made, spline)
    y, c = inputs(16, 5, 6, seed=7)
    x = block.inverse(y, conditional_input=c)
    np.testing.assert_allclose(block.forward(x, conditional_input=c).numpy(), y, atol=1e-10)


def test_context_units_need_a_context_and_a_free_unit():
    with pytest.raises(ValueError, match="`context_units` must lie in"):
        MADE(5, context=0, hidden=4, params_per_feature=3, context_units=1)
    with pytest.raises(ValueError, match="`context_units` must lie in"):
        MADE(5, context=2, hidden=4, params_per_feature=3, context_units=4)
