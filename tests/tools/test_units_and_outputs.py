"""Issue 17, part 3: incident energies outside the dataset's range (GeV for MeV) stop generate, train and evaluate
with one line; existing outputs are refused unless --overwrite; write errors name the output; SIGTERM cleans up."""

import errno
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.data.files import ShowerWriter, write_showers
from calozoo.data.geometry import INCIDENT_ENERGY_RANGES_MEV, check_incident_energy_range
from calozoo.errors import EnergyRangeError, ShowerFileError
from calozoo_tools.cli import main

NAME = "caloflow-ds1-photon-student"
TINY = ["--set", "hidden=8", "--set", "num_blocks=2", "--set", "energy_hidden=8", "--set", "energy_blocks=2"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(result, *fragments):
    assert result.exit_code != 0, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output


def _ds1_file(path, energies):
    energies = np.asarray(energies, np.float64).reshape(-1, 1)
    write_showers(path, energies, np.full((len(energies), 368), 0.5, np.float32))
    return path


@pytest.mark.parametrize("dataset, gev", [("1-photons", [1.0, 50.0, 100.0]), ("2", [1.0, 999.0]),
                                          ("3", [20.0]), ("calogan-gamma", [1.0, 100.0])])
def test_gev_energies_say_that_mev_is_expected(dataset, gev):
    with pytest.raises(EnergyRangeError, match=r"expects MeV and they look like GeV.*--allow-energy-range"):
        check_incident_energy_range(gev, dataset)
    low, high = INCIDENT_ENERGY_RANGES_MEV[dataset]
    check_incident_energy_range([low, high, np.sqrt(low * high)], dataset)  # the range itself passes


def test_the_ranges_are_the_datasets():
    assert INCIDENT_ENERGY_RANGES_MEV["1-photons"] == (256.0, 4194304.0) == INCIDENT_ENERGY_RANGES_MEV["1-pions"]
    assert INCIDENT_ENERGY_RANGES_MEV["2"] == (1e3, 1e6) == INCIDENT_ENERGY_RANGES_MEV["3"]
    assert INCIDENT_ENERGY_RANGES_MEV["calogan-eplus"] == (1e3, 1e5)


def test_generate_stops_on_gev_unless_allowed(tiny_artifact, tmp_path):
    energies = _ds1_file(tmp_path / "gev.h5", [1.0, 10.0, 100.0])
    output = tmp_path / "out.h5"
    one_error_line(run("generate", NAME, "--energies-from", energies, "-o", output), "expects MeV", "GeV")
    assert not output.exists() and not list(tmp_path.glob(".out.h5*"))
    result = run("generate", NAME, "--energies-from", energies, "-o", output, "--allow-energy-range")
    assert result.exit_code == 0, result.output
    with h5py.File(output) as handle:
        assert handle["showers"].shape == (3, 368)


def test_train_stops_on_gev(tmp_path):
    data = _ds1_file(tmp_path / "gev.h5", np.linspace(1.0, 100.0, 40))
    result = run("train", "caloflow-ds1-photon-teacher", "--data", data, "--epochs", 1, *TINY, "--workdir",
                 tmp_path / "run", "--output", tmp_path / "out", "--no-metrics")
    one_error_line(result, "expects MeV", "look like GeV", "--allow-energy-range")
    assert not (tmp_path / "out").exists()


def test_evaluate_stops_on_gev(tmp_path):
    reference = _ds1_file(tmp_path / "ref.h5", [256.0, 1024.0, 65536.0] * 10)
    generated = _ds1_file(tmp_path / "gen.h5", [0.256, 1.024, 65.536] * 10)
    result = run("evaluate", generated, reference, "-d", "1-photons", "-m", "hist", "-o", tmp_path / "eval")
    one_error_line(result, "generated", "expects MeV", "GeV")
    assert not (tmp_path / "eval").exists()


def test_existing_outputs_are_refused_unless_overwrite(tiny_artifact, tmp_path):
    output = _ds1_file(tmp_path / "precious.h5", [1024.0] * 7)
    one_error_line(run("generate", NAME, "-n", 3, "-o", output), "exists already", "--overwrite")
    one_error_line(run("synthesize", "1-photons", "-n", 3, "-o", output), "exists already")
    one_error_line(run("data", "split", output, "--train", output.with_name("t.h5"), "--validation", output),
                   "three different paths")
    _ds1_file(tmp_path / "t.h5", [1024.0])
    one_error_line(run("data", "split", output, "--train", tmp_path / "t.h5", "--validation", tmp_path / "v.h5"),
                   "t.h5 exists already")
    with h5py.File(output) as handle:
        assert handle["showers"].shape == (7, 368)
    assert run("generate", NAME, "-n", 3, "-o", output, "--overwrite").exit_code == 0
    with h5py.File(output) as handle:
        assert handle["showers"].shape == (3, 368)


def test_a_write_error_names_the_output_not_the_temporary_file(tmp_path, monkeypatch):
    def disk_full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(self.file.filename))

    output = tmp_path / "showers.h5"
    monkeypatch.setattr(h5py.Dataset, "resize", disk_full)
    with pytest.raises(ShowerFileError) as caught:
        with ShowerWriter(output, 368) as writer:
            writer.append([1024.0], np.zeros((1, 368), np.float32))
    message = str(caught.value)
    assert message.startswith(f"{output}: writing failed") and "No space left" in message and ".tmp" not in message
    assert not output.exists() and not list(tmp_path.iterdir())


def test_sigterm_removes_the_temporary_file_like_ctrl_c(tiny_artifact, tmp_path):
    artifact = tiny_artifact / NAME / "v1"
    output = tmp_path / "big.h5"
    process = subprocess.Popen([sys.executable, "-m", "calozoo", "generate", str(artifact), "-n", "2000000",
                                "--batch-size", "500", "-o", str(output)], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while not list(tmp_path.glob(".big.h5.*.tmp")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".big.h5.*.tmp")), "the temporary file never appeared"
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert not output.exists() and not list(tmp_path.glob(".big.h5*")), os.listdir(tmp_path)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_swallowed_inside_a_finalizer_still_stops_the_next_step(monkeypatch):
    """Python may run the SIGTERM handler inside a `__del__`, where its SystemExit is printed and dropped; the loops'
    `stop_if_terminated` must still end the command with 143."""
    from calozoo_tools import cli

    monkeypatch.setattr(cli, "_TERMINATION", {})
    cli.stop_if_terminated()  # nothing has arrived: no effect

    class Finalized:
        def __del__(self):
            cli._terminated(signal.SIGTERM, None)

    Finalized()
    with pytest.raises(SystemExit) as caught:
        cli.stop_if_terminated()
    assert caught.value.code == 128 + signal.SIGTERM
