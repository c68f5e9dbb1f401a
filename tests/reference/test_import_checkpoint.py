"""`calozoo import` / `import_checkpoint` on the reference fixtures: the artifact, its card, its reproduction of the
reference, one SavedModel export through the existing export checks, and bad input (no PyTorch needed)."""

import hashlib
import json
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import calozoo
from calozoo.errors import CheckpointError, MissingDependencyError
from calozoo.models.caloflow_checkpoint import REFERENCE_COMMIT
from calozoo.workflow.import_checkpoint import import_checkpoint, read_checkpoint
from calozoo_tools.cli import main
from tests.reference.comparisons import assert_matches, read_npz
from tests.reference.test_caloflow_reference import FIXTURES, compiled

STUDENT, TEACHER, ENERGY = FIXTURES / "student.npz", FIXTURES / "teacher.npz", FIXTURES / "energy_flow.npz"


@pytest.fixture(scope="module")
def cases() -> dict:
    return read_npz(FIXTURES / "cases.npz")


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The fixture student and teacher imported into a temporary user store."""
    root = tmp_path_factory.mktemp("store")
    return {role: import_checkpoint(f"caloflow-ds1-photon-{role}", path, ENERGY, output_root=root)
            for role, path in (("student", STUDENT), ("teacher", TEACHER))}


def test_artifact_card_and_metadata_say_where_the_weights_came_from(imported):
    directory = imported["student"]
    assert directory.name == "v1" and directory.parent.name == "caloflow-ds1-photon-student"
    card = (directory / "MODEL_CARD.md").read_text()
    metadata = json.loads((directory / "metadata.json").read_text())
    digest = hashlib.sha256(STUDENT.read_bytes()).hexdigest()
    assert "Origin: imported" in card and digest in card and REFERENCE_COMMIT in card
    assert metadata["origin"]["kind"] == "imported" and metadata["origin"]["checkpoints"]["flow_ii"]["sha256"] == digest
    assert metadata["inferred_config"]["hidden"] == 10 and metadata["inferred_config"]["num_blocks"] == 3
    assert metadata["weights_dtype"] == "float64"


def test_loaded_student_reproduces_the_reference(imported, cases):
    model = calozoo.load(imported["student"])
    assert model.config.role == "student" and model.config.dtype == "float64"
    showers = model.showers_from_noise(cases["incident_energies_mev"], cases["generation_energy_noise"],
                                       cases["generation_shower_noise"])
    assert_matches(showers, cases["generation_showers_mev"])
    assert_matches(model.shower_flow.to_data(cases["noise"], cases["y"]).output, cases["student_samples"])
    log_prob = compiled(model.shower_flow.log_prob)
    assert_matches(log_prob(cases["student_samples"], cases["y"]), cases["student_sample_log_prob"])


def test_loaded_teacher_reproduces_the_reference_densities(imported, cases):
    model = calozoo.load(imported["teacher"])
    assert_matches(model.shower_flow.log_prob(cases["x"], cases["y"]), cases["teacher_log_prob"])
    assert_matches(model.energy_flow.log_prob(cases["u"], cases["c"]), cases["energy_flow_log_prob"])


EXPORT_CHECKS = ("test_signatures_are_valid_predict_signatures_with_batch_first",
                 "test_tf1_session_returns_showers_of_the_right_shape",
                 "test_only_core_tensorflow_ops",
                 "test_seeded_output_is_reproducible_and_equals_the_in_memory_model",
                 "test_warmup_requests_run_in_the_session")


def assert_export_passes_the_checks(name, directory, tmp_path, monkeypatch, names=EXPORT_CHECKS):
    """One SavedModel round trip of the imported artifact `directory` of `name` (`calozoo export NAME@user
    --float64`), through the checks `names` of tests/export/test_savedmodel.py (it runs them on every model)."""
    pytest.importorskip("tensorflow_serving.apis.predict_pb2")
    from calozoo.export.validation import SessionRunner
    from tests.export import test_savedmodel as checks

    monkeypatch.setenv("CALOZOO_ARTIFACTS", str(directory.parents[1]))
    result = CliRunner().invoke(main, ["export", f"{name}@user", "--out", str(tmp_path), "--float64"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    path = tmp_path / name / "1"
    model = calozoo.load(f"{name}@user", dtype="float64")
    assert model.artifact_dir == directory
    runner = SessionRunner(path)
    try:
        exported = (model, path, name, runner)
        for check in names:
            getattr(checks, check)(exported)
    finally:
        runner.close()


def test_exported_import_passes_the_export_checks(imported, tmp_path, monkeypatch):
    assert_export_passes_the_checks("caloflow-ds1-photon-student", imported["student"], tmp_path, monkeypatch)


# ----- the command line and bad input ----------------------------------------------------------------------------

def invoke(*args):
    return CliRunner().invoke(main, ["import", *[str(a) for a in args]], catch_exceptions=False)


def assert_one_error_and_no_artifact(result, pattern, root):
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.strip().splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and pattern in errors[0], result.output
    assert not root.exists() or not any(root.iterdir()), "a failed import must leave no artifact directory"


def test_cli_imports_into_the_given_root(tmp_path):
    result = invoke("caloflow-ds1-photon-teacher", TEACHER, "--energy-flow", ENERGY, "--output", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "caloflow-ds1-photon-teacher" / "v1" / "weights.npz").is_file()
    again = invoke("caloflow-ds1-photon-teacher", TEACHER, "--energy-flow", ENERGY, "--output", tmp_path,
                   "--set", "u0_factor=2.42")
    assert again.exit_code == 0 and (tmp_path / "caloflow-ds1-photon-teacher" / "v2").is_dir()


@pytest.mark.parametrize("arguments, pattern", [
    (("caloflow-ds1-photon-student", TEACHER, "--energy-flow", ENERGY), "holds a teacher"),
    (("caloflow-ds1-photon-teacher", ENERGY, "--energy-flow", ENERGY), "368 voxels"),
    (("caloflow-ds1-photon-teacher", TEACHER, "--energy-flow", TEACHER), "Flow-I checkpoint is a MAF with 368"),
    (("caloflow-ds1-photon-teacher", "missing.pt", "--energy-flow", ENERGY), "does not exist"),
    (("caloflow-ds1-photon-teacher", TEACHER, "--energy-flow", ENERGY, "--set", "hidden=99"), "contradicts"),
    (("caloflow-ds1-photon-teacher", TEACHER, "--energy-flow", ENERGY, "--set", "colour=2"), "not a setting"),
    (("l2lflow-ds2-electron", TEACHER, "--energy-flow", ENERGY),
     "checkpoints of CaloFlow DS1, CaloFlow CaloGAN, iCaloFlow (DS2, DS3), CaloMan DS1 and CaloPointFlow II "
     "(DS2, DS3) only"),
    (("caloman-ds1-photon", TEACHER, "--energy-flow", ENERGY), "needs its DE flow checkpoint too"),
    (("caloflow-ds1-photon-teacher", TEACHER, "--energy-flow", ENERGY, "--first-layer-flow", ENERGY),
     "--first-layer-flow is not a checkpoint of CaloFlow DS1"),
])
def test_cli_bad_input_gives_one_error_line_and_no_artifact(tmp_path, arguments, pattern):
    root = tmp_path / "store"
    assert_one_error_and_no_artifact(invoke(*arguments, "--output", root), pattern, root)


def test_wrong_keys_and_wrong_masks_are_refused(tmp_path):
    root = tmp_path / "store"
    np.savez(tmp_path / "other.npz", **{"encoder.weight": np.zeros((2, 2))})
    assert_one_error_and_no_artifact(
        invoke("caloflow-ds1-photon-teacher", tmp_path / "other.npz", "--energy-flow", ENERGY, "--output", root),
        "no nflows transforms", root)
    weights = read_checkpoint(TEACHER)
    key = "_transform._transforms.0.autoregressive_net.initial_layer.mask"
    weights[key] = np.ones_like(weights[key])
    np.savez(tmp_path / "unmasked.npz", **weights)
    assert_one_error_and_no_artifact(
        invoke("caloflow-ds1-photon-teacher", tmp_path / "unmasked.npz", "--energy-flow", ENERGY, "--output", root),
        "sequential degrees", root)


def test_a_pt_checkpoint_as_the_reference_saves_it(tmp_path):
    """Runs where PyTorch is installed (`pip install 'calozoo[peers]'`): a dict with the model's and the optimizer's
    state, as the reference's `save_all` writes it, reads back as the numpy state_dict."""
    torch = pytest.importorskip("torch")
    weights = read_checkpoint(ENERGY)
    parameter = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = torch.optim.Adam([parameter], lr=1e-4)
    parameter.sum().backward()
    optimizer.step()
    state = {key: torch.from_numpy(np.asarray(value)) for key, value in weights.items()}
    torch.save({"model_state_dict": state, "optimizer_state_dict": optimizer.state_dict()}, tmp_path / "gamma.pt")
    loaded = read_checkpoint(tmp_path / "gamma.pt")
    assert set(loaded) == set(weights) and all(np.array_equal(loaded[k], weights[k]) for k in weights)


def test_a_pt_file_without_torch_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "model_checkpoint.pt").write_bytes(b"not really")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'calozoo\[peers\]'"):
        read_checkpoint(tmp_path / "model_checkpoint.pt")


def test_a_corrupt_npz_is_a_checkpoint_error(tmp_path):
    (tmp_path / "broken.npz").write_bytes(b"PK not a zip")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        read_checkpoint(tmp_path / "broken.npz")
