"""Probability density distillation of an IAF student from a MAF teacher (CaloFlow, arXiv:2110.11377).

x-pass: data x -> teacher -> z_T -> student -> x_hat.  z-pass: noise -> student -> x' -> teacher -> z'.
Each pass adds chi^2 of its end points, of every intermediate tensor (permutations included) and of every
MADE output, student and teacher matched in reverse order; loss = beta·x-pass + (1 - beta)·z-pass.
KL(student || teacher) along the z-pass is monitored, not trained on; the best student has the lowest
epoch-mean KL.
"""

from __future__ import annotations

import tensorflow as tf

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow, FlowPass
from calozoo.training.trainer import chi2

__all__ = ["guided_chi2", "pdd_loss", "student_kl"]


def guided_chi2(student: FlowPass, teacher: FlowPass):
    """chi^2 of every recorded student tensor against the teacher's at the same place (reverse order)."""
    total = tf.constant(0.0, student.output.dtype)
    for index, step in enumerate(student.steps):
        total += chi2(step, teacher.steps[-index - 1])
    for index, params in enumerate(student.params):
        total += chi2(params, teacher.params[-index - 1])
    return total


def _check_pair(teacher: AutoregressiveRQSFlow, student: AutoregressiveRQSFlow):
    if teacher.kind != "maf" or student.kind != "iaf":
        raise ValueError(f"Distillation needs a 'maf' teacher and an 'iaf' student; got {teacher.kind!r} and {student.kind!r}.")
    if len(teacher.blocks) != len(student.blocks) or len(teacher.permutations) != len(student.permutations):
        raise ValueError("Teacher and student must have the same number of blocks and permutations.")


def student_kl(teacher, student, noise, condition, training=False):
    """Per-example log q_student(x') - log p_teacher(x') for x' = student(noise), and the z-pass records."""
    student_pass = student.to_data(noise, condition, training=training, record=True)
    teacher_pass = teacher.to_base(student_pass.output, condition, record=True)
    log_student = student.base_log_prob(noise) - student_pass.logdet
    log_teacher = teacher.base_log_prob(teacher_pass.output) + teacher_pass.logdet
    return log_student - log_teacher, student_pass, teacher_pass


def pdd_loss(teacher, student, x, condition, noise, noise_condition, beta=0.5, training=True):
    """The fully guided distillation loss and the batch-mean KL (monitor only).

    Args:
        teacher, student: flows of kind 'maf' and 'iaf' with the same permutations.
        x, condition: data and its condition (x-pass).
        noise, noise_condition: base samples and the conditions they are generated with (z-pass).
    """
    _check_pair(teacher, student)
    teacher_x = teacher.to_base(x, condition, record=True)
    teacher_x = FlowPass(*(tf.nest.map_structure(tf.stop_gradient, (teacher_x.output, teacher_x.logdet,
                                                                      teacher_x.steps, teacher_x.params))))
    student_x = student.to_data(teacher_x.output, condition, training=training, record=True)
    loss_x = chi2(student_x.output, x) + guided_chi2(student_x, teacher_x)

    kl, student_z, teacher_z = student_kl(teacher, student, noise, noise_condition, training=training)
    loss_z = chi2(teacher_z.output, noise) + guided_chi2(student_z, teacher_z)
    loss = beta * loss_x + (1.0 - beta) * loss_z
    return loss, tf.reduce_mean(tf.stop_gradient(kl))
