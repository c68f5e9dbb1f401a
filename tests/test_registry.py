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
    loaded = zoo.load("caloflow-ds1-photon-student@user")
    assert loaded.artifact_origin == "user" and loaded.artifact_dir == directory
    mine, theirs = variables_by_path(model), variables_by_path(loaded)
    assert mine.keys() == theirs.keys()
    for key in mine:
        np.testing.assert_allclose(theirs[key].numpy(), np.float32(mine[key].numpy()), err_msg=key)
    np.testing.assert_array_equal(loaded.generate([65536.0] * 3, seed=2), loaded.generate([65536.0] * 3, seed=2))


# --- the user store (issue 17, part 2) --------------------------------------------------------------------------


def _tiny_version(root, name="caloflow-ds1-photon-student"):
    model = zoo.create(name, **TINY)
    config = {**zoo.get_entry(name).config, **TINY}
    return write_artifact(model, root, name, "caloflow", config, {"num_params": model.num_params}, "# card")


def test_the_user_store_is_calozoo_home_else_the_xdg_data_directory(monkeypatch, tmp_path):
    from calozoo.registry import artifact_roots, user_home

    monkeypatch.delenv("CALOZOO_ARTIFACTS", raising=False)
    monkeypatch.setenv("CALOZOO_HOME", str(tmp_path / "home"))
    assert artifact_roots()["user"] == tmp_path / "home" / "artifacts"
    monkeypatch.delenv("CALOZOO_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert user_home() == tmp_path / "xdg" / "calozoo"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "me"))
    assert user_home() == tmp_path / "me" / ".local" / "share" / "calozoo"
    assert not artifact_roots()["shipped"].is_relative_to(user_home())


def test_a_user_version_never_hides_the_shipped_one(monkeypatch, tmp_path):
    from calozoo.registry import artifact_versions_of, resolve_artifact

    monkeypatch.setenv("CALOZOO_HOME", str(tmp_path))
    monkeypatch.delenv("CALOZOO_ARTIFACTS", raising=False)
    name = "caloflow-ds1-photon-student"
    first, second = _tiny_version(tmp_path / "artifacts"), _tiny_version(tmp_path / "artifacts")
    assert (first.name, second.name) == ("v1", "v2")
    shipped = resolve_artifact(name)
    assert shipped.origin == "shipped" and not shipped.path.is_relative_to(tmp_path)
    assert resolve_artifact(f"{name}@user").path == second
    assert resolve_artifact(f"{name}@user", version=1).path == first
    assert resolve_artifact(name, version=1).origin == "shipped"  # both stores have a v1: the shipped one
    assert resolve_artifact(name, version=2).path == second       # only the user store has a v2
    assert {(a.origin, a.version) for a in artifact_versions_of(name)} >= {("shipped", 1), ("user", 1), ("user", 2)}
    with pytest.raises(UnknownModelError, match="after '@' write 'user' or 'shipped'"):
        resolve_artifact(f"{name}@mine")
    assert resolve_artifact(f"{name}@user:1").path == first  # the version in the name
    assert resolve_artifact(f"{name}:2").path == second
    assert resolve_artifact(f"{name}@shipped:1").origin == "shipped"
    with pytest.raises(UnknownModelError, match="after ':' write a version number"):
        resolve_artifact(f"{name}@user:latest")
    with pytest.raises(UnknownModelError, match="names version 1 but version=2"):
        resolve_artifact(f"{name}@user:1", version=2)


def test_a_model_with_nothing_shipped_loads_the_user_version(monkeypatch, tmp_path):
    from calozoo import registry

    root = tmp_path / "user"
    monkeypatch.setattr(registry, "artifact_roots", lambda: {"shipped": tmp_path / "none", "user": root})
    directory = _tiny_version(root)
    model = zoo.load("caloflow-ds1-photon-student")
    assert model.artifact_origin == "user" and model.artifact_dir == directory


def test_load_takes_an_artifact_directory(tmp_path):
    directory = _tiny_version(tmp_path)
    model = zoo.load(directory)
    assert model.artifact_origin == "path" and model.artifact_dir == directory.resolve()
    assert zoo.load(str(directory)).config.hidden == 8
    with pytest.raises(MissingWeightsError, match="not an artifact directory"):
        zoo.load(tmp_path / "nothing-here")


def test_artifact_files_are_group_readable(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        directory = _tiny_version(tmp_path)
    finally:
        os.umask(old)
    for path in [directory, *directory.iterdir()]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & stat.S_IRGRP and mode & stat.S_IROTH, (path, oct(mode))


def test_import_calozoo_is_cheap_and_the_api_is_still_there():
    import subprocess
    import sys

    code = ("import sys, calozoo; assert 'tensorflow' not in sys.modules, 'TF imported'; "
            "assert callable(calozoo.load) and 'tensorflow' in sys.modules; print(calozoo.list_models('l2l*'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "l2lflow-ds2-electron" in result.stdout


def _shipped_newest():
    from calozoo.registry import SHIPPED, artifact_versions_of

    for name in zoo.list_models():
        shipped = [a for a in artifact_versions_of(name) if a.origin == SHIPPED]
        if shipped:
            yield name, shipped[-1]


@pytest.mark.parametrize("name,artifact", list(_shipped_newest()), ids=lambda value: str(value)[:40])
def test_the_newest_shipped_artifact_is_its_compact_variant(name, artifact):
    """`calozoo train NAME --variant compact` retrains the shipped model: same config changes, training overrides,
    epochs and held-out fraction as recorded in the artifact's metadata."""
    import json
    import shlex

    metadata = json.loads((artifact.path / "metadata.json").read_text())
    variant = zoo.get_entry(name).variant(metadata.get("variant") or "compact")
    assert variant.config == metadata["config_changes"]
    assert variant.training == (metadata.get("training_overrides") or {})
    assert (variant.heldout_fraction or 0.2) == metadata["training_data"]["heldout_fraction"]
    train_line = next(line for line in metadata["retrain_command"].splitlines() if line.startswith("calozoo train"))
    tokens = shlex.split(train_line)
    recorded_epochs = int(tokens[tokens.index("--epochs") + 1]) if "--epochs" in tokens else None
    assert variant.epochs == recorded_epochs


def test_create_with_a_variant_builds_the_shipped_size():
    model = zoo.create("l2lflow-ds2-electron", variant="compact")
    shipped = zoo.load("l2lflow-ds2-electron")
    assert model.num_params == shipped.num_params
    assert zoo.create("l2lflow-ds2-electron", variant="compact", hidden=4).num_params < model.num_params


def test_an_unknown_variant_names_the_known_ones():
    with pytest.raises(UnknownModelError, match="has no variant 'huge'; its variants: compact"):
        zoo.create("caloflow-ds1-photon-teacher", variant="huge")
