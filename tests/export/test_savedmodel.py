"""SavedModel export checked the way TF Serving uses it: CLI listing, TF1 session, signatures, op set, protos.

Runs for two tiny CaloFlow models (student and teacher) and one shipped artifact of every family (its
student where it has one, see SHIPPED).
"""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import calozoo
from calozoo.errors import CalozooError, MissingDependencyError, MissingWeightsError
from calozoo.export import export_model, saved_model_versions
from calozoo.export.validation import SessionRunner, non_core_ops, op_types, read_saved_model, signature_defs
from calozoo.models.base import seed_pair
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig

predict_pb2 = pytest.importorskip("tensorflow_serving.apis.predict_pb2")
prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")

ENERGIES = np.array([[1024.0], [65536.0], [1.0e6]], np.float32)


def tiny_caloflow(role: str) -> CaloFlow:
    return CaloFlow(CaloFlowConfig(role=role, hidden=16, energy_hidden=8, num_blocks=2, energy_blocks=2))


# One shipped model per family, students where there is one (they sample in one pass). The battery samples each
# model about ten times: minutes for every DS2/DS3 artifact, so not all of them. The CaloGAN CaloFlow is the same
# family and export code as the DS1 one, so it is left out to keep the suite within its time budget.
SHIPPED = ["caloflow-ds1-photon-student", "caloman-ds1-photon", "icaloflow-ds2-electron-student",
           "l2lflow-ds2-electron", "calopointflow-ds2-electron"]


def _shipped_names() -> list[str]:
    """Every registered name with a shipped artifact."""
    names = []
    for name in calozoo.list_models():
        try:
            calozoo.find_artifact(name)
        except MissingWeightsError:
            continue
        names.append(name)
    return names


CASES = (["tiny-student", "tiny-teacher"]  # float32 exports; the shipped cases below run in float64
         + [f"shipped:{name}" for name in SHIPPED if name in _shipped_names()])


@pytest.fixture(scope="module", params=CASES)
def exported(request, tmp_path_factory):
    """(in-memory model, exported version directory, served name, session runner) per case."""
    tf.random.set_seed(0)
    if request.param.startswith("shipped:"):
        name = request.param.split(":", 1)[1]
        # float64 compute: a trained float32 flow amplifies last-bit differences between the eager and the
        # exported graph (fused ops) through steep spline bins to ~1e-3; float64 makes the equality check exact
        # to the float32 output's precision. The tiny cases keep the float32 export path covered.
        model = calozoo.load(name, dtype="float64")
    else:
        role = request.param.split("-")[1]
        name, model = request.param, tiny_caloflow(role)
        model.micro_batch = 2  # ENERGIES' three showers: a full slice and a shorter one, served as in process
    path = export_model(model, tmp_path_factory.mktemp("served"), name)
    runner = SessionRunner(path)
    yield model, path, name, runner
    runner.close()


def test_every_family_with_a_shipped_artifact_is_exported_here():
    families = {calozoo.get_entry(name).family for name in _shipped_names()}
    assert families <= {calozoo.get_entry(name).family for name in SHIPPED}


def expected_signatures(model) -> set[str]:
    return {"serving_default", "generate_seeded"} | ({"log_prob"} if model.has_density else set())


def serving_signatures(path) -> dict:
    return {k: v for k, v in signature_defs(path).items() if not k.startswith("__")}


def test_saved_model_cli_lists_the_signatures(exported):
    model, path, _, _ = exported
    cli = shutil.which("saved_model_cli") or pytest.skip("saved_model_cli is not on PATH")
    shown = subprocess.run([cli, "show", "--dir", str(path), "--all"], capture_output=True, text=True, timeout=120,
                           check=True).stdout
    for key in expected_signatures(model):
        assert f"signature_def['{key}']" in shown
    assert "inputs['incident_energies']" in shown and "outputs['showers']" in shown
    assert "Method name is: tensorflow/serving/predict" in shown


def test_signatures_are_valid_predict_signatures_with_batch_first(exported):
    model, path, _, _ = exported
    signatures = serving_signatures(path)
    assert set(signatures) == expected_signatures(model)
    for key, signature in signatures.items():
        assert tf.compat.v1.saved_model.is_valid_signature(signature), key
        assert signature.method_name == "tensorflow/serving/predict"
        for tensor_key, tensor in [*signature.inputs.items(), *signature.outputs.items()]:
            if tensor_key != "seed":
                assert tensor.tensor_shape.dim[0].size == -1, f"{key}/{tensor_key} must have the batch in dim 0"
    assert [d.size for d in signatures["serving_default"].outputs["showers"].tensor_shape.dim] == [-1, model.n_voxels]


def test_tf1_session_returns_showers_of_the_right_shape(exported):
    model, _, _, runner = exported
    showers = runner.run("serving_default", {"incident_energies": ENERGIES})["showers"]
    assert showers.shape == (len(ENERGIES), model.n_voxels) and showers.dtype == np.float32
    assert np.isfinite(showers).all() and (showers >= 0).all() and showers.sum() > 0
    again = runner.run("serving_default", {"incident_energies": ENERGIES})["showers"]
    assert not np.array_equal(showers, again), "serving_default must draw a fresh seed per request"


def test_session_rejects_non_positive_energies(exported):
    _, _, _, runner = exported
    with pytest.raises(tf.errors.InvalidArgumentError, match="incident_energies must be > 0 MeV"):
        runner.run("serving_default", {"incident_energies": np.array([[100.0], [-1.0]], np.float32)})


def test_only_core_tensorflow_ops(exported):
    _, path, _, _ = exported
    found = op_types(path)
    assert "StatelessRandomNormalV2" in found, "the walk must reach the ops inside library functions"
    assert non_core_ops(path) == set()


def test_seeded_output_is_reproducible_and_equals_the_in_memory_model(exported):
    model, path, _, runner = exported
    seed = np.array([7, 3], np.int64)
    in_memory = model.sampler()(tf.constant(ENERGIES), seed_pair(7, 3)).numpy()  # compiled as the export
    reloaded = tf.saved_model.load(str(path)).signatures["generate_seeded"]
    first = reloaded(incident_energies=tf.constant(ENERGIES), seed=tf.constant(seed))["showers"].numpy()
    in_session = runner.run("generate_seeded", {"incident_energies": ENERGIES, "seed": seed})["showers"]
    np.testing.assert_allclose(first, in_memory, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(in_session, first)
    other = runner.run("generate_seeded", {"incident_energies": ENERGIES, "seed": seed + 1})["showers"]
    assert not np.array_equal(other, first)


def test_log_prob_signature_equals_the_graph_density(exported):
    model, _, _, runner = exported
    if not model.has_density:
        pytest.skip("students have no one-pass density")
    showers = model.sampler(jit_compile=False)(tf.constant(ENERGIES), seed_pair(1)).numpy()
    served = runner.run("log_prob", {"showers": showers, "incident_energies": ENERGIES})["log_prob"]
    expected = model.log_prob_graph(showers, ENERGIES).numpy()
    assert served.shape == (len(ENERGIES),)
    np.testing.assert_allclose(served, expected, rtol=1e-5)


def test_predict_request_round_trips_and_runs(exported):
    model, _, name, runner = exported
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    request.inputs["incident_energies"].CopyFrom(tf.make_tensor_proto(ENERGIES))
    parsed = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert parsed == request
    inputs = {key: tf.make_ndarray(proto) for key, proto in parsed.inputs.items()}
    np.testing.assert_array_equal(inputs["incident_energies"], ENERGIES)
    showers = runner.run(parsed.model_spec.signature_name, inputs)["showers"]
    assert showers.shape == (len(ENERGIES), model.n_voxels)


def test_warmup_requests_run_in_the_session(exported):
    model, path, name, runner = exported
    records = list(tf.data.TFRecordDataset(str(path / "assets.extra" / "tf_serving_warmup_requests")))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    assert 0 < len(logs) <= 1000
    assert {log.predict_log.request.model_spec.signature_name for log in logs} == expected_signatures(model)
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == name
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        outputs = runner.run(request.model_spec.signature_name, inputs)
        assert all(len(value) == len(inputs["incident_energies"]) for value in outputs.values())


def test_models_config_and_batching_files_parse(exported):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    _, path, name, _ = exported
    base = path.parents[1]
    config = text_format.Parse((base / "models.config").read_text(), model_server_config_pb2.ModelServerConfig())
    entries = {c.name: c for c in config.model_config_list.config}
    assert entries[name].base_path == str(path.parent.resolve()) and entries[name].model_platform == "tensorflow"
    batching = (base / "batching_parameters.txt").read_text()
    assert "max_batch_size { value: " in batching and "batch_timeout_micros { value: " in batching


# ----- versions and failures (tiny student only, no session) -------------------------------------------

@pytest.fixture(scope="module")
def tiny_student():
    return tiny_caloflow("student")


def test_versions_increase_and_existing_versions_are_never_overwritten(tiny_student, tmp_path):
    assert export_model(tiny_student, tmp_path, "m", warmup=False).name == "1"
    assert export_model(tiny_student, tmp_path, "m", version=5, warmup=False).name == "5"
    assert saved_model_versions(tmp_path / "m") == [1, 5]
    with pytest.raises(CalozooError, match="already exists.*next free one \\(6\\)"):
        export_model(tiny_student, tmp_path, "m", version=5, warmup=False)
    with pytest.raises(ValueError, match="`version` must be an integer >= 1"):
        export_model(tiny_student, tmp_path, "m", version=0, warmup=False)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "5"]


def test_a_failed_export_leaves_nothing(tiny_student, tmp_path, monkeypatch):
    import calozoo.export.savedmodel as savedmodel

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(savedmodel, "write_warmup_requests", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_model(tiny_student, tmp_path, "m")
    assert list((tmp_path / "m").iterdir()) == []
    assert not (tmp_path / "models.config").exists()


def test_bad_name_and_missing_serving_api_give_clear_errors(tiny_student, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="`name` must be letters"):
        export_model(tiny_student, tmp_path, "../escape")
    monkeypatch.setitem(sys.modules, "tensorflow_serving.apis", None)
    with pytest.raises(MissingDependencyError, match="pip install 'calozoo\\[serving\\]'.*warmup=False"):
        export_model(tiny_student, tmp_path, "m")
    assert not (tmp_path / "m").exists()


def xla_functions(path) -> list:
    """The library functions of a SavedModel that run XLA-compiled."""
    return [f for g in read_saved_model(path).meta_graphs for f in g.graph_def.library.function
            if f.attr["_XlaMustCompile"].b]


def ops_reached(path, functions) -> set[str]:
    """Op types in `functions` and in every library function they call, however deeply."""
    library = {f.signature.name: f for g in read_saved_model(path).meta_graphs for f in g.graph_def.library.function}
    found, pending, seen = set(), list(functions), set()
    while pending:
        function = pending.pop()
        if function.signature.name in seen:
            continue
        seen.add(function.signature.name)
        for node in function.node_def:
            called = [library[node.op]] if node.op in library else []
            called += [library[a.func.name] for a in node.attr.values() if a.func.name in library]
            pending.extend(called)
            if not called:
                found.add(node.op)
    return found


def test_generation_is_xla_compiled_and_the_checks_stay_outside(exported):
    model, path, _, _ = exported
    compiled = xla_functions(path)
    if not model.supports_xla:
        assert compiled == []
        return
    assert compiled, "the generation signatures must run XLA-compiled, as in process"
    compiled_ops = ops_reached(path, compiled)
    assert "StatelessRandomNormalV2" in compiled_ops, "the sampling itself must be inside the compiled function"
    assert not compiled_ops & {"Assert", "RandomUniformInt"}, "XLA would drop the check and draw the seed itself"


def test_export_after_generate_saves_no_in_process_sampler(tiny_student, tmp_path):
    fresh = len(xla_functions(export_model(tiny_caloflow("student"), tmp_path / "fresh", "m", warmup=False)))
    before = tiny_student.generate([1024.0, 65536.0], seed=4)
    sampler = tiny_student.sampler()
    path = export_model(tiny_student, tmp_path, "m", warmup=False)
    assert len(xla_functions(path)) == fresh, "only the serving module's own compiled functions are saved"
    np.testing.assert_array_equal(tiny_student.generate([1024.0, 65536.0], seed=4), before)
    assert tiny_student.sampler() is sampler, "the cache of compiled samplers is kept after the export"
