"""`calozoo import l2lflow-ds2-electron` on checkpoint folders that the reference code saved and ran itself
(make_l2lflow_import_fixtures.py: 45 DS2 layer flows `flows/flowXX_final.pt`, the generator's `trafo.pt` and the
energy flow `flows/flow.pt`, here as .npz state_dicts: no PyTorch needed): the artifact and its card, its
reproduction of the reference's generation from the same noise and of the log-density of those showers, and bad
input."""

import hashlib
import json
import shutil
import sys

import numpy as np
import pytest

import calozoo
from calozoo.models.l2lflow_checkpoint import REFERENCE_COMMIT
from tests.reference.comparisons import assert_matches, read_npz, relative_difference
from tests.reference.packed_state_dicts import unpack
from tests.reference.test_import_checkpoint import assert_one_error_and_no_artifact, invoke
from tests.reference.test_l2lflow_reference import FIXTURES

NAME = "l2lflow-ds2-electron"
META = json.loads((FIXTURES / "import_fixtures.json").read_text())
CLAMP_LOGIT = np.log(0.99 / 0.01)  # calozoo's inverse voxel logit clamps beyond it, the reference's does not


def write_folders(root):
    """The reference's result folders as its training and generator leave them (each file a .npz state_dict):
    `causal/` (flows/flowXX_final, trafo) and `energy/flows/flow`."""
    with np.load(FIXTURES / "import_checkpoints.npz") as packed:
        states = unpack(packed)
    (root / "energy" / "flows").mkdir(parents=True)
    shutil.copyfile(FIXTURES / "energy_flow.npz", root / "energy" / "flows" / "flow.npz")
    for name, state in states.items():
        path = root / f"{name}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **state)
    return root / "causal", root / "energy" / "flows" / "flow.npz"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return write_folders(tmp_path_factory.mktemp("reference"))


@pytest.fixture(scope="module")
def imported(folders, tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    causal, energy = folders
    result = invoke(NAME, causal, "--energy-flow", energy, "--output", root)
    assert result.exit_code == 0, result.output
    return root / NAME / "v1"


@pytest.fixture(scope="module")
def model(imported):
    return calozoo.load(imported)


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "import_cases.npz")


def test_card_and_metadata_name_every_file_and_the_reference_commit(imported, folders):
    causal, energy = folders
    card = (imported / "MODEL_CARD.md").read_text()
    metadata = json.loads((imported / "metadata.json").read_text())
    origin = metadata["origin"]
    assert "Origin: imported" in card and REFERENCE_COMMIT in card and origin["reference_commit"] == REFERENCE_COMMIT
    assert origin["kind"] == "imported" and metadata["weights_dtype"] == "float64"
    members = origin["checkpoints"]["causal"]["members"]
    assert len(members) == 46 and "flows/flow44_final.npz" in members and "trafo.npz" in members
    for relative, digest in members.items():
        assert digest == hashlib.sha256((causal / relative).read_bytes()).hexdigest() and digest in card
    assert origin["checkpoints"]["energy"]["sha256"] == hashlib.sha256(energy.read_bytes()).hexdigest()
    flow = META["flow"]
    assert metadata["inferred_config"] == {
        "layer_flows": "causal", "reference_forms": True, "energy_input_permutation": True,
        "previous_oldest_first": True,
        "num_blocks": flow["num_blocks"], "hidden": flow["subnet_args"]["hidden"],
        "down_factors": flow["subnet_args"]["downsamples"], "squeeze": flow["squeeze"],
        "embedding_channels": flow["out_features_embed"], "previous_layers": flow["num_layers_cond"], "num_bins": 10,
        "energy_hidden": META["energy_flow"]["hidden_features"], "energy_blocks": META["energy_flow"]["num_blocks"],
        "energy_made_hidden_blocks": META["energy_flow"]["num_layers"],
        "energy_num_bins": META["energy_flow"]["num_bins"]}
    assert metadata["import_command"] == f"calozoo import {NAME} causal --energy-flow flow.npz"


def test_imported_energy_flow_reproduces_the_reference(model, cases):
    """The reference's [Permutation, MADE] blocks: calozoo's `energy_input_permutation` applies the first one."""
    assert model.config.energy_input_permutation and model.config.dtype == "float64"
    condition = model.incident_condition(cases["incident_gev"])
    assert_matches(model.energy_flow.log_prob(cases["energy_logits"], condition), cases["energy_log_prob"])
    assert_matches(model.energy_flow.sample_from_noise(cases["energy_noise"], condition), cases["energy_logits"])


def test_imported_model_generates_the_reference_showers_from_the_same_noise(model, cases):
    """The reference Generator's 45 layer samples from the recorded noise, through calozoo's voxel inverse and cut
    (compared with the reference's own inverse in test_l2lflow_reference.py), and the reference's per-layer sums of
    its showers after the cut (voxels where calozoo's inverse logit clamps left out on both sides)."""
    noise = np.transpose(cases["layer_noise"], (0, 1, 3, 4, 2))  # (N, 45, C, h, w) -> calozoo's (N, 45, h, w, C)
    showers = model.showers_from_noise(cases["incident_gev"] * 1e3, cases["energy_noise"], noise)
    layers = np.arange(model.n_layers)[None, :]
    expected = np.asarray(model.inverse_transform_voxels(cases["transformed"], layers))
    expected = np.where(expected < model.config.cut_gev, 0.0, expected)
    assert_matches(showers, model.showers_mev(expected))
    inside = np.abs(cases["transformed"]) <= CLAMP_LOGIT
    assert inside.mean() > 0.99
    sums = np.where(inside, np.asarray(model.layers_gev(showers)), 0.0).sum(axis=(2, 3))
    assert_matches(sums, cases["layer_sums_gev"])


def test_imported_model_gives_the_reference_log_density_of_its_showers(model, cases):
    """The energy flow's log-density plus each layer flow's, given the previous samples, E_i and E_inc."""
    log_prob = model.preprocessed_log_prob(cases["energy_logits"], cases["transformed"], cases["layer_energies_gev"],
                                           cases["incident_gev"])
    assert_matches(log_prob, cases["log_prob"])


def test_without_the_input_permutation_the_energy_flow_is_another_function(model, cases):
    """What was missing before `energy_input_permutation`: the same weights without the reference's first
    permutation give another density (0.11 relative on the fixture of test_l2lflow_reference.py)."""
    condition = model.incident_condition(cases["incident_gev"])
    flow = model.energy_flow
    kept, flow.composition = flow.composition, flow.composition.__class__(flow.composition.steps[1:])
    try:
        other = flow.log_prob(cases["energy_logits"], condition)
    finally:
        flow.composition = kept
    assert relative_difference(other, cases["energy_log_prob"]) > 1e-3


# No SavedModel export here: the export checks of an imported artifact run on the CaloFlow import
# (test_import_checkpoint.py); an L2LFlow export traces 45 layer flows per signature.


# ----- bad input --------------------------------------------------------------------------------------------------

def swap(first, second):
    first.replace(first.with_suffix(".tmp"))
    second.replace(first)
    first.with_suffix(".tmp").replace(second)


def broken_folders(tmp_path, edit):
    causal, energy = write_folders(tmp_path / "reference")
    edit(causal, energy)
    return causal, energy


@pytest.mark.parametrize("edit, extra, pattern", [
    (lambda causal, energy: (causal / "trafo.npz").unlink(), (), "has no trafo.pt"),
    (lambda causal, energy: (causal / "flows" / "flow07_final.npz").unlink(), (), "lacks flow07_final.pt"),
    (lambda causal, energy: swap(causal / "flows" / "flow00_final.npz", causal / "flows" / "flow01_final.npz"), (),
     "flow00_final has a context embedding of 3 channels; layer 0's flow has none (are the files in layer order?)"),
    (lambda causal, energy: shutil.copyfile(causal / "flows" / "flow03_final.npz", energy), (),
     "--energy-flow flow.npz (the energy flow checkpoint)"),
    (lambda causal, energy: shutil.copyfile(energy, causal / "trafo.npz"), (), "not the voxel transform's NormLayer"),
    (lambda causal, energy: None, ("--set", "hidden=99"), "contradicts"),
    (lambda causal, energy: None, ("--first-layer-flow", "flow.npz"), "is not a checkpoint of ConvL2LFlow"),
])
def test_bad_input_gives_one_error_line_and_no_artifact(tmp_path, edit, extra, pattern):
    causal, energy = broken_folders(tmp_path, edit)
    root = tmp_path / "store"
    assert_one_error_and_no_artifact(invoke(NAME, causal, "--energy-flow", energy, *extra, "--output", root),
                                     pattern, root)


def test_a_file_for_the_causal_folder_is_refused(folders, tmp_path):
    causal, energy = folders
    root = tmp_path / "store"
    assert_one_error_and_no_artifact(invoke(NAME, energy, "--energy-flow", energy, "--output", root),
                                     "is not a folder", root)


def test_a_pt_file_as_flow_save_writes_it(tmp_path):
    """Runs where PyTorch is installed: the dict of `hyperparameter` and `weights` that the reference's `Flow.save`
    writes reads back as the state_dict under `weights`."""
    torch = pytest.importorskip("torch")
    from calozoo.workflow.import_checkpoint import read_checkpoint

    weights = read_npz(FIXTURES / "energy_flow.npz")
    torch.save({"hyperparameter": META["hyperparameter"]["energy/flows/flow"],
                "weights": {key: torch.from_numpy(np.asarray(value)) for key, value in weights.items()}},
               tmp_path / "flow.pt")
    loaded = read_checkpoint(tmp_path / "flow.pt")
    assert set(loaded) == set(weights) and all(np.array_equal(loaded[k], weights[k]) for k in weights)
    assert "torch" in sys.modules
