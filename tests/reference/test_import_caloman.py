"""`calozoo import` of CaloMan: the reference's three per-step state_dicts (fixtures of test_caloman_reference.py, as
.npz: no PyTorch needed) -> an artifact that reproduces the reference's flows and generation batch, and refuses a
file given for the wrong step."""

import json

import pytest
import tensorflow as tf

import calozoo
from calozoo.models.caloman_checkpoint import REFERENCE_COMMIT
from tests.reference import test_caloman_reference as reference
from tests.reference.comparisons import assert_matches, read_npz
from tests.reference.test_import_checkpoint import assert_one_error_and_no_artifact, invoke

FIXTURES = reference.FIXTURES
GAE, EPL, DE = (FIXTURES / f"{name}.npz" for name in ("gae", "epl", "de"))
NAME = "caloman-ds1-photon"


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """Imported with the command (the registered configuration scales the layers directly, as the reference)."""
    root = tmp_path_factory.mktemp("store")
    result = invoke(NAME, GAE, "--energy-flow", EPL, "--latent-flow", DE, "--output", root)
    assert result.exit_code == 0, result.output
    return root / NAME / "v1"


def test_imported_artifact_reproduces_the_reference(imported):
    metadata = json.loads((imported / "metadata.json").read_text())
    assert metadata["origin"]["reference_commit"] == REFERENCE_COMMIT
    assert set(metadata["origin"]["checkpoints"]) == {"gae", "epl", "de"}
    assert metadata["inferred_config"]["latent_dim"] == 4 and metadata["config_overrides"] == {}
    assert metadata["config_changes"].get("renormalize_layers", False) is False
    model = calozoo.load(imported)
    cases = read_npz(FIXTURES / "cases.npz")
    scale = model.latent_scale.numpy()
    assert_matches(model.latent_flow.log_prob(cases["latents"] / scale, cases["photon_labels"]),
                   cases["de_log_prob"][:, 0])
    energies = tf.constant(cases["incident_energies_mev"], model.dtype)
    layer_energies = reference.unclamped_layer_energies(model, energies, cases["generation_energy_noise"])
    labels = model.labels(energies, layer_energies)
    latents = model.latent_flow.sample_from_noise(cases["generation_latent_noise"], labels)
    assert_matches(model.showers_from_shapes(model.decode_latents(latents, labels), layer_energies),
                   cases["generation_showers_mev"])


def test_a_flow_given_as_the_autoencoder_is_refused(tmp_path):
    result = invoke(NAME, EPL, "--energy-flow", EPL, "--latent-flow", DE, "--output", tmp_path / "store")
    assert_one_error_and_no_artifact(result, "the GAE checkpoint", tmp_path / "store")
    result = invoke(NAME, GAE, "--energy-flow", EPL, "--output", tmp_path / "store")
    assert_one_error_and_no_artifact(result, "--latent-flow FILE", tmp_path / "store")
