"""The registry: flat names, wildcard listing, helpful errors, artifacts that load back to the same model."""

import numpy as np
import pytest

import calozoo as zoo
from calozoo.artifacts import variables_by_path, write_artifact
from calozoo.errors import MissingWeightsError, UnknownModelError

TINY = dict(hidden=8, num_blocks=2, energy_hidden=8, energy_blocks=2)


def test_list_models_with_a_wildcard():
    assert zoo.list_models("caloflow-ds1-photon-*") == ["caloflow-ds1-photon-student", "caloflow-ds1-photon-teacher"]
    assert set(zoo.list_models("caloflow-ds1-*")) >= {"caloflow-ds1-pion-student", "caloflow-ds1-pion-teacher"}
    assert zoo.list_models("no-such-*") == []


def test_an_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError, match=r"Did you mean 'caloflow-ds1-photon-student'.*calozoo list"):
        zoo.create("caloflow-ds1-photon-studnet")


def test_missing_weights_say_where_and_how(monkeypatch, tmp_path):
    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(tmp_path))
    with pytest.raises(MissingWeightsError, match=rf"{tmp_path}.*calozoo train caloflow-ds1-pion-teacher.*zoo.create"):
        zoo.find_artifact("caloflow-ds1-pion-teacher", version=99)


def test_create_applies_overrides():
    model = zoo.create("caloflow-ds1-pion-student", **TINY)
    assert model.config.hidden == 8 and model.config.role == "student" and model.n_voxels == 533


def test_an_artifact_loads_back_with_identical_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(tmp_path))
    model = zoo.create("caloflow-ds1-photon-student", **TINY)
    config = {**zoo.get_entry("caloflow-ds1-photon-student").config, **TINY}
    directory = write_artifact(model, tmp_path, "caloflow-ds1-photon-student", "caloflow", config,
                               {"num_params": model.num_params}, "# card", float_dtype="float32")
    assert directory == tmp_path / "caloflow-ds1-photon-student" / "v1"
    loaded = zoo.load("caloflow-ds1-photon-student")
    mine, theirs = variables_by_path(model), variables_by_path(loaded)
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_allclose(theirs[key].numpy(), np.float32(mine[key].numpy()), err_msg=key)
    np.testing.assert_array_equal(loaded.generate([65536.0] * 3, seed=2), loaded.generate([65536.0] * 3, seed=2))
