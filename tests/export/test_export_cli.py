"""`calozoo export NAME --out BASE`: a shipped artifact (a tiny one, written here) becomes a served version."""

import numpy as np
import pytest
from click.testing import CliRunner

from calozoo.export.validation import run_in_session
from calozoo_tools.cli import main

NAME = "caloflow-ds1-photon-student"



def test_export_command_writes_a_servable_version(tiny_artifact, tmp_path):
    base = tmp_path / "served"
    result = CliRunner().invoke(main, ["export", NAME, "--out", str(base), "--version", "3"])
    assert result.exit_code == 0, result.output
    assert f"exported {NAME} to {base / NAME / '3'}" in result.output
    assert (base / "models.config").read_text().count(f'name: "{NAME}"') == 1
    showers = run_in_session(base / NAME / "3", "serving_default",
                             {"incident_energies": np.array([[2048.0]], np.float32)})["showers"]
    assert showers.shape == (1, 368)
    again = CliRunner().invoke(main, ["export", NAME, "--out", str(base), "--no-warmup"])
    assert again.exit_code == 0 and (base / NAME / "4" / "saved_model.pb").exists()
    assert not (base / NAME / "4" / "assets.extra").exists()


@pytest.mark.parametrize("arguments, message", [
    (["--version", "0"], "Error: Invalid value for --version: must be an integer >= 1"),
    ([], "No trained weights for 'caloflow-ds1-pion-student'"),
])
def test_export_command_errors_are_one_line(tiny_artifact, tmp_path, arguments, message):
    name = NAME if arguments else "caloflow-ds1-pion-student"
    result = CliRunner().invoke(main, ["export", name, "--out", str(tmp_path / "served"), *arguments])
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "served" / name).exists()


def test_unknown_model_suggests_close_names(tmp_path):
    result = CliRunner().invoke(main, ["export", "caloflow-ds1-photon-studnet", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1
    assert result.output.startswith("Error: Unknown model 'caloflow-ds1-photon-studnet'. Did you mean "
                                    "'caloflow-ds1-photon-student'")
