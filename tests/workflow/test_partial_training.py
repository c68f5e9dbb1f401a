"""`calozoo train --parts P --init-from ARTIFACT`: train some parts of a model, keep the others' trained weights."""

import json

import numpy as np
import pytest

import calozoo as zoo
from calozoo.data.files import read_showers, write_showers
from calozoo.errors import CalozooError
from calozoo.workflow.recipe import train_to_artifact
from tests._paths import DS2_GEANT4 as DS2_FILE
from tests.workflow.test_reproduce_commands import _parsed_train

TINY = dict(layer_flows="shared", num_blocks=1, hidden=2, energy_hidden=4, energy_blocks=1)
NAME = "l2lflow-ds2-electron"
pytestmark = pytest.mark.skipif(not DS2_FILE.is_file(), reason=f"{DS2_FILE} (GEANT4 DS2 subset) is not here")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data file, output root, the first artifact): a tiny shared L2LFlow trained one epoch on 60 DS2 showers."""
    root = tmp_path_factory.mktemp("partial")
    energies, showers = read_showers(DS2_FILE, n_voxels=6480, stop=60)
    data = root / "ds2_60.h5"
    write_showers(data, energies, showers)
    first = train_to_artifact(NAME, str(data), overrides=TINY, epochs=1, workdir=root / "run1",
                              output_root=root / "out", progress=False, with_metrics=False)
    return data, root, first


def _train(trained, workdir, **options):
    data, root, _ = trained
    return train_to_artifact(NAME, str(data), epochs=1, workdir=root / workdir, output_root=root / "out",
                             progress=False, with_metrics=False, **options)


def test_the_kept_parts_are_the_init_artifacts_and_the_card_says_how(trained):
    _, _, first = trained
    second = _train(trained, "run2", overrides={**TINY, "energy_variables": "shares"}, parts=("energy_flow",),
                    init_from=str(first))
    before, after = zoo.load(first), zoo.load(second)
    for mine, theirs in zip(after.layer_flow.variables, before.layer_flow.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    assert after.energy_flow.features == 46 and before.energy_flow.features == 45
    metadata = json.loads((second / "metadata.json").read_text())
    assert metadata["init_from"] == {"artifact": str(first), "version": "v1", "parts": ["energy_flow"]}
    assert list(metadata["training"]) == ["energy_flow"]
    command = metadata["retrain_command"]
    params = _parsed_train(command)
    assert params["init_from"] == str(first) and params["parts"] == "energy_flow"
    card = (second / "MODEL_CARD.md").read_text()
    assert f"- layer_flow: the weights of {first} v1 (`--init-from`); this run trained energy_flow only" in card


def test_parts_errors_name_the_problem(trained):
    _, _, first = trained
    with pytest.raises(CalozooError, match="--parts and --init-from go together"):
        _train(trained, "run3", overrides=TINY, parts=("energy_flow",))
    with pytest.raises(CalozooError, match="--parts: flow_9 not a part of 'l2lflow-ds2-electron'; its parts: "
                                           "energy_flow, layer_flow"):
        _train(trained, "run3", overrides=TINY, parts=("flow_9",), init_from=str(first))
    with pytest.raises(CalozooError, match="its part 'layer_flow' does not fit this configuration"):
        _train(trained, "run3", overrides={**TINY, "hidden": 3}, parts=("energy_flow",), init_from=str(first))
    data, root, _ = trained
    with pytest.raises(CalozooError, match="the caloflow family trains its parts together"):
        train_to_artifact("caloflow-ds1-photon-teacher", str(data), parts=("teacher",), init_from=str(first),
                          output_root=root / "out", workdir=root / "run4", progress=False)
