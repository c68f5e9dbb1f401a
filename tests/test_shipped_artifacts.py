"""Every shipped artifact loads and generates, for a fixed seed, the showers recorded in tests/golden_showers.json.

For each registered name with a shipped artifact, `calozoo.load(NAME)` (the newest shipped version, what users get)
generates two showers (E_inc 2 048 and 65 536 MeV, seed 3, one batch) whose fingerprint (per shower: total energy,
hits above 15 keV, the three largest voxels, the sum of squared voxel energies, the energy-weighted mean voxel
index) must match the recorded one.
The tolerances absorb float32 rounding on another CPU (relative 1e-3, up to 2 hits or 0.5 % of them) but not a
changed model. Generation goes through XLA like `generate` does, so each artifact costs one compilation.

A new or retrained shipped artifact fails `test_every_shipped_artifact_has_a_golden_entry` until its entry is
recorded, from the repository root:

    python -m tests.golden_showers NAME [NAME ...]     # e.g. icaloflow-ds3-electron-teacher
    python -m tests.golden_showers --all

The weights of every shipped version are stored as float16 (float32 where a value exceeds float16's range); the
round trip through `save_weights` / `load_weights` must be exact for them and within float16's precision for any
model.
"""

import json

import numpy as np
import pytest
import tensorflow as tf

import calozoo as zoo
from calozoo import registry
from calozoo.artifacts import load_weights, save_weights, variables_by_path
from calozoo.models.base import seed_pair
from tests.golden_showers import GOLDEN_FILE, generate_fingerprint, read_golden, shipped_names

RTOL = 1e-3  # energies, largest voxels, sums of squares and centroids
HITS_ATOL, HITS_RTOL = 2, 5e-3

SHIPPED = shipped_names()
SHIPPED_VERSIONS = [a for name in SHIPPED for a in registry.artifact_versions_of(name) if a.origin == registry.SHIPPED]
RECORD = "python -m tests.golden_showers"


def test_every_shipped_artifact_has_a_golden_entry():
    golden = read_golden()
    users_get = {f"{name}/v{registry.resolve_artifact(name).version}" for name in SHIPPED}
    missing = sorted(users_get - set(golden))
    assert not missing, f"no golden showers for {missing} in {GOLDEN_FILE}; record them with `{RECORD} NAME`"
    shipped_root = registry.artifact_roots()[registry.SHIPPED]
    stale = sorted(key for key, entry in golden.items()
                   if not (shipped_root / entry["name"] / f"v{entry['version']}").is_dir())
    assert not stale, f"golden entries without a shipped artifact: {stale}; remove them from {GOLDEN_FILE}"


def assert_fingerprints_match(actual, expected, key):
    assert len(actual) == len(expected), key
    for index, (mine, recorded) in enumerate(zip(actual, expected)):
        where = (f"{key} shower {index} (re-record with `{RECORD} {key.split('/')[0]}` only if the model was meant "
                 "to change)")
        np.testing.assert_allclose(mine["energy_mev"], recorded["energy_mev"], rtol=RTOL, err_msg=where)
        assert abs(mine["hits"] - recorded["hits"]) <= max(HITS_ATOL, HITS_RTOL * recorded["hits"]), \
            f"{where}: {mine['hits']} hits, recorded {recorded['hits']}"
        np.testing.assert_allclose(mine["top_voxels_mev"], recorded["top_voxels_mev"], rtol=RTOL, err_msg=where)
        np.testing.assert_allclose(mine["sum_squares_mev2"], recorded["sum_squares_mev2"], rtol=RTOL, err_msg=where)
        np.testing.assert_allclose(mine["centroid_voxel"], recorded["centroid_voxel"], rtol=RTOL, err_msg=where)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_artifact_generates_its_golden_showers(name):
    version, showers = generate_fingerprint(name)
    key = f"{name}/v{version}"
    entry = read_golden().get(key)
    if entry is None:
        pytest.fail(f"no golden showers for {key}; record them with `{RECORD} {name}`")
    assert_fingerprints_match(showers, entry["showers"], key)


# ----- float16 weight storage ---------------------------------------------------------------------------------
@pytest.mark.parametrize("artifact", SHIPPED_VERSIONS, ids=lambda a: f"{a.name}/v{a.version}")
def test_shipped_weights_are_float16_and_reload_and_resave_exactly(artifact, tmp_path):
    """Stored floats are float16 unless a value is out of float16's range; loading and saving again (as
    `write_artifact` does) gives the same arrays bit for bit."""
    assert json.loads((artifact.path / "metadata.json").read_text())["weights_dtype"] == "float16"
    model = zoo.load(artifact.name, version=artifact.version)
    resaved = tmp_path / "weights.npz"
    save_weights(model, resaved)
    with np.load(artifact.path / "weights.npz") as shipped, np.load(resaved) as again:
        assert sorted(shipped.files) == sorted(again.files)
        for key in shipped.files:
            stored = shipped[key]
            if np.issubdtype(stored.dtype, np.floating):
                assert stored.dtype == np.float16 or np.abs(stored).max() >= 65504, f"{key}: {stored.dtype}"
            assert again[key].dtype == stored.dtype, key
            np.testing.assert_array_equal(again[key], stored, err_msg=key)


def tiny_teacher(dtype="float64"):
    from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
    from tests.models.helpers import randomize

    config = CaloFlowConfig(hidden=12, num_blocks=2, energy_hidden=8, energy_blocks=2, dropout=0.0, dtype=dtype)
    return randomize(CaloFlow(config), scale=0.3, seed=4)


def test_float16_storage_round_trips_within_float16_precision(tmp_path):
    model = tiny_teacher()
    variables = variables_by_path(model)
    big = next(v for v in model.trainable_variables if len(v.shape) == 1)
    big.assign(np.full(big.shape, 7e4))  # beyond float16's range: stored as float32, exactly
    original = {key: v.numpy() for key, v in variables.items()}
    save_weights(model, tmp_path / "weights.npz")
    rebuilt = tiny_teacher()
    load_weights(rebuilt, tmp_path / "weights.npz")
    for key, variable in variables_by_path(rebuilt).items():
        value, before = variable.numpy(), original[key]
        if np.abs(before).max(initial=0) >= 65504:
            np.testing.assert_array_equal(value, before.astype(np.float32), err_msg=key)
        else:
            np.testing.assert_array_equal(value, before.astype(np.float16).astype(value.dtype), err_msg=key)
            # float16 keeps 11 significant bits: relative error <= 2^-11 (absolute 2^-25 for subnormals)
            np.testing.assert_array_less(np.abs(value - before), np.abs(before) * 2.0**-11 + 2.0**-25)
    save_weights(rebuilt, tmp_path / "again.npz")
    with np.load(tmp_path / "weights.npz") as first, np.load(tmp_path / "again.npz") as second:
        for key in first.files:
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_a_model_rebuilt_from_float16_weights_generates_nearly_the_same_showers(tmp_path):
    """A tiny float64 CaloFlow teacher and its copy rebuilt from float16 weights, same seed: every shower's total
    energy within 0.5 % and every voxel within 0.5 % of the shower's largest voxel (measured: below 0.1 %, the
    same hits). One bias moved by 0.5 changes them by 25 % and more."""
    model = tiny_teacher()
    incident = tf.constant([[1024.0], [8192.0], [65536.0], [524288.0]], tf.float32)
    before = model.sampler(jit_compile=False)(incident, seed_pair(1)).numpy()
    save_weights(model, tmp_path / "weights.npz")
    rebuilt = tiny_teacher()
    load_weights(rebuilt, tmp_path / "weights.npz")
    after = rebuilt.sampler(jit_compile=False)(incident, seed_pair(1)).numpy()
    assert not np.array_equal(after, before)  # the weights were rounded
    np.testing.assert_allclose(after.sum(-1), before.sum(-1), rtol=5e-3)
    np.testing.assert_array_less(np.abs(after - before).max(-1), 5e-3 * before.max(-1) + 1e-6)
