"""Benchmark rows of `calozoo.evaluation.timing.time_registered`."""

import json

from calozoo.evaluation.timing import time_registered, write_timing_json


def test_a_shipped_model_gives_one_annotated_row_per_batch_size(tmp_path, capsys):
    rows, environment = time_registered("caloman-ds1-photon", paper_size=False, batch_sizes=(1, 4), repeats=1,
                                        warmup=0, jit_compile=False,
                                        annotate=lambda row: {"published_cpu_ms": 10.0 * row["batch_size"]})
    assert [row["batch_size"] for row in rows] == [1, 4]
    assert all(row["size"] == "shipped" and row["model"] == "caloman-ds1-photon" and row["num_params"] > 0
               and row["mean_ms_per_shower"] > 0 for row in rows)
    assert [row["published_cpu_ms"] for row in rows] == [10.0, 40.0]
    assert "published_cpu_ms 40" in capsys.readouterr().out
    write_timing_json(tmp_path / "t.json", environment, rows)
    assert json.loads((tmp_path / "t.json").read_text())["results"][1]["batch_size"] == 4


def test_a_name_without_an_artifact_is_skipped(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(tmp_path))
    monkeypatch.setattr("calozoo.registry.artifact_roots", lambda: [tmp_path])
    assert time_registered("icaloflow-ds3-electron-student", paper_size=False, batch_sizes=(1,), repeats=1) is None
    assert "no shipped artifact, skipped" in capsys.readouterr().out
