"""Issue 17, part 5: reproduce commands that paste and run, library versions in every card, `info` with the
artifact's real configuration, `list` marking compact vs paper size."""

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from calozoo.workflow.recipe import portable_command, portable_data_path, retrain_command
from calozoo_tools.cli import main
from calozoo_tools.models import size_label
from calozoo_tools.train import train_command

REPOSITORY = Path(__file__).resolve().parents[2]
CARDS = sorted((REPOSITORY / "artifacts").glob("*/v*/MODEL_CARD.md"))


def _parsed_train(line: str) -> dict:
    """The parameters click gives `calozoo train` for a pasted command line (raises on a bad paste)."""
    args = shlex.split(line)
    assert args[:2] == ["calozoo", "train"], line
    return train_command.make_context("train", args[2:]).params


def test_retrain_command_is_shell_quoted_and_portable():
    metadata = {"training_data": {"split_seed": 0, "heldout_fraction": 0.25},
                "config_changes": {"encoder_point_hidden": [32, 64], "latent_dim": 32, "name": "a b"},
                "training_overrides": {"layer_flow.schedule": {"name": "onecycle", "max_lr": 0.002}}}
    command = retrain_command("calopointflow-ds2-electron", "/work/shared/geant4/ds2_electrons_g4_train.h5", metadata,
                              epochs=20, teacher="x-teacher@user")
    params = _parsed_train(command)
    assert params["data"] == ("ds2_electrons_g4_train.h5",) and "/work" not in command
    assert params["settings"] == ("encoder_point_hidden=[32, 64]", "latent_dim=32", "name=a b")
    assert params["training"] == ("layer_flow.schedule={max_lr: 0.002, name: onecycle}",)
    assert params["teacher"] == "x-teacher@user" and params["epochs"] == 20 and params["heldout_fraction"] == 0.25


@pytest.mark.parametrize("given, shown", [("data/ds2.h5", "data/ds2.h5"), ("ds2.h5", "ds2.h5"),
                                          ("/abs/path/ds2.h5", "ds2.h5"), ("../shared/ds2.h5", "ds2.h5")])
def test_data_paths_are_as_given_or_the_file_name(given, shown):
    assert portable_data_path(given) == shown


def test_an_old_unquoted_command_is_requoted():
    old = ("# comment stays\ncalozoo train m --data /work/shared/x.h5 --set encoder_point_hidden=[32, 64] "
           "--set a=1 --train-set 'b={c: 1, d: 2}'")
    lines = portable_command(old).splitlines()
    assert lines[0] == "# comment stays"
    params = _parsed_train(lines[1])
    assert params["settings"] == ("encoder_point_hidden=[32, 64]", "a=1") and params["data"] == ("x.h5",)
    assert params["training"] == ("b={c: 1, d: 2}",)


@pytest.mark.parametrize("card", CARDS, ids=lambda p: f"{p.parent.parent.name}/{p.parent.name}")
def test_every_shipped_card_has_libraries_and_pasteable_commands(card):
    text = card.read_text()
    libraries = re.search(r"^Libraries: (.*)$", text, re.M)
    assert libraries and "tensorflow 2." in libraries.group(1) and "tf_keras" in libraries.group(1)
    reproduce = text.split("## Reproduce", 1)[1]
    for line in reproduce.splitlines():
        if line.startswith("calozoo train "):
            assert not any(Path(data).is_absolute() for data in _parsed_train(line)["data"]), line


def test_info_shows_the_real_configuration_and_list_marks_compact():
    runner = CliRunner()
    info = runner.invoke(main, ["info", "caloflow-ds1-photon-student"])
    assert info.exit_code == 0, info.output
    assert "{}" not in info.output and "(shipped):" in info.output
    assert re.search(r'configuration: \{.*"hidden": 48', info.output) and "compact (hidden, num_blocks" in info.output
    listed = runner.invoke(main, ["list", "caloflow-ds1-photon-*"])
    assert listed.exit_code == 0, listed.output
    row = next(line for line in listed.output.splitlines() if line.startswith("caloflow-ds1-photon-student "))
    assert "shipped v1" in row and " compact " in row


def test_size_label():
    assert size_label({"hidden": 736, "dtype": "float64"}, {"hidden": 736, "dtype": "float32"}) == "paper size"
    assert size_label({"hidden": 736}, {"hidden": 48}) == "compact"
