"""Training-recipe overrides (`calozoo train --train-set`)."""

import pytest

from calozoo.errors import CalozooError
from calozoo.workflow.recipe import with_training_overrides

RECIPE = {"validation_fraction": 0.3,
          "layer_flow": {"batch_size": 1000, "epochs": 20, "schedule": {"name": "constant", "lr": 1e-4}}}


def test_a_dotted_path_changes_one_entry_and_leaves_the_recipe_alone():
    changed = with_training_overrides(RECIPE, {"layer_flow.epochs": 6, "validation_fraction": 0.1})
    assert changed["layer_flow"] == {"batch_size": 1000, "epochs": 6, "schedule": {"name": "constant", "lr": 1e-4}}
    assert changed["validation_fraction"] == 0.1
    assert RECIPE["layer_flow"]["epochs"] == 20 and RECIPE["validation_fraction"] == 0.3


def test_a_section_then_a_dotted_path_leave_the_given_section_alone():
    """A variant's section followed by `--train-set SECTION.KEY=...` (how `calozoo train --variant` merges them)."""
    section = {"batch_size": 300, "epochs": 10}
    changed = with_training_overrides(RECIPE, {"layer_flow": section, "layer_flow.epochs": 30})
    assert changed["layer_flow"] == {"batch_size": 300, "epochs": 30}
    assert section == {"batch_size": 300, "epochs": 10}


def test_a_mapping_replaces_the_whole_entry():
    changed = with_training_overrides(RECIPE, {"layer_flow.schedule": {"name": "onecycle", "max_lr": 2e-3}})
    assert changed["layer_flow"]["schedule"] == {"name": "onecycle", "max_lr": 2e-3}


def test_an_unknown_section_names_the_sections_there_are():
    with pytest.raises(CalozooError, match=r"'flow3' is not a section of the recipe; sections here: \['layer_flow'\]"):
        with_training_overrides(RECIPE, {"flow3.epochs": 2})


def test_the_retrain_command_repeats_the_split_the_teacher_and_every_change():
    from calozoo.workflow.recipe import retrain_command

    metadata = {"training_data": {"split_seed": 0, "heldout_fraction": 0.25},
                "config_changes": {"layer_hidden": 32, "renormalize_layers": True},
                "training_overrides": {"layer_flow.epochs": 4}}
    command = retrain_command("icaloflow-ds2-electron-student", "ds2.h5", metadata, teacher="t")
    assert command == ("calozoo train icaloflow-ds2-electron-student --data ds2.h5 --seed 0 --heldout-fraction 0.25 "
                       "--teacher t --set layer_hidden=32 --set renormalize_layers=true "
                       "--train-set layer_flow.epochs=4")  # shlex-quoted only where needed
    assert "--epochs" not in command
