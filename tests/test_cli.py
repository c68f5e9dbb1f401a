"""The `calozoo` command end to end on tiny models: synthesize, train (and resume), generate, time, bad input."""

import json

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.files import write_showers
from calozoo_tools.cli import main

TINY = ["--set", "hidden=8", "--set", "num_blocks=2", "--set", "energy_hidden=8", "--set", "energy_blocks=2"]


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def assert_one_line_error(result, pattern):
    assert result.exit_code != 0
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(lines) == 1, result.output
    assert pattern in lines[0], result.output


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A synthetic DS1 photon file and a tiny trained teacher + student under one artifact root."""
    root = tmp_path_factory.mktemp("cli")
    mp = pytest.MonkeyPatch()
    mp.setenv("CALOZOO_ARTIFACTS", str(root / "artifacts"))
    data = root / "photons.h5"
    run("synthesize", "1-photons", "-n", 240, "--seed", 3, "-o", data)
    for role in ("teacher", "student"):
        run("train", f"caloflow-ds1-photon-{role}", "--data", data, "--epochs", 1, *TINY, "--workdir",
            root / f"run-{role}", "--no-metrics")
    yield root, data
    mp.undo()


def test_set_values_are_yaml_with_exponents_read_as_numbers():
    from calozoo_tools.train import _overrides

    assert _overrides(["alpha=1e-11", "n=3", "flow={max_lr: 2E-3, name: onecycle}", "on=true"]) == {
        "alpha": 1e-11, "n": 3, "flow": {"max_lr": 2e-3, "name": "onecycle"}, "on": True}


def test_synthesize_labels_the_file_synthetic(workspace):
    _, data = workspace
    with h5py.File(data) as handle:
        assert handle.attrs["synthetic"] and "SYNTHETIC" in handle.attrs["description"]
        assert handle["showers"].shape == (240, 368) and handle["incident_energies"].shape == (240, 1)


def test_train_writes_an_artifact_with_a_model_card(workspace):
    root, data = workspace
    directory = root / "artifacts" / "caloflow-ds1-photon-student" / "v1"
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["training_data"]["synthetic"] is True
    assert metadata["training_data"]["n_train"] + metadata["training_data"]["n_heldout"] == 240
    assert metadata["config_changes"]["hidden"] == 8 and metadata["num_params"] > 0
    card = (directory / "MODEL_CARD.md").read_text()
    assert "SYNTHETIC" in card and "calozoo train caloflow-ds1-photon-student" in card
    assert "Libraries: calozoo 0.1.0, tensorflow 2." in card
    assert "--teacher caloflow-ds1-photon-teacher@user:1" in card  # the teacher trained just before, by version
    listed = {line.split()[0]: line for line in run("list", "caloflow-ds1-photon-*").output.splitlines()}
    assert "user v1" in listed["caloflow-ds1-photon-student"]


def test_resume_continues_from_the_last_epoch(workspace):
    root, data = workspace
    run("train", "caloflow-ds1-photon-teacher", "--data", data, "--epochs", 2, *TINY, "--workdir", root / "run-teacher",
        "--no-metrics", "--resume")
    metadata = json.loads((root / "artifacts" / "caloflow-ds1-photon-teacher" / "v2" / "metadata.json").read_text())
    assert [h["epoch"] for h in metadata["training"]["teacher"]["history"]] == [1, 2]


def test_train_set_changes_the_recipe_and_the_card_says_how(workspace, tmp_path):
    _, data = workspace
    run("train", "caloflow-ds1-photon-teacher", "--data", data, "--epochs", 1, *TINY, "--train-set",
        "teacher.batch_size=64", "--workdir", tmp_path / "run", "--output", tmp_path / "out", "--no-metrics")
    directory = tmp_path / "out" / "caloflow-ds1-photon-teacher" / "v1"
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["training_overrides"] == {"teacher.batch_size": 64}
    assert metadata["training"]["teacher"]["steps"] == -(-metadata["training_data"]["n_train"] * 7 // 10 // 64)
    assert "--train-set teacher.batch_size=64" in (directory / "MODEL_CARD.md").read_text()


def test_a_variant_sets_the_recipe_and_the_card_names_it(workspace, tmp_path):
    """`--variant compact` applies the YAML variant (size, epochs); --set / --epochs on top, and the reproduce
    command names the variant and spells out only the differences."""
    _, data = workspace
    run("train", "caloflow-ds1-photon-teacher", "--variant", "compact", "--data", data, "--epochs", 1,
        "--set", "hidden=8", "--workdir", tmp_path / "run", "--output", tmp_path / "out", "--no-metrics")
    directory = tmp_path / "out" / "caloflow-ds1-photon-teacher" / "v1"
    metadata = json.loads((directory / "metadata.json").read_text())
    assert metadata["variant"] == "compact"
    assert metadata["config_changes"] == {"hidden": 8, "num_blocks": 4}  # hidden from --set, num_blocks from the YAML
    assert metadata["training"]["teacher"]["epochs"] == 1
    command = metadata["retrain_command"].splitlines()[-1]
    assert command.startswith("calozoo train caloflow-ds1-photon-teacher --variant compact --data ")
    assert "--epochs 1" in command and "--set hidden=8" in command and "num_blocks" not in command


def test_an_unknown_variant_is_one_error_line_naming_the_known_ones(workspace, tmp_path):
    _, data = workspace
    result = run("train", "caloflow-ds1-photon-teacher", "--variant", "tiny", "--data", data, "--workdir",
                 tmp_path / "run", "--output", tmp_path / "out", ok=False)
    assert_one_line_error(result, "has no variant 'tiny'; its variants: compact")
    assert not (tmp_path / "out").exists()


def test_from_checkpoints_writes_the_artifact_of_a_finished_run_and_refuses_an_unfinished_one(workspace, tmp_path):
    _, data = workspace
    common = ["--data", data, *TINY, "--workdir", tmp_path / "run", "--output", tmp_path / "out", "--no-metrics"]
    run("train", "caloflow-ds1-photon-teacher", "--epochs", 1, *common)
    run("train", "caloflow-ds1-photon-teacher", "--epochs", 1, "--from-checkpoints", *common)
    trained, written = (np.load(tmp_path / "out" / "caloflow-ds1-photon-teacher" / f"v{v}" / "weights.npz")
                        for v in (1, 2))
    assert sorted(trained.files) == sorted(written.files)
    for key in trained.files:
        np.testing.assert_array_equal(trained[key], written[key])
    result = run("train", "caloflow-ds1-photon-teacher", "--epochs", 2, "--from-checkpoints", *common, ok=False)
    assert_one_line_error(result, "stop at epoch 1 of 2; continue the training with --resume")
    assert not (tmp_path / "out" / "caloflow-ds1-photon-teacher" / "v3").exists()


def test_train_set_with_an_unknown_part_is_one_error_line(workspace, tmp_path):
    _, data = workspace
    result = run("train", "caloflow-ds1-photon-teacher", "--data", data, "--epochs", 1, *TINY, "--train-set",
                 "flow3.epochs=2", "--workdir", tmp_path / "run", "--output", tmp_path / "out", ok=False)
    assert_one_line_error(result, "'flow3' is not a section of the recipe")
    assert not (tmp_path / "out").exists()


def test_train_with_a_mirrored_strategy(workspace, tmp_path):
    _, data = workspace
    run("train", "caloflow-ds1-photon-teacher", "--data", data, "--epochs", 1, *TINY, "--strategy", "mirrored",
        "--workdir", tmp_path / "run", "--output", tmp_path / "out", "--no-metrics")
    metadata = json.loads((tmp_path / "out" / "caloflow-ds1-photon-teacher" / "v1" / "metadata.json").read_text())
    assert metadata["training"]["teacher"]["epochs"] == 1


def test_generate_streams_showers_and_is_reproducible(workspace, tmp_path):
    root, data = workspace
    first, second = tmp_path / "a.h5", tmp_path / "b.h5"
    run("generate", "caloflow-ds1-photon-student@user", "-n", 50, "--batch-size", 20, "--seed", 4, "-o", first)
    run("generate", "caloflow-ds1-photon-student@user", "-n", 50, "--batch-size", 20, "--seed", 4, "-o", second)
    with h5py.File(first) as a, h5py.File(second) as b:
        assert a["showers"].shape == (50, 368)
        np.testing.assert_array_equal(a["showers"][()], b["showers"][()])
    run("generate", "caloflow-ds1-photon-student@user", "--energies-from", data, "-o", tmp_path / "c.h5")
    with h5py.File(tmp_path / "c.h5") as c, h5py.File(data) as d:
        np.testing.assert_array_equal(c["incident_energies"][()], d["incident_energies"][()])


def test_time_reports_ms_per_shower(workspace):
    result = run("time", "caloflow-ds1-photon-student@user", "--batch-sizes", "1,4", "--repeats", 2, "--warmup", 1,
                 "--json")
    report = json.loads(result.output)
    assert [r["batch_size"] for r in report["results"]] == [1, 4]
    assert all(r["mean_ms_per_shower"] > 0 for r in report["results"])
    assert report["environment"]["device"] == "CPU"


def test_time_adds_rows_to_a_benchmark_file(workspace, tmp_path):
    out = tmp_path / "timing.json"
    for options in (["--batch-sizes", "2"], ["--batch-sizes", "3", "--no-xla"]):
        run("time", "caloflow-ds1-photon-student@user", *options, "--repeats", 1, "--warmup", 0, "--json", "--out", out)
    report = json.loads(out.read_text())
    assert [(r["batch_size"], r["jit_compile"]) for r in report["results"]] == [(2, True), (3, False)]
    assert {r["model"] for r in report["results"]} == {"caloflow-ds1-photon-student@user"}
    assert report["environment"]["device"] == "CPU"


def _bad_file(path, kind):
    energies, showers = np.full((20, 1), 1024.0), np.ones((20, 368), np.float32)
    if kind == "nan-energy":
        energies[3] = np.nan
    elif kind == "zero-energy":
        energies[3] = 0.0
    elif kind == "negative-voxel":
        showers[2, 5] = -1.0
    elif kind == "nan-voxel":
        showers[2, 5] = np.nan
    elif kind == "wrong-voxels":
        showers = np.ones((20, 533), np.float32)
    if kind == "missing-key":
        with h5py.File(path, "w") as handle:
            handle["showers"] = showers
        return path
    with h5py.File(path, "w") as handle:  # raw h5py: write_showers would refuse the bad values itself
        handle["incident_energies"], handle["showers"] = energies, showers
    if kind == "truncated":
        write_showers(path, energies, showers)
        path.write_bytes(path.read_bytes()[:1500])
    return path


@pytest.mark.parametrize("kind, message", [
    ("nan-energy", "NaN, infinite or <= 0"), ("zero-energy", "NaN, infinite or <= 0"),
    ("negative-voxel", "negative"), ("nan-voxel", "NaN or infinite"), ("wrong-voxels", "expected (N, 368)"),
    ("missing-key", "missing dataset 'incident_energies'"), ("truncated", "truncated or corrupt"),
])
def test_bad_training_data_gives_one_line_and_no_artifact(workspace, tmp_path, kind, message):
    root, _ = workspace
    bad = _bad_file(tmp_path / "bad.h5", kind)
    result = run("train", "caloflow-ds1-photon-teacher", "--data", bad, "--epochs", 1, *TINY, "--workdir",
                 tmp_path / "run", "--output", tmp_path / "out", ok=False)
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["nan-energy", "zero-energy", "missing-key", "truncated"])
def test_bad_energies_file_gives_one_line_and_no_output(workspace, tmp_path, kind):
    bad = _bad_file(tmp_path / "bad.h5", kind)
    output = tmp_path / "out.h5"
    result = run("generate", "caloflow-ds1-photon-student@user", "--energies-from", bad, "-o", output, ok=False)
    assert result.exit_code != 0 and "Error" in result.output
    assert not output.exists() and not list(tmp_path.glob(".out.h5*"))


def test_unknown_model_and_bad_arguments(workspace, tmp_path):
    assert_one_line_error(run("generate", "caloflow-ds1-photon-studnet", "-n", 3, "-o", tmp_path / "x.h5", ok=False),
                          "Did you mean 'caloflow-ds1-photon-student'")
    assert_one_line_error(run("generate", "caloflow-ds1-photon-student@user", "-n", 0, "-o", tmp_path / "x.h5",
                              ok=False),
                          "must be >= 1")
    assert_one_line_error(run("time", "caloflow-ds1-photon-student", "--batch-sizes", "1,x", ok=False),
                          "comma-separated")
    assert not (tmp_path / "x.h5").exists()


def test_train_writes_to_the_user_store_and_info_says_so(workspace, tmp_path, monkeypatch):
    import os
    import stat

    from calozoo.registry import artifact_roots

    _, data = workspace
    monkeypatch.delenv("CALOZOO_ARTIFACTS")
    monkeypatch.setenv("CALOZOO_HOME", str(tmp_path / "home"))
    shipped = artifact_roots()["shipped"] / "caloflow-ds1-photon-teacher"
    before = sorted(p.name for p in shipped.iterdir())
    old = os.umask(0o022)
    try:
        run("train", "caloflow-ds1-photon-teacher", "--data", data, "--epochs", 1, *TINY, "--workdir", tmp_path / "run",
            "--no-metrics")
    finally:
        os.umask(old)
    directory = tmp_path / "home" / "artifacts" / "caloflow-ds1-photon-teacher" / "v1"
    assert (directory / "weights.npz").is_file() and sorted(p.name for p in shipped.iterdir()) == before
    assert stat.S_IMODE((directory / "weights.npz").stat().st_mode) == 0o644
    info = run("info", "caloflow-ds1-photon-teacher").output
    assert f"v1 (user): {directory}" in info and "(shipped):" in info
    assert "<- loaded by" in info.split("(shipped):", 1)[1].splitlines()[0]


def test_train_on_several_files_given_by_a_pattern(workspace, tmp_path):
    _, data = workspace
    with h5py.File(data) as handle:
        energies, showers = handle["incident_energies"][()], handle["showers"][()]
    write_showers(tmp_path / "part_1.h5", energies[:140], showers[:140], attrs={"synthetic": True})
    write_showers(tmp_path / "part_2.h5", energies[140:], showers[140:], attrs={"synthetic": True})
    run("train", "caloflow-ds1-photon-teacher", "--data", tmp_path / "part_*.h5", "--epochs", 1, *TINY, "--workdir",
        tmp_path / "run", "--output", tmp_path / "out", "--no-metrics")
    metadata = json.loads((tmp_path / "out" / "caloflow-ds1-photon-teacher" / "v1" / "metadata.json").read_text())
    assert metadata["training_data"]["file"] == [str(tmp_path / "part_1.h5"), str(tmp_path / "part_2.h5")]
    assert metadata["training_data"]["n_train"] + metadata["training_data"]["n_heldout"] == 240
    assert metadata["training_data"]["streamed"] is False
    assert "--data part_1.h5 --data part_2.h5 --epochs 1" in metadata["retrain_command"]


@pytest.mark.parametrize("options, message", [
    (["--data", "nothing_*.h5"], "no file matches 'nothing_*.h5'"),
    (["--streaming", "always"], "the caloflow family reads its training showers into memory"),
])
def test_train_input_that_cannot_be_used_is_one_error_line(workspace, tmp_path, options, message):
    _, data = workspace
    result = run("train", "caloflow-ds1-photon-teacher", "--data", data, *options, "--epochs", 1, *TINY,
                 "--workdir", tmp_path / "run", "--output", tmp_path / "out", ok=False)
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()
