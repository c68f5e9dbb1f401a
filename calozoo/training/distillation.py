"""Probability density distillation of an IAF student from a MAF teacher (CaloFlow, arXiv:2110.11377).

x-pass: data x -> teacher -> z_T -> student -> x_hat.  z-pass: noise -> student -> x' -> teacher -> z'.
Each pass adds chi^2 of its end points, of every intermediate tensor (permutations included) and of every
MADE output, student and teacher matched in reverse order; loss = beta·x-pass + (1 - beta)·z-pass.
KL(student || teacher) along the z-pass is monitored, not trained on; the best student has the lowest
epoch-mean KL.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

from calozoo.bijectors.autoregressive_flow import AutoregressiveRQSFlow, FlowPass
from calozoo.training.likelihood import batches_per_epoch, total_steps
from calozoo.training.schedules import accumulation_schedule, make_schedule, optimizer_steps_per_epoch
from calozoo.training.trainer import TrainingResult, chi2, row_count, train_loop

__all__ = ["guided_chi2", "pdd_loss", "student_kl", "adopt_permutations", "copy_variables",
           "train_by_distillation"]


def guided_chi2(student: FlowPass, teacher: FlowPass):
    """chi^2 of every recorded student tensor against the teacher's at the same place (reverse order)."""
    total = tf.constant(0.0, student.output.dtype)
    for index, step in enumerate(student.steps):
        total += chi2(step, teacher.steps[-index - 1])
    for index, params in enumerate(student.params):
        total += chi2(params, teacher.params[-index - 1])
    return total


def adopt_permutations(student: AutoregressiveRQSFlow, teacher: AutoregressiveRQSFlow) -> None:
    """The student takes the teacher's permutations position by position (the guided loss pairs the blocks)."""
    if len(student.permutations) != len(teacher.permutations):
        raise ValueError(f"The student has {len(student.permutations)} permutations and the teacher "
                         f"{len(teacher.permutations)}; build both with the same `num_blocks`.")
    for mine, theirs in zip(student.permutations, teacher.permutations):
        mine.permutation.assign(theirs.permutation)
        mine.inverse_permutation.assign(theirs.inverse_permutation)


def copy_variables(target: tf.Module, source: tf.Module) -> None:
    """Assigns every variable of `source` to the same-shaped variable of `target` (a part the student reuses)."""
    mine, theirs = target.variables, source.variables
    shapes = [tuple(v.shape) for v in mine], [tuple(v.shape) for v in theirs]
    if shapes[0] != shapes[1]:
        raise ValueError(f"Cannot copy '{source.name}' into '{target.name}': their variables differ in shape; "
                         "build the student's copy with the teacher's sizes.")
    for variable, value in zip(mine, theirs):
        variable.assign(tf.cast(value, variable.dtype))


def _check_pair(teacher: AutoregressiveRQSFlow, student: AutoregressiveRQSFlow):
    if teacher.kind != "maf" or student.kind != "iaf":
        raise ValueError("Distillation needs a 'maf' teacher and an 'iaf' student; "
                         f"got {teacher.kind!r} and {student.kind!r}.")
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


def train_by_distillation(teacher: AutoregressiveRQSFlow, student: AutoregressiveRQSFlow,
                          train_arrays, spec: dict, *, inputs: Callable, checkpoint_dir,
                          resume: bool = False, seed: int = 0, progress: bool = True,
                          description: str = "student", strategy=None) -> TrainingResult:
    """Trains `student` by `pdd_loss` against the fixed `teacher`; the epoch with the lowest mean KL is kept.

    Args:
        train_arrays: row-aligned arrays that `train_loop` batches, or a batch source (streamed rows).
        spec: {'batch_size', 'epochs', 'schedule', optionally 'beta' (default 0.5), 'jit_compile' and
            'accumulation' (batches per optimizer step by epoch, `schedules.accumulation_schedule`; the schedule
            then counts optimizer steps and a multistep schedule's milestones fall at epoch starts).
        inputs: `inputs(generator, *batch) -> (x, condition, noise_condition)` inside the compiled step; the
            `tf.random.Generator` is the run's (checkpointed) source of randomness.
    """
    generator = tf.random.Generator.from_seed(seed)
    beta = float(spec.get("beta", 0.5))

    def loss_fn(*batch):
        x, condition, noise_condition = inputs(generator, *batch)
        noise = generator.normal(tf.shape(x), dtype=student.dtype)
        return pdd_loss(teacher, student, x, condition, noise, noise_condition, beta=beta)

    holder = tf.Module()
    holder.student, holder.generator = student, generator
    epochs, batch_size = int(spec["epochs"]), int(spec["batch_size"])
    accumulation = accumulation_schedule(spec.get("accumulation"), epochs) if spec.get("accumulation") else None
    if accumulation is None:
        schedule = make_schedule(spec["schedule"], total_steps(spec, row_count(train_arrays)))
    else:
        epoch_steps = optimizer_steps_per_epoch(batches_per_epoch(spec, row_count(train_arrays)), epochs,
                                                accumulation)
        schedule = make_schedule(spec["schedule"], sum(epoch_steps), epoch_steps)
    return train_loop(holder, loss_fn, train_arrays, variables=student.trainable_variables,
                      epochs=epochs, batch_size=batch_size, learning_rate=schedule, accumulation=accumulation,
                      checkpoint_dir=checkpoint_dir, evaluate=lambda mean_kl: mean_kl, metric_name="kl",
                      resume=resume, seed=seed, progress=progress, description=description,
                      jit_compile=bool(spec.get("jit_compile", False)) and strategy is None,
                      strategy=strategy, max_steps_per_epoch=spec.get("max_steps_per_epoch"),
                      patience=spec.get("patience"))
