"""Training from showers streamed off disk: the same split as in memory, iCaloFlow's streamed batches, resume."""

import contextlib
import json

import numpy as np
import pytest
import tensorflow as tf

import calozoo.data.stream as stream
from calozoo.data.files import read_showers, train_validation_split, write_showers
from calozoo.data.incident_energies import sample_incident_energies
from calozoo.data.stream import ShowerBatches, ShowerFiles, ShowerRows
from calozoo.data.synthetic import synthesize_showers
from calozoo.models.icaloflow import ICaloFlow, ICaloFlowConfig
from calozoo.training.icaloflow import FlowData, StreamedFlowData, train_icaloflow
from calozoo.training.trainer import train_loop

TINY = dict(energy_hidden=8, first_layer_hidden=8, layer_hidden=8, num_blocks=2)


@pytest.fixture(scope="module")
def ds2_files(tmp_path_factory):
    """Two synthetic DS2 files (14 and 10 showers) and one file with both, one after the other."""
    directory = tmp_path_factory.mktemp("ds2")
    energies = sample_incident_energies("2", 24, 0)
    showers = synthesize_showers("2", energies, seed=1)
    write_showers(directory / "a.h5", energies[:14], showers[:14], attrs={"synthetic": True})
    write_showers(directory / "b.h5", energies[14:], showers[14:], attrs={"synthetic": True})
    write_showers(directory / "ab.h5", energies, showers, attrs={"synthetic": True})
    return [directory / "a.h5", directory / "b.h5"], directory / "ab.h5"


def test_the_heldout_split_is_todays_split(ds2_files):
    """The rows the shipped model cards' reproduce commands rely on (seed 0, fraction 0.25 of 24 rows)."""
    from calozoo.workflow.recipe import heldout_rows

    train, held = heldout_rows(24, 0.25, 0)
    assert held.tolist() == [2, 4, 10, 11, 18, 21]
    np.testing.assert_array_equal(train, train_validation_split(24, 0.25, 0)[0])


class _Captured(Exception):
    pass


def _training_input(monkeypatch, data, streaming):
    """The showers `train_to_artifact` hands the family's trainer, read into memory."""
    from calozoo.registry import REGISTRY, Family
    from calozoo.workflow.recipe import train_to_artifact

    captured = {}

    def capture(model, showers, energies, *args, **kwargs):
        captured["showers"] = showers.read_all()[1] if isinstance(showers, ShowerRows) else showers
        raise _Captured

    family = REGISTRY.families["icaloflow"]
    monkeypatch.setitem(REGISTRY._families, "icaloflow", Family("icaloflow", family.build, capture))
    with pytest.raises(_Captured):
        train_to_artifact("icaloflow-ds2-electron-teacher", data, overrides=TINY, heldout_fraction=0.25, seed=0,
                          streaming=streaming)
    return captured["showers"]


def test_streamed_training_rows_of_two_files_are_the_in_memory_rows_of_one(monkeypatch, ds2_files, tmp_path):
    monkeypatch.chdir(tmp_path)
    parts, together = ds2_files
    in_memory = _training_input(monkeypatch, str(together), "never")
    streamed = _training_input(monkeypatch, [str(p) for p in parts], "always")
    np.testing.assert_array_equal(streamed, in_memory)
    np.testing.assert_array_equal(in_memory, read_showers(together)[1][train_validation_split(24, 0.25, 0)[0]])


def test_the_card_metrics_read_the_heldout_rows_of_every_file(monkeypatch, ds2_files):
    from calozoo.evaluation import heldout
    from calozoo.workflow.recipe import model_card_metrics

    parts, together = ds2_files
    monkeypatch.setattr(heldout, "heldout_metrics", lambda model, showers, energies: showers)
    model = ICaloFlow(ICaloFlowConfig(**TINY))
    showers = model_card_metrics(model, parts, 0.25, 0)
    np.testing.assert_array_equal(showers, read_showers(together)[1][[2, 4, 10, 11, 18, 21]])


def test_the_card_metrics_take_a_bounded_seeded_sample_of_a_large_heldout_split(monkeypatch):
    from calozoo.workflow import recipe

    rows = np.arange(0, 300, 3)
    assert recipe.heldout_sample(rows, 10, 0) is rows
    monkeypatch.setattr(recipe, "MAX_HELDOUT_BYTES", 4 * 10 * 7)
    sample = recipe.heldout_sample(rows, 10, 0)
    assert len(sample) == 7 and np.all(np.diff(sample) > 0) and set(sample) <= set(rows)
    np.testing.assert_array_equal(sample, recipe.heldout_sample(rows, 10, 0))


def test_streamed_flow_inputs_are_those_of_the_in_memory_path(ds2_files):
    parts, together = ds2_files
    model = ICaloFlow(ICaloFlowConfig(**TINY))
    energies, showers = read_showers(together)
    rows = np.array([2, 3, 15])
    in_memory = FlowData(model, showers[rows], energies[rows])
    streamed = StreamedFlowData(model, ShowerRows(ShowerFiles(parts), rows))
    for mine, theirs in zip(streamed.arrays("energy_flow"), in_memory.arrays("energy_flow")):
        np.testing.assert_array_equal(mine, theirs)
    gathered = in_memory._layer_batch(*(tf.constant(a) for a in in_memory.arrays("layer_flow")))
    paired = streamed._layer_batch(*streamed._layer_pairs(tf.constant(energies[rows]), tf.constant(showers[rows])))
    for mine, theirs in zip(paired, gathered):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


FAST = {"validation_fraction": 0.25, "energy_flow": {"batch_size": 64, "schedule": {"name": "constant", "lr": 3e-3}},
        "layer_flow": {"batch_size": 120, "schedule": {"name": "constant", "lr": 3e-3}}}


def test_a_streamed_icaloflow_teacher_learns_from_two_files(ds2_files, tmp_path):
    parts, _ = ds2_files
    rows = ShowerRows(ShowerFiles(parts), train_validation_split(24, 0.2, 0)[0])
    results = train_icaloflow(ICaloFlow(ICaloFlowConfig(**TINY)), rows, None, tmp_path, settings=FAST, epochs=3,
                              progress=False, parts=("layer_flow",))
    for name, result in results.items():
        losses = [h["loss"] for h in result.history]
        assert losses[-1] < losses[0] and np.isfinite(result.best_metric), f"{name}: {losses}"
    assert results["layer_flow"].steps == 3 * -(-14 * 44 // 120)  # 14 fitting showers x 44 layer pairs


def test_streamed_input_under_a_mirrored_strategy_trains_like_without_one(ds2_files, tmp_path):
    """The streamed batches go through tf.distribute unchanged: one-device mirrored training gives the weights of
    plain training (the multi-worker path is tested on loopback in test_distribute.py)."""
    from calozoo.training.distribute import make_strategy

    parts, _ = ds2_files
    rows = ShowerRows(ShowerFiles(parts), train_validation_split(24, 0.2, 0)[0])
    weights = []
    for strategy in (None, make_strategy("mirrored")):
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            model = ICaloFlow(ICaloFlowConfig(**TINY))
        name = "plain" if strategy is None else "mirrored"
        results = train_icaloflow(model, rows, None, tmp_path / name, settings=FAST, epochs=2, progress=False,
                                  parts=("layer_flow",), strategy=strategy)
        assert results["layer_flow"].history[-1]["loss"] < results["layer_flow"].history[0]["loss"]
        weights.append([v.numpy() for v in model.trainable_variables])
    # The replica path sums the gradients in another order: after Adam's steps that leaves ~1e-8 relative on weights
    # near zero (measured 3e-11 absolute); a batch that went astray would move them by orders of magnitude more.
    for plain, mirrored in zip(*weights):
        np.testing.assert_allclose(mirrored, plain, rtol=1e-6, atol=1e-9)


def test_a_streamed_icaloflow_student_distils_flow3(ds2_files, tmp_path):
    parts, _ = ds2_files
    rows = ShowerRows(ShowerFiles(parts), train_validation_split(24, 0.2, 0)[0])
    teacher, student = ICaloFlow(ICaloFlowConfig(**TINY, seed=1)), ICaloFlow(ICaloFlowConfig(**TINY, role="student",
                                                                                             seed=2))
    results = train_icaloflow(student, rows, None, tmp_path, teacher=teacher, settings=FAST, epochs=3,
                              progress=False, parts=("layer_flow",))
    losses = [h["loss"] for h in results["layer_flow"].history]
    assert losses[-1] < losses[0], losses


class Scale(tf.Module):
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(0.0, dtype=tf.float64)


class _KilledIn(ShowerBatches):
    """Batches that stop the process (KeyboardInterrupt) after `after` batches of epoch `epoch`."""

    def __init__(self, showers, epoch, after):
        super().__init__(showers, lambda e, s: (tf.cast(tf.reduce_sum(s, axis=1, keepdims=True), tf.float64),
                                                  tf.math.log(e)))
        self.kill = (epoch, after)

    def batches(self, batch_size, seed, epoch):
        for count, batch in enumerate(super().batches(batch_size, seed, epoch)):
            if (epoch, count) == self.kill:
                raise KeyboardInterrupt("killed")
            yield batch


def _fit(module, source, directory, resume=False):
    def loss_fn(deposit, log_energy):
        mse = tf.reduce_mean((module.w * tf.math.log1p(deposit) - log_energy) ** 2)
        return mse, mse

    return train_loop(module, loss_fn, source, epochs=3, batch_size=3, learning_rate=0.05, checkpoint_dir=directory,
                      evaluate=lambda monitor: monitor, metric_name="mse", resume=resume, seed=5, progress=False)


def test_a_streamed_run_killed_mid_epoch_resumes_from_the_last_finished_epoch(ds2_files, tmp_path, monkeypatch):
    monkeypatch.setattr(stream, "BLOCK_BYTES", 4 * 6480 * 4)  # several blocks per epoch
    rows = ShowerRows(ShowerFiles(ds2_files[0]), np.arange(24))
    with pytest.raises(KeyboardInterrupt):
        _fit(Scale(), _KilledIn(rows, epoch=1, after=4), tmp_path)
    assert [h["epoch"] for h in json.loads((tmp_path / "history.json").read_text())["history"]] == [1]
    resumed = Scale()
    result = _fit(resumed, _KilledIn(rows, epoch=-1, after=0), tmp_path, resume=True)
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    uninterrupted = Scale()
    _fit(uninterrupted, _KilledIn(rows, epoch=-1, after=0), tmp_path / "fresh")
    assert resumed.w.numpy() == uninterrupted.w.numpy()


def test_auto_streams_icaloflow_input_above_the_size_limit_only(monkeypatch, ds2_files):
    from calozoo.workflow import recipe

    parts, _ = ds2_files
    size = 24 * 6480 * 4
    monkeypatch.setattr(recipe, "STREAM_ABOVE_BYTES", size)
    assert not recipe.use_streaming("icaloflow", parts, "auto")
    monkeypatch.setattr(recipe, "STREAM_ABOVE_BYTES", size - 1)
    assert recipe.use_streaming("icaloflow", parts, "auto")
    assert not recipe.use_streaming("calopointflow", parts, "auto")
    assert not recipe.use_streaming("icaloflow", parts, "never")
