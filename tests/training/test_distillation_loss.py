"""The distillation loss of calozoo.training.distillation against values computed by hand and in NumPy.

The guided loss pairs the student's k-th recorded tensor with the teacher's k-th from the end (the student runs
the teacher's transforms in the opposite direction); a same-order pairing, swapped passes, swapped beta weights or
a KL with the wrong sign must all change the numbers below.
"""

import numpy as np
import pytest
import tensorflow as tf

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow, FlowPass
from calozoo.training.distillation import adopt_permutations, guided_chi2, pdd_loss, student_kl
from calozoo.training.trainer import chi2
from tests.models.helpers import randomize


def constant(values):
    return tf.constant(np.asarray(values, np.float64))


def test_chi2_is_the_batch_mean_of_the_summed_squares():
    # rows: (1 - 0)^2 + (2 - 0)^2 = 5 and (0 - 3)^2 + (1 - 1)^2 = 9 -> mean 7
    assert chi2(constant([[1, 2], [0, 1]]), constant([[0, 0], [3, 1]])).numpy() == 7.0


def test_guided_chi2_pairs_the_student_with_the_teacher_in_reverse_order():
    """Two showers, one feature. Reverse pairing: steps (s0, t2) 2 + (s1, t1) 1 + (s2, t0) 0.5, MADE outputs
    (p0, q1) 1 + (p1, q0) 1: 5.5. The same-order pairing would give 21.5 + 4 = 25.5."""
    student = FlowPass(constant([[0], [0]]), None,
                       steps=[constant([[0], [1]]), constant([[2], [2]]), constant([[4], [0]])],
                       params=[constant([[1, 2], [0, 0]]), constant([[0, 0], [1, 1]])])
    teacher = FlowPass(None, None, steps=[constant([[4], [1]]), constant([[1], [1]]), constant([[0], [3]])],
                       params=[constant([[0, 0], [0, 0]]), constant([[1, 1], [1, 0]])])
    assert guided_chi2(student, teacher).numpy() == 5.5


# ----- the whole loss on two tiny flows ---------------------------------------------------------------------
def numpy_chi2(a, b):
    """Mean over the batch of the squared difference summed over everything else (a MADE output is 3-D)."""
    difference = np.asarray(a) - np.asarray(b)
    return float(np.mean(np.sum(difference.reshape(len(difference), -1) ** 2, axis=-1)))


def numpy_guided(student: FlowPass, teacher: FlowPass, reverse: bool = True):
    """The guided chi^2 written out in NumPy; `reverse=False` pairs the tensors in the same order instead."""
    def partner(tensors, index):
        return tensors[-index - 1] if reverse else tensors[index]

    return (sum(numpy_chi2(s, partner(teacher.steps, i)) for i, s in enumerate(student.steps))
            + sum(numpy_chi2(p, partner(teacher.params, i)) for i, p in enumerate(student.params)))


@pytest.fixture(scope="module")
def pair():
    """A MAF teacher and an IAF student (3 features, 1 condition, 3 blocks) with different weights, the student
    on the teacher's permutations, every weight moved off its initial value (some start at zero)."""
    rng = np.random.default_rng(5)
    flows = []
    for kind, seed in (("maf", 1), ("iaf", 2)):
        flow = AutoregressiveRQSFlow(features=3, context=1, hidden=6, num_blocks=3, kind=kind,
                                     permutations=[rng.permutation(3) for _ in range(2)], seed=seed,
                                     dtype=tf.float64, name=kind)
        randomize(flow, 0.2, rng)
        flows.append(flow)
    adopt_permutations(flows[1], flows[0])
    return flows


def inputs(seed=0):
    rng = np.random.default_rng(seed)
    return [constant(rng.normal(size=shape)) for shape in ((4, 3), (4, 1), (4, 3), (4, 1))]


def test_pdd_loss_is_beta_x_pass_plus_one_minus_beta_z_pass(pair):
    teacher, student = pair
    x, condition, noise, noise_condition = inputs()
    beta = 0.3
    loss, mean_kl = pdd_loss(teacher, student, x, condition, noise, noise_condition, beta=beta, training=False)

    teacher_x = teacher.to_base(x, condition, record=True)  # x-pass: data -> teacher -> student -> back to data
    student_x = student.to_data(teacher_x.output, condition, record=True)
    student_z = student.to_data(noise, noise_condition, record=True)  # z-pass: noise -> student -> teacher -> noise
    teacher_z = teacher.to_base(student_z.output, noise_condition, record=True)
    x_pass = numpy_chi2(student_x.output, x) + numpy_guided(student_x, teacher_x)
    z_pass = numpy_chi2(teacher_z.output, noise) + numpy_guided(student_z, teacher_z)
    np.testing.assert_allclose(loss.numpy(), beta * x_pass + (1 - beta) * z_pass, rtol=1e-12)
    # the inputs tell the pairings and the weights apart
    same_order = (beta * (numpy_chi2(student_x.output, x) + numpy_guided(student_x, teacher_x, reverse=False))
                  + (1 - beta) * (numpy_chi2(teacher_z.output, noise) + numpy_guided(student_z, teacher_z, False)))
    assert abs(same_order - loss.numpy()) > 1e-3 * loss.numpy()
    assert abs((1 - beta) * x_pass + beta * z_pass - loss.numpy()) > 1e-3 * loss.numpy()
    assert np.isfinite(mean_kl.numpy())


def test_student_kl_is_log_q_student_minus_log_p_teacher_at_the_students_samples(pair):
    """Both densities recomputed independently: the student's by inverting it (its sequential direction)."""
    teacher, student = pair
    _, _, noise, condition = inputs(1)
    kl, _, _ = student_kl(teacher, student, noise, condition)
    samples = student.sample_from_noise(noise, condition)
    log_q, log_p = student.log_prob(samples, condition).numpy(), teacher.log_prob(samples, condition).numpy()
    assert np.abs(log_q - log_p).min() > 1e-3  # the sign is observable
    np.testing.assert_allclose(kl.numpy(), log_q - log_p, rtol=1e-8, atol=1e-10)


def test_swapping_teacher_and_student_is_refused_or_changes_the_loss(pair):
    teacher, student = pair
    x, condition, noise, noise_condition = inputs()
    with pytest.raises(ValueError, match="'maf' teacher and an 'iaf' student"):
        pdd_loss(student, teacher, x, condition, noise, noise_condition)
    swapped = student_kl(student, teacher, noise, noise_condition)[0]
    np.testing.assert_raises(AssertionError, np.testing.assert_allclose,
                             swapped.numpy(), student_kl(teacher, student, noise, noise_condition)[0].numpy())
