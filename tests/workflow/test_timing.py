"""Benchmark rows of `calozoo.workflow.timing.time_registered` and the benchmark files of `time_runs`."""

import json

from calozoo.workflow import timing
from calozoo.workflow.timing import time_registered, time_runs, write_timing_json


def test_a_shipped_model_gives_one_annotated_row_per_batch_size(tmp_path, capsys):
    rows, environment = time_registered("caloman-ds1-photon", paper_size=False, batch_sizes=(1, 4), repeats=1,
                                        warmup=0, jit_compile=False, prepare=lambda model: f"{model.num_params} seen",
                                        annotate=lambda row: {"published_cpu_ms": 10.0 * row["batch_size"]})
    assert [row["batch_size"] for row in rows] == [1, 4]
    assert all(row["size"] == "shipped" and row["model"] == "caloman-ds1-photon" and row["num_params"] > 0
               and row["mean_ms_per_shower"] > 0 for row in rows)
    assert [row["published_cpu_ms"] for row in rows] == [10.0, 40.0]
    assert rows[0]["prepared"] == f"{rows[0]['num_params']} seen"
    assert "published_cpu_ms 40" in capsys.readouterr().out
    write_timing_json(tmp_path / "t.json", environment, rows)
    assert json.loads((tmp_path / "t.json").read_text())["results"][1]["batch_size"] == 4


def test_a_name_without_an_artifact_is_skipped(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr("calozoo.registry.artifact_roots", lambda: {"shipped": tmp_path, "user": tmp_path})
    assert time_registered("icaloflow-ds3-electron-student", paper_size=False, batch_sizes=(1,), repeats=1) is None
    assert "no shipped artifact, skipped" in capsys.readouterr().out


def test_time_runs_collects_every_timed_run_and_skips_the_missing_ones(monkeypatch, tmp_path):
    def fake_time_registered(name, *, batch_sizes, annotate=None, **_):
        if name == "missing":
            return None
        rows = [dict(model=name, batch_size=b) for b in batch_sizes]
        return [{**row, **annotate(row)} for row in rows], {"threads": 2}

    monkeypatch.setattr(timing, "time_registered", fake_time_registered)
    runs = [dict(name="a", paper_size=True, batch_sizes=(1, 10), repeats=1), dict(name="missing", paper_size=False,
            batch_sizes=(1,), repeats=1), dict(name="b", paper_size=False, batch_sizes=(100,), repeats=1)]
    rows = time_runs(tmp_path / "t.json", runs, annotate=lambda row: {"twice": 2 * row["batch_size"]})
    written = json.loads((tmp_path / "t.json").read_text())
    assert written["results"] == rows and written["environment"] == {"threads": 2}
    assert [(r["model"], r["batch_size"], r["twice"]) for r in rows] == [("a", 1, 2), ("a", 10, 20), ("b", 100, 200)]
