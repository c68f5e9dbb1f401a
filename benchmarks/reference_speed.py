"""Generation speed side by side with the reference PyTorch code (issue 18): the reference stack (PyTorch + nflows,
the optional `[peers]` extra, never a calozoo dependency) and calozoo on the same models with the same weights, timed
in one run, alternating between the two, both pinned to the same core with the same thread count.

    /work/peers-venv/bin/python benchmarks/reference_speed.py \\
        --caloflow-git-dir PATH/TO/caloflow-for-calochallenge/.git \\
        --icaloflow-git-dir PATH/TO/inductive-caloflow/.git [--quick] [--models ds1-student,ds1-teacher,ds2-student]

The committed reference_speed.json: that command with `--nice -10` and the session's autogroup at nice -10 (now
`--autogroup-nice -10`) on the 2-core machine, about 14 minutes; `--size tiny --quick --models ds1-student` is a
smoke test of about a minute.

Three processes: this coordinator (standard library only) and two long-lived workers, one per stack, each started
under `taskset -c CORE` with one thread (`--reference-python`: an environment with torch and nflows, default this
interpreter; `--calozoo-python`: one with TensorFlow, default `python` on PATH). They take commands over pipes, one
JSON line each way. Per model:

1. The reference worker extracts the reference scripts at their pinned commits (as tests/reference/ does), builds the
   paper-size flows with the reference's own builders (the fixture scripts' `build_flows` for CaloFlow, the
   reference's `build_flow` / `build_flow_student` for iCaloFlow) in float32, and writes their state_dicts.
2. The calozoo worker builds the registered paper configuration in float32 with exactly these weights
   (`calozoo.models.{caloflow,icaloflow}_checkpoint`, the converter `calozoo import` uses).
3. Per batch size, at the incident energies `calozoo time` uses (`sample_incident_energies(dataset, batch, 0)`):
   warm-up on both sides, then `rounds` rounds; each round times `calls` generation calls of each stack (the order
   alternates: calozoo first in even rounds, the reference first in odd ones). The number is the median over rounds
   of each round's mean ms per shower; the ratio is reference / calozoo.

calozoo's side is `calozoo time NAME --paper-size`'s protocol (`calozoo.workflow.timing.time_generation`: the
XLA-compiled sampler, float32, the showers copied to host memory inside the timed region). The reference's side is
its own generation path under `torch.no_grad()`: CaloFlow `generate_single_with_rec` (Flow-I, then Flow-II, to MeV),
iCaloFlow `generate_flow_1` -> `generate_flow_2` -> `generate_flow_3` (the student chain, 45 layers). Neither side
writes files. Load averages (/proc/loadavg), the busy fraction of each core (/proc/stat) and the CPU model are
recorded with every row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
FIXTURE_SCRIPTS = REPOSITORY / "tests" / "reference"
OUT = Path(__file__).resolve().parent / "reference_speed.json"

# key: calozoo name, reference, {batch size: (rounds, calls per round, warm-up calls of the reference)}. calozoo
# always gets `--warmup` calls (its first call compiles); the reference none where one call takes a minute.
MODELS = {
    "ds1-student": {"name": "caloflow-ds1-photon-student", "reference": "caloflow", "role": "student",
                    "plan": {1: (5, 20, 1), 100: (5, 5, 1), 10_000: (3, 1, 0)}},
    "ds1-teacher": {"name": "caloflow-ds1-photon-teacher", "reference": "caloflow", "role": "teacher",
                    "plan": {100: (3, 1, 0)}},
    "ds2-student": {"name": "icaloflow-ds2-electron-student", "reference": "icaloflow", "role": "student",
                    "plan": {1000: (3, 1, 0)}},
}
QUICK_PLAN = {"ds1-student": {1: (2, 5, 1), 100: (2, 1, 1)}, "ds1-teacher": {10: (2, 1, 1)},
              "ds2-student": {10: (2, 1, 1)}}
# The targets: (minimum ratio reference / calozoo, maximum calozoo ms per shower or None)
TARGETS = {("ds1-student", 1): (4.0, 10.0), ("ds1-student", 100): (3.0, None), ("ds1-student", 10_000): (3.0, None),
           ("ds1-teacher", 100): (5.0, None), ("ds2-student", 1000): (5.0, None)}

# The paper sizes (zoo_configs/*.yaml) in the reference's terms, and small ones for a smoke test (`--size tiny`).
CALOFLOW_SIZES = {
    "paper": {"teacher_hidden": 378, "student_hidden": 736, "flow_blocks": 8, "n_hidden": 1, "num_bins": 8,
              "tail_bound": 14.0, "dropout": 0.05, "energy_hidden": 64, "energy_blocks": 6, "energy_made_blocks": 2},
    "tiny": {"teacher_hidden": 8, "student_hidden": 10, "flow_blocks": 3, "n_hidden": 1, "num_bins": 8,
             "tail_bound": 14.0, "dropout": 0.05, "energy_hidden": 8, "energy_blocks": 2, "energy_made_blocks": 2},
}
ICALOFLOW_ARGS = {"paper": ["--student_hidden_size", "384"],  # hidden 256, 8 blocks: the reference's defaults
                  "tiny": ["--n_blocks", "2", "--hidden_size", "8", "--student_hidden_size", "10"]}
ICALOFLOW_FLOW_2_STUDENT_HIDDEN = {"paper": 256, "tiny": 10}  # 256 is hard-coded in the reference's __main__
DEPTH, LAYER_SIZE = 45, 144
SEED = 22


# ----------------------------------------------------------------------------------------------- machine state

def load_average() -> list[float]:
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies of each core from /proc/stat."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *values = line.split()
            values = [int(v) for v in values]
            idle = values[3] + values[4]
            times[name] = (sum(values) - idle, sum(values))
    return times


def busy_fractions(before: dict, after: dict) -> dict[str, float]:
    return {core: round((after[core][0] - before[core][0]) / max(1, after[core][1] - before[core][1]), 3)
            for core in before}


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def set_autogroup_nice(nice: int | None) -> int | None:
    """Sets the niceness of this process's scheduler autogroup (its session, workers included) and returns it.
    With autogroups on (/proc/sys/kernel/sched_autogroup_enabled), a process's own niceness weighs only inside its
    session: against other sessions' work on the same core only the autogroup's counts (root only)."""
    if nice is None:
        return None
    Path("/proc/self/autogroup").write_text(str(nice))
    return int(Path("/proc/self/autogroup").read_text().split()[-1])


def cpu_description() -> dict:
    """The CPU model (as the hypervisor shows it), its family/model numbers and the vector extensions of note."""
    fields = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if ":" in line:
            key, value = (part.strip() for part in line.split(":", 1))
            fields.setdefault(key, value)
        elif fields:
            break
    flags = set(fields.get("flags", "").split())
    return {"cpu_model": fields.get("model name", "unknown"), "family": fields.get("cpu family"),
            "model": fields.get("model"), "cpu_count": os.cpu_count(),
            "vector_extensions": sorted(flags & {"avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile",
                                                 "amx_bf16"}),
            "hypervisor": "hypervisor" in flags}


# ---------------------------------------------------------------------------------------------------- workers

class Worker:
    """A long-lived worker process of one stack, pinned with taskset; one JSON line per command and per answer."""

    def __init__(self, stack: str, python: str, core: str, threads: int, arguments: list[str], script: str = __file__,
                 nice: int = 0):
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
               "OPENBLAS_NUM_THREADS": str(threads), "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
        command = ["nice", "-n", str(nice)] * bool(nice) + [
            "taskset", "-c", core, python, "-W", "ignore", str(Path(script).resolve()), "--worker", stack,
            "--threads", str(threads), *arguments]
        self.stack = stack
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def call(self, op: str, **arguments):
        self.process.stdin.write(json.dumps({"op": op, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.stack} worker exited (code {self.process.wait()}) during '{op}'.")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the {self.stack} worker failed in '{op}':\n{answer['error']}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.process.stdin.close()
        self.process.wait(timeout=60)


def serve(handlers: dict) -> None:
    """The worker loop: answers on the original stdout; what the code under test prints (the reference reports
    every generated layer) goes to /dev/null, errors to stderr."""
    import traceback

    answers = os.fdopen(os.dup(1), "w")
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    sys.stdout = os.fdopen(quiet, "w")
    for line in sys.stdin:
        command = json.loads(line)
        try:
            answer = handlers[command.pop("op")](**command)
        except Exception:  # noqa: BLE001 - reported to the coordinator, which stops
            answer = {"error": traceback.format_exc()}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


def import_reference_module(git_dir: str, fixtures, module: str, scratch: Path, dtype: str = "float32"):
    """The reference script `module` (run_gamma_2023 or run), extracted at its pinned commit by the fixture script's
    `extract_reference` into `scratch` and imported; torch's default dtype set to `dtype` afterwards (the reference
    scripts set float64 when imported)."""
    import make_caloflow_fixtures
    import torch

    folder = scratch / module
    folder.mkdir(exist_ok=True)
    fixtures.extract_reference(git_dir, folder, fixtures.REFERENCE_COMMIT, fixtures.REFERENCE_FILES)
    sys.path.insert(0, str(folder))
    if fixtures is make_caloflow_fixtures:
        __import__("torch._dynamo")  # before the stubs: it inspects the specs of installed modules
        make_caloflow_fixtures.stub_unused_imports()
    reference = __import__(module)
    torch.set_default_dtype(getattr(torch, dtype))
    return reference


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)
    sys.path.insert(0, str(FIXTURE_SCRIPTS))


def set_tensorflow_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def reference_worker(threads: int, size: str) -> None:
    """Builds and times the reference flows (torch + nflows, float32, the reference's generation functions)."""
    import numpy as np
    import torch

    set_torch_threads(threads)
    import make_caloflow_fixtures as caloflow_fixtures
    import make_icaloflow_fixtures as icaloflow_fixtures

    state = {}
    scratch = Path(tempfile.mkdtemp(prefix="reference_speed_"))

    def import_reference(git_dir: str, fixtures, module: str):
        return import_reference_module(git_dir, fixtures, module, scratch)

    def save(flow, path: Path) -> str:
        np.savez(path, **{key: value.detach().numpy() for key, value in flow.state_dict().items()})
        return str(path)

    def setup(model: str, reference: str, role: str, git_dir: str, out_dir: str) -> dict:
        state.clear()
        torch.manual_seed(SEED)
        np.random.seed(SEED)
        out = Path(out_dir)
        if reference == "caloflow":
            from nflows import distributions, flows, transforms

            ref = import_reference(git_dir, caloflow_fixtures, "run_gamma_2023")
            caloflow_fixtures.SIZES.update(CALOFLOW_SIZES[size])
            teacher, student, energy_flow = caloflow_fixtures.build_flows(ref, transforms, distributions, flows, torch)
            flow = student if role == "student" else teacher
            squeezing = ref.sample_rec_flow

            def sample_rec_flow(rec_model, num_pts, args, energies):
                """The reference's Flow-I draw, (N, 5) also at N = 1 (its `.squeeze()` drops the batch axis there,
                and `generate_single_with_rec` then fails its own length check)."""
                return squeezing(rec_model, num_pts, args, energies).reshape(len(energies), -1)

            ref.sample_rec_flow = sample_rec_flow
            dim_split = [a * r for a, r in caloflow_fixtures.LAYER_SHAPES]
            args = argparse.Namespace(device=torch.device("cpu"), dim_split=dim_split)

            def generate(energies_mev):
                energies = torch.tensor(np.asarray(energies_mev, np.float32).reshape(-1) / 1e5)
                return ref.generate_single_with_rec(flow, args, 1, energies, energy_flow)

            states = {"shower_flow": save(flow, out / "shower_flow.npz"),
                      "energy_flow": save(energy_flow, out / "energy_flow.npz")}
        else:
            ref = import_reference(git_dir, icaloflow_fixtures, "run")
            icaloflow_fixtures.drop_scheduler_verbose(torch)
            args = ref.parser.parse_args(ICALOFLOW_ARGS[size])
            args.device, args.results_file = torch.device("cpu"), str(scratch / "results.txt")
            source = (scratch / "run" / "run.py").read_text()
            args.normalization = float(re.findall(r"args\.normalization = ([0-9.e+-]+)", source)[0])
            ref.args = args
            depth = 4 - int(args.which_ds)
            flow_1, _, _ = ref.build_flow(DEPTH, 1, args, args.hidden_size)
            teacher_2, _, _ = ref.build_flow(LAYER_SIZE, 2, args, args.hidden_size, num_layers=2)
            teacher_3, _, _ = ref.build_flow(LAYER_SIZE, 3 + LAYER_SIZE + 44, args, args.hidden_size,
                                             num_layers=depth)
            if role != "student":
                raise ValueError("only the iCaloFlow student chain is timed")
            flow_2, _, _ = ref.build_flow_student(teacher_2, LAYER_SIZE, 2, args,
                                                  ICALOFLOW_FLOW_2_STUDENT_HIDDEN[size], num_layers=2)
            flow_3, _, _ = ref.build_flow_student(teacher_3, LAYER_SIZE, 3 + LAYER_SIZE + 44, args,
                                                  args.student_hidden_size, num_layers=depth)
            del teacher_2, teacher_3
            for flow in (flow_1, flow_2, flow_3):
                flow.eval()

            def generate(energies_mev):
                conditions = torch.log10(torch.tensor(np.asarray(energies_mev, np.float32).reshape(-1, 1))) - 4.5
                incident, samples_1 = ref.generate_flow_1(flow_1, args, len(conditions), conditions)
                samples_2 = ref.generate_flow_2(flow_2, args, incident, samples_1)
                return ref.generate_flow_3(flow_3, args, incident, samples_1, samples_2)

            states = {"energy_flow": save(flow_1, out / "energy_flow.npz"),
                      "first_layer_flow": save(flow_2, out / "first_layer_flow.npz"),
                      "layer_flow": save(flow_3, out / "layer_flow.npz")}
        state["generate"] = generate
        from importlib import metadata

        timed = [flow, energy_flow] if reference == "caloflow" else [flow_1, flow_2, flow_3]
        return {"states": states, "torch": torch.__version__, "nflows": metadata.version("nflows"),
                "torch_threads": torch.get_num_threads(), "numpy": np.__version__,
                "num_params": int(sum(p.numel() for f in timed for p in f.parameters()))}

    def run(energies: list, calls: int, warmup: int = 0) -> dict:
        with torch.no_grad():
            started = time.perf_counter()
            for _ in range(warmup):
                state["generate"](energies)
            warmup_s = round(time.perf_counter() - started, 2)
            per_shower, showers = [], None
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                started = time.perf_counter()
                showers = state["generate"](energies)
                per_shower.append((time.perf_counter() - started) * 1e3 / len(energies))
            share = (time.process_time() - cpu) / max(1e-9, time.perf_counter() - wall)
        return {"ms_per_shower": per_shower, "warmup_s": warmup_s, "cpu_share": share,
                **({"shape": list(showers.shape), "dtype": str(showers.dtype)} if calls else {})}

    serve({"setup": setup, "run": run})


def calozoo_worker(threads: int, size: str) -> None:
    """Builds the registered paper configuration with the reference's weights and times it as `calozoo time`."""
    import numpy as np
    import tensorflow as tf

    set_tensorflow_threads(threads)
    import tensorflow_probability as tfp

    from calozoo.data.incident_energies import sample_incident_energies
    from calozoo.models.caloflow_checkpoint import caloflow_config_from_checkpoints, caloflow_from_checkpoints
    from calozoo.models.icaloflow_checkpoint import icaloflow_config_from_checkpoints, icaloflow_from_checkpoints
    from calozoo.registry import get_entry
    from calozoo.workflow.timing import time_generation

    state = {}

    def read(path: str) -> dict:
        with np.load(path) as stored:
            return {key: stored[key] for key in stored.files}

    def setup(name: str, reference: str, states: dict) -> dict:
        state.clear()
        base = {**get_entry(name).config, "dtype": "float32"}
        if reference == "caloflow":
            shower, energy = read(states["shower_flow"]), read(states["energy_flow"])
            config, inferred = caloflow_config_from_checkpoints(base, shower, energy)
            model = caloflow_from_checkpoints(config, shower, energy)
        else:
            arrays = {key: read(path) for key, path in states.items()}
            config, inferred = icaloflow_config_from_checkpoints(base, arrays)
            model = icaloflow_from_checkpoints(config, arrays)
        changed = {key: [base.get(key), value] for key, value in inferred.items() if base.get(key) != value}
        if size == "paper" and changed:
            raise ValueError(f"the reference's paper-size flows differ from the registered configuration: {changed}")
        state.update(model=model, compiled=set())
        return {"num_params": int(model.num_params), "tensorflow": tf.__version__,
                "tensorflow_probability": tfp.__version__, "dataset": model.dataset,
                "differs_from_registered": changed,
                "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads()}

    def energies(batch: int) -> dict:
        return {"energies_mev": sample_incident_energies(state["model"].dataset, batch, 0).reshape(-1).tolist()}

    def run(batch: int, calls: int, warmup: int = 0) -> dict:
        started = time.perf_counter()
        if warmup:  # the warm-up calls of `time_generation` (its one timed call is discarded)
            time_generation(state["model"], [batch], repeats=1, warmup=warmup - 1, progress=False)
        warmup_s = round(time.perf_counter() - started, 2)
        per_shower = []
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):  # one call each: the per-call numbers, as the reference side reports them
            report = time_generation(state["model"], [batch], repeats=1, warmup=0, progress=False)
            per_shower.append(report["results"][0]["mean_ms_per_shower"])
        share = (time.process_time() - cpu) / max(1e-9, time.perf_counter() - wall)
        return {"ms_per_shower": per_shower, "warmup_s": warmup_s, "cpu_share": share}

    serve({"setup": setup, "energies": energies, "run": run})


# ------------------------------------------------------------------------------------------------ coordinator

def measure(key: str, spec: dict, plan: dict, workers: dict, options, scratch: Path, log) -> list[dict]:
    git_dir = options.caloflow_git_dir if spec["reference"] == "caloflow" else options.icaloflow_git_dir
    out_dir = scratch / key
    out_dir.mkdir()
    started = time.perf_counter()
    built = workers["reference"].call("setup", model=key, reference=spec["reference"], role=spec["role"],
                                      git_dir=git_dir, out_dir=str(out_dir))
    calozoo = workers["calozoo"].call("setup", name=spec["name"], reference=spec["reference"], states=built["states"])
    log(f"{key}: built both ({calozoo['num_params']:,} parameters in calozoo, {built['num_params']:,} in the "
        f"reference) in {time.perf_counter() - started:.0f} s")
    for path in built["states"].values():
        Path(path).unlink()
    rows = []
    for batch, (rounds, calls, reference_warmup) in plan.items():
        energies = workers["calozoo"].call("energies", batch=batch)["energies_mev"]
        before_load, before_cores, started = load_average(), core_times(), time.perf_counter()
        warm_calozoo = workers["calozoo"].call("run", batch=batch, calls=0, warmup=options.warmup)
        warm_reference = workers["reference"].call("run", energies=energies, calls=0, warmup=reference_warmup)
        per_round = {"calozoo": [], "reference": []}
        shares = {"calozoo": [], "reference": []}
        loads = []
        for index in range(rounds):
            order = ("calozoo", "reference") if index % 2 == 0 else ("reference", "calozoo")
            for stack in order:
                if stack == "calozoo":
                    answer = workers["calozoo"].call("run", batch=batch, calls=calls)
                else:
                    answer = workers["reference"].call("run", energies=energies, calls=calls)
                per_round[stack].append(statistics.fmean(answer["ms_per_shower"]))
                shares[stack].append(answer["cpu_share"])
            loads.append(load_average())
            log(f"  {key} batch {batch} round {index + 1}/{rounds}: calozoo {per_round['calozoo'][-1]:.4g}, "
                f"reference {per_round['reference'][-1]:.4g} ms/shower; load {loads[-1]}")
        medians = {stack: statistics.median(values) for stack, values in per_round.items()}
        ratio = medians["reference"] / medians["calozoo"]
        target = TARGETS.get((key, batch)) if options.size == "paper" else None
        row = {"model": spec["name"], "key": key, "size": options.size, "batch": batch,
               "calozoo_ms_per_shower": round(medians["calozoo"], 4),
               "reference_ms_per_shower": round(medians["reference"], 4), "ratio": round(ratio, 3),
               "rounds": rounds, "calls_per_round": calls,
               "calozoo_per_round": [round(v, 4) for v in per_round["calozoo"]],
               "reference_per_round": [round(v, 4) for v in per_round["reference"]],
               "warmup_calls": {"calozoo": options.warmup, "reference": reference_warmup},
               "warmup_s": {"calozoo": warm_calozoo["warmup_s"], "reference": warm_reference["warmup_s"]},
               "threads": options.threads, "cores": options.core, "nice": options.nice, "dtype": "float32",
               "num_params": {"calozoo": calozoo["num_params"], "reference": built["num_params"]},
               "load_average_before": before_load, "load_average_after_each_round": loads,
               "core_busy_fraction": busy_fractions(before_cores, core_times()),
               # CPU time / wall time of each worker over its timed calls: the share of the core it got (1 = all)
               "cpu_share_median": {stack: round(statistics.median(values), 3) for stack, values in shares.items()},
               "wall_s": round(time.perf_counter() - started, 1)}
        if target:
            row["target"] = {"min_ratio": target[0], **({"max_calozoo_ms": target[1]} if target[1] else {})}
            row["target_met"] = bool(ratio >= target[0] and (target[1] is None or medians["calozoo"] <= target[1]))
        rows.append(row)
        log(f"{key} batch {batch}: calozoo {row['calozoo_ms_per_shower']:.4g}, reference "
            f"{row['reference_ms_per_shower']:.4g} ms/shower, ratio {ratio:.2f}"
            + (f" (target >= {target[0]}: {'met' if row['target_met'] else 'MISSED'})" if target else ""))
        versions = {"torch": built["torch"], "nflows": built["nflows"], "numpy": built["numpy"],
                    "tensorflow": calozoo["tensorflow"], "tensorflow_probability": calozoo["tensorflow_probability"],
                    "calozoo_threads": [calozoo["intra_op_threads"], calozoo["inter_op_threads"]],
                    "torch_threads": built["torch_threads"]}
        row["versions"] = versions
    return rows


def parse_plan(options) -> dict:
    keys = [k.strip() for k in options.models.split(",") if k.strip()]
    unknown = sorted(set(keys) - set(MODELS))
    if unknown:
        raise SystemExit(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    plans = {}
    for key in keys:
        plan = dict(QUICK_PLAN[key] if options.quick else MODELS[key]["plan"])
        if options.batches:
            batches = [int(b) for b in options.batches.split(",")]
            plan = {b: plan.get(b, (3, 1, 1)) for b in batches}
        if options.rounds:
            plan = {b: (options.rounds, *rest) for b, (_, *rest) in plan.items()}
        plans[key] = plan
    return plans


def default_calozoo_python() -> str:
    import importlib.util
    import shutil

    if importlib.util.find_spec("tensorflow") is not None:
        return sys.executable
    return os.environ.get("CALOZOO_PYTHON") or shutil.which("python3") or "python3"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("reference", "calozoo"), help=argparse.SUPPRESS)
    parser.add_argument("--caloflow-git-dir", help="a clone of Ian-Pang/caloflow-for-calochallenge (its .git)")
    parser.add_argument("--icaloflow-git-dir", help="a clone of claudius-krause/inductive-caloflow (its .git)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default: each model's plan)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per batch size (default: the plan's)")
    parser.add_argument("--warmup", type=int, default=2,
                        help="calozoo's untimed calls per batch size before the rounds, as `calozoo time` (the "
                             "first compiles)")
    parser.add_argument("--quick", action="store_true", help="small batches and 2 rounds (a few minutes)")
    parser.add_argument("--size", choices=("paper", "tiny"), default="paper",
                        help="paper: the registered paper configurations; tiny: the fixture sizes (a smoke test)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--core", default="0", help="taskset CPU list for both workers")
    parser.add_argument("--nice", type=int, default=0,
                        help="niceness of both workers (negative, as root: priority over other work on the core)")
    parser.add_argument("--autogroup-nice", type=int, default=None,
                        help="niceness of this session's scheduler autogroup (root; see set_autogroup_nice): what "
                             "gives the workers priority over other sessions' work on the same core")
    parser.add_argument("--reference-python", default=sys.executable,
                        help="an interpreter with torch and nflows (default: this one)")
    parser.add_argument("--calozoo-python", default=None,
                        help="an interpreter with calozoo's dependencies (default: this one if it has TensorFlow, "
                             "else $CALOZOO_PYTHON or python3 on PATH)")
    parser.add_argument("--out", default=str(OUT))
    options = parser.parse_args()
    if options.worker:
        (reference_worker if options.worker == "reference" else calozoo_worker)(options.threads, options.size)
        return
    plans = parse_plan(options)
    for key in plans:
        if not getattr(options, f"{MODELS[key]['reference']}_git_dir"):
            raise SystemExit(f"{key} needs --{MODELS[key]['reference']}-git-dir")
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    autogroup_nice = set_autogroup_nice(options.autogroup_nice)

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    log(f"cpu {cpu_model()}, load {load_average()}, plan {plans}")
    workers = {}
    rows = []
    try:
        arguments = ["--size", options.size]
        workers["reference"] = Worker("reference", options.reference_python, options.core, options.threads, arguments,
                                      nice=options.nice)
        workers["calozoo"] = Worker("calozoo", options.calozoo_python or default_calozoo_python(), options.core,
                                    options.threads, arguments, nice=options.nice)
        with tempfile.TemporaryDirectory(prefix="reference_speed_") as scratch:
            for key, plan in plans.items():
                rows += measure(key, MODELS[key], plan, workers, options, Path(scratch), log)
    finally:
        for worker in workers.values():
            worker.close()
    result = {
        "issue": 18, "part": 1,
        "command": " ".join(["python", "benchmarks/reference_speed.py", *sys.argv[1:]]),
        "started": started_at, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {**cpu_description(), "load_average_at_end": load_average()},
        "scheduling": {"core": options.core, "threads": options.threads, "nice": options.nice,
                       "autogroup_nice": autogroup_nice},
        "references": {"caloflow": "Ian-Pang/caloflow-for-calochallenge@f29cd7108b16776177f89aca81073a630d358081",
                       "icaloflow": "claudius-krause/inductive-caloflow@328ae2a029b9d47d0dd57a2e908ad262b9ce9795"},
        "protocol": ("both stacks in long-lived worker processes pinned with taskset to the same core(s), the same "
                     "thread count, float32, the same weights (the reference's state_dicts through calozoo's "
                     "checkpoint converter) and incident energies; per batch size one warm-up call each, then "
                     "rounds alternating calozoo and the reference (order swapped every round); number = median "
                     "over rounds of each round's mean ms/shower; ratio = reference / calozoo. calozoo: "
                     "time_generation (XLA sampler, as `calozoo time --paper-size`); reference: its generation "
                     "functions under torch.no_grad(), no file output"),
        "results": rows,
    }
    Path(options.out).write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {options.out}")
    for row in rows:
        print(f"{row['model']:32s} batch {row['batch']:>6}: calozoo {row['calozoo_ms_per_shower']:>9.4g}  reference "
              f"{row['reference_ms_per_shower']:>9.4g} ms/shower  ratio {row['ratio']:.2f}"
              + (f"  target >= {row['target']['min_ratio']}: {'met' if row['target_met'] else 'MISSED'}"
                 if "target" in row else ""))


if __name__ == "__main__":
    main()
