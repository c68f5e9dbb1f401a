"""Training throughput side by side with the reference PyTorch code (issue 19 part 3): showers per second of
optimizer steps of the CaloFlow DS1 photon teacher (Flow-II) and the iCaloFlow DS2 teacher's Flow-3 at paper size,
calozoo from memory and streamed from the HDF5 file against the reference's training step, in one run.

    calozoo synthesize 1-photons -n 4000 -o ds1.h5 && calozoo synthesize 2 -n 2000 -o ds2.h5
    /work/peers-venv/bin/python benchmarks/reference_train_speed.py --ds1-data ds1.h5 --ds2-data ds2.h5 \\
        --caloflow-git-dir PATH/TO/caloflow-for-calochallenge/.git \\
        --icaloflow-git-dir PATH/TO/inductive-caloflow/.git [--quick]

The committed reference_train_speed.json: that command with `--nice -10 --autogroup-nice -10` (the autogroup set by
hand), about 4 minutes.

The machinery of benchmarks/reference_speed.py (long-lived workers, one per stack, pinned with taskset to the same
core, one thread, JSON lines over pipes). Per model:

- calozoo (float32 unless `--dtype float64`) builds the registered paper configuration and the training material of
  `calozoo train`: the CaloFlow teacher's preprocessed arrays in memory (`CaloFlow.preprocess`, batched by the
  trainer's seeded permutation, `trainer._batches`); iCaloFlow's Flow-3 rows both in memory (`FlowData`: a gather
  per batch) and streamed (`StreamedFlowData`: the `ShowerBatches` tf.data pipeline over blocks of the file that
  `calozoo train --data FILE` streams with). The step is the trainer's (`trainer._make_step`: the likelihood loss
  of `train_by_likelihood`, Adam with the recipe's schedule; XLA unless `--no-xla`; the loss read back every step,
  as `train_loop` does). CaloFlow trains only from memory (`STREAMING_FAMILIES`), so it has no streamed row.
- The reference builds the same flow with its own builders (the fixture scripts' `build_flows` for CaloFlow, the
  reference's `build_flow` for iCaloFlow, which also returns its Adam and OneCycleLR) in the same dtype, and times
  its training step as its loop runs it: `loss = -flow.log_prob(x, c).mean(0)`, `zero_grad`, `backward`, Adam
  `step` (and the schedule's step where the reference steps one), `loss.item()`. It is fed calozoo's preprocessed
  (x, c) of the first batches (the preprocessing of both agrees to 1e-14, tests/reference/), so its own per-item
  data loader is not timed.
- Warm-up steps on every side (calozoo's first compiles), then rounds alternating the stacks (order rotated every
  round); the number is the median over rounds of showers per second (Flow-3: rows per second / 44, one row per
  (shower, layer) pair). Weights differ between the stacks (random initialisation; speed does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_speed as shared  # noqa: E402 - the workers and machine-state helpers

OUT = Path(__file__).resolve().parent / "reference_train_speed.json"
MODELS = {
    "ds1-teacher": {"name": "caloflow-ds1-photon-teacher", "reference": "caloflow", "part": "teacher",
                    "modes": ("in-memory",), "rows_per_shower": 1},
    "ds2-flow3": {"name": "icaloflow-ds2-electron-teacher", "reference": "icaloflow", "part": "layer_flow",
                  "modes": ("in-memory", "streamed"), "rows_per_shower": 44},
}
PLAN = {"ds1-teacher": (3, 10), "ds2-flow3": (3, 8)}  # (rounds, optimizer steps per round and stack)
QUICK_PLAN = {"ds1-teacher": (2, 2), "ds2-flow3": (2, 2)}
REFERENCE_BATCHES = 3  # distinct batches the reference cycles through
SEED = 0


def reference_worker(threads: int, size: str, dtype: str) -> None:
    """The reference flow in training mode and its step (loss, backward, Adam, schedule) on calozoo's batches."""
    import numpy as np
    import torch

    shared.set_torch_threads(threads)
    import make_caloflow_fixtures as caloflow_fixtures
    import make_icaloflow_fixtures as icaloflow_fixtures

    state = {}
    scratch = Path(tempfile.mkdtemp(prefix="reference_train_speed_"))

    def setup(key: str, reference: str, git_dir: str, batches: str) -> dict:
        state.clear()
        torch.manual_seed(shared.SEED)
        schedule = None
        if reference == "caloflow":
            from nflows import distributions, flows, transforms

            ref = shared.import_reference_module(git_dir, caloflow_fixtures, "run_gamma_2023", scratch, dtype)
            # the student (built alongside, for its permutations) kept small: only the teacher trains here
            caloflow_fixtures.SIZES.update({**shared.CALOFLOW_SIZES[size], "student_hidden": 8})
            flow, _, _ = caloflow_fixtures.build_flows(ref, transforms, distributions, flows, torch)
            optimizer = torch.optim.Adam(flow.parameters(), lr=ref.parser.parse_args([]).lr)  # as its __main__
        else:
            ref = shared.import_reference_module(git_dir, icaloflow_fixtures, "run", scratch, dtype)
            icaloflow_fixtures.drop_scheduler_verbose(torch)
            args = ref.parser.parse_args(shared.ICALOFLOW_ARGS[size])
            args.device, args.results_file = torch.device("cpu"), str(scratch / "results.txt")
            ref.args = args
            flow, optimizer, schedule = ref.build_flow(shared.LAYER_SIZE, 3 + shared.LAYER_SIZE + 44, args,
                                                       args.hidden_size, num_layers=4 - int(args.which_ds))
        flow.train()
        with np.load(batches) as stored:
            data = [(torch.tensor(stored[f"x_{i}"]), torch.tensor(stored[f"c_{i}"]))
                    for i in range(REFERENCE_BATCHES)]
        state.update(flow=flow, optimizer=optimizer, schedule=schedule, data=data, steps=0)
        from importlib import metadata

        return {"num_params": int(sum(p.numel() for p in flow.parameters() if p.requires_grad)),
                "torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                "torch_threads": torch.get_num_threads(), "dtype": str(data[0][0].dtype),
                "batch_size": int(data[0][0].shape[0])}

    def run(steps: int) -> dict:
        flow, optimizer, schedule = state["flow"], state["optimizer"], state["schedule"]
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            x, c = state["data"][state["steps"] % REFERENCE_BATCHES]
            loss = -flow.log_prob(x, c).mean(0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            loss.item()
            state["steps"] += 1
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "cpu_share": (time.process_time() - cpu) / seconds, "loss": float(loss)}

    shared.serve({"setup": setup, "run": run})


def calozoo_worker(threads: int, size: str, dtype: str, jit_compile: bool) -> None:
    """calozoo's training step on batches from memory and streamed, as `calozoo train` builds them."""
    import numpy as np
    import tensorflow as tf

    shared.set_tensorflow_threads(threads)
    import tf_keras

    from calozoo.data.files import read_showers
    from calozoo.data.stream import ShowerFiles, ShowerRows
    from calozoo.registry import create, get_entry
    from calozoo.training import caloflow as caloflow_training
    from calozoo.training import icaloflow as icaloflow_training
    from calozoo.training.schedules import make_schedule
    from calozoo.training.settings import merged_settings
    from calozoo.training.trainer import _batches, _make_step

    state = {}

    def tiny_changes(key: str) -> dict:
        if size == "paper":
            return {}
        sizes = shared.CALOFLOW_SIZES["tiny"]
        return ({"hidden": sizes["teacher_hidden"], "num_blocks": sizes["flow_blocks"]} if key == "ds1-teacher"
                else {"layer_hidden": 8, "num_blocks": 2})

    def endless(source, batch_size: int):
        """The trainer's batches of `source`, epoch after epoch."""
        epoch = 0
        while True:
            yield from _batches(source, batch_size, SEED, epoch)
            epoch += 1

    def setup(key: str, name: str, part: str, data: str, modes: list, batches_out: str) -> dict:
        state.clear()
        entry = get_entry(name)
        model = create(name, dtype=dtype, **tiny_changes(key))
        defaults = caloflow_training.DEFAULT_TRAINING if entry.family == "caloflow" \
            else icaloflow_training.TEACHER_TRAINING
        spec = merged_settings(defaults, entry.training)[part]
        batch_size = int(spec["batch_size"])
        energies, showers = read_showers(data, model.geometry.n_voxels)
        flow = getattr(model, "shower_flow" if part == "teacher" else part)
        sources = {}
        if entry.family == "caloflow":
            arrays = {k: v.numpy() for k, v in model.preprocess(showers, energies, SEED).items()}
            sources["in-memory"] = ([arrays["shower_x"], arrays["shower_c"]], lambda x, c: (x, c))
        else:
            generator = tf.random.Generator.from_seed(SEED + 101)
            in_memory = icaloflow_training.FlowData(model, showers, energies)
            streamed = icaloflow_training.StreamedFlowData(model, ShowerRows(ShowerFiles([data]),
                                                                             np.arange(len(showers))))
            for mode, material in (("in-memory", in_memory), ("streamed", streamed)):
                sources[mode] = (material.arrays(part), lambda *batch, material=material: material.inputs(
                    part, generator.make_seeds(1)[:, 0], *batch))
        state["batches"], state["steps"] = {}, {}
        for mode in modes:
            source, inputs = sources[mode]

            def loss_fn(*batch, inputs=inputs):
                x, c = inputs(*batch)
                nll = -tf.reduce_mean(flow.log_prob(x, c, training=True))
                return nll, nll

            optimizer = tf_keras.optimizers.legacy.Adam(learning_rate=make_schedule(spec["schedule"], 100_000))
            state["steps"][mode] = _make_step(loss_fn, list(flow.trainable_variables), optimizer, None, jit_compile)
            state["batches"][mode] = endless(source, batch_size)
        # the first batches, preprocessed, for the reference
        source, inputs = sources["in-memory"]
        first = [inputs(*batch) for _, batch in zip(range(REFERENCE_BATCHES), _batches(source, batch_size, SEED, 0))]
        np.savez(batches_out, **{f"{name}_{i}": np.asarray(value) for i, (x, c) in enumerate(first)
                                 for name, value in (("x", x), ("c", c))})
        return {"num_params": int(sum(np.prod(v.shape) for v in flow.trainable_variables)),
                "batch_size": batch_size, "tensorflow": tf.__version__, "jit_compile": jit_compile,
                "schedule": spec["schedule"], "showers_in_file": int(len(showers)), "dtype": dtype}

    def run(mode: str, steps: int) -> dict:
        step, batches = state["steps"][mode], state["batches"][mode]
        started, cpu = time.perf_counter(), time.process_time()
        for _ in range(steps):
            loss, _ = step(*next(batches))
            float(loss)
        seconds = time.perf_counter() - started
        return {"seconds": seconds, "cpu_share": (time.process_time() - cpu) / seconds, "loss": float(loss)}

    shared.serve({"setup": setup, "run": run})


def measure(key: str, spec: dict, plan: tuple, workers: dict, options, scratch: Path, log) -> list[dict]:
    rounds, steps = plan
    git_dir = options.caloflow_git_dir if spec["reference"] == "caloflow" else options.icaloflow_git_dir
    data = options.ds1_data if spec["reference"] == "caloflow" else options.ds2_data
    batches = scratch / f"{key}_batches.npz"
    started = time.perf_counter()
    calozoo = workers["calozoo"].call("setup", key=key, name=spec["name"], part=spec["part"], data=data,
                                      modes=list(spec["modes"]), batches_out=str(batches))
    built = workers["reference"].call("setup", key=key, reference=spec["reference"], git_dir=git_dir,
                                      batches=str(batches))
    log(f"{key}: built both ({calozoo['num_params']:,} trainable parameters in calozoo, {built['num_params']:,} in "
        f"the reference; batch {calozoo['batch_size']}) in {time.perf_counter() - started:.0f} s")
    stacks = [("calozoo", mode) for mode in spec["modes"]] + [("reference", "reference")]
    before_load, before_cores, started = shared.load_average(), shared.core_times(), time.perf_counter()
    warmup = {}
    for stack, mode in stacks:  # calozoo's first steps compile
        answer = workers[stack].call("run", steps=options.warmup, **({"mode": mode} if stack == "calozoo" else {}))
        warmup[mode] = round(answer["seconds"], 2)
    per_round = {mode: [] for _, mode in stacks}
    shares = {mode: [] for _, mode in stacks}
    loads = []
    for index in range(rounds):
        for stack, mode in stacks[index % len(stacks):] + stacks[:index % len(stacks)]:
            answer = workers[stack].call("run", steps=steps, **({"mode": mode} if stack == "calozoo" else {}))
            rows_per_s = steps * calozoo["batch_size"] / answer["seconds"]
            per_round[mode].append(rows_per_s)
            shares[mode].append(answer["cpu_share"])
        loads.append(shared.load_average())
        log(f"  {key} round {index + 1}/{rounds}: " + ", ".join(f"{mode} {values[-1]:.0f}"
                                                              for mode, values in per_round.items())
            + f" rows/s; load {loads[-1]}")
    medians = {mode: statistics.median(values) for mode, values in per_round.items()}
    per_shower = spec["rows_per_shower"]
    row = {"model": spec["name"], "part": spec["part"], "key": key, "size": options.size,
           "batch": calozoo["batch_size"], "dtype": options.dtype, "jit_compile": calozoo["jit_compile"],
           "rows_per_shower": per_shower,
           "showers_per_s": {mode: round(value / per_shower, 2) for mode, value in medians.items()},
           "rows_per_s": {mode: round(value, 1) for mode, value in medians.items()},
           "ratio_to_reference": {mode: round(medians[mode] / medians["reference"], 3) for mode in spec["modes"]},
           **({"streamed_over_in_memory": round(medians["streamed"] / medians["in-memory"], 3)}
              if "streamed" in medians else {}),
           "rounds": rounds, "steps_per_round": steps, "warmup_steps": options.warmup, "warmup_s": warmup,
           "rows_per_s_per_round": {mode: [round(v, 1) for v in values] for mode, values in per_round.items()},
           "threads": options.threads, "cores": options.core, "nice": options.nice,
           "num_params": {"calozoo": calozoo["num_params"], "reference": built["num_params"]},
           "schedule": calozoo["schedule"], "showers_in_file": calozoo["showers_in_file"],
           "load_average_before": before_load, "load_average_after_each_round": loads,
           "core_busy_fraction": shared.busy_fractions(before_cores, shared.core_times()),
           # CPU time / wall time of each worker over its timed steps (1 = the whole core; more: tf.data threads)
           "cpu_share_median": {mode: round(statistics.median(values), 3) for mode, values in shares.items()},
           "wall_s": round(time.perf_counter() - started, 1),
           "versions": {"torch": built["torch"], "nflows": built["nflows"], "numpy": built["numpy"],
                        "tensorflow": calozoo["tensorflow"], "torch_threads": built["torch_threads"],
                        "reference_dtype": built["dtype"]}}
    log(f"{key}: showers/s {row['showers_per_s']}, calozoo / reference {row['ratio_to_reference']}")
    return [row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", choices=("reference", "calozoo"), help=argparse.SUPPRESS)
    parser.add_argument("--caloflow-git-dir", help="a clone of Ian-Pang/caloflow-for-calochallenge (its .git)")
    parser.add_argument("--icaloflow-git-dir", help="a clone of claudius-krause/inductive-caloflow (its .git)")
    parser.add_argument("--ds1-data", help="a DS1 photon shower file (e.g. `calozoo synthesize 1-photons -n 4000`)")
    parser.add_argument("--ds2-data", help="a DS2 shower file (e.g. `calozoo synthesize 2 -n 2000`)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per round and stack")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps of every stack first")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 steps")
    parser.add_argument("--size", choices=("paper", "tiny"), default="paper")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="of both stacks")
    parser.add_argument("--no-xla", action="store_true", help="calozoo's step without XLA")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--core", default="0")
    parser.add_argument("--nice", type=int, default=0, help="niceness of both workers (see reference_speed.py)")
    parser.add_argument("--autogroup-nice", type=int, default=None,
                        help="niceness of this session's scheduler autogroup (see reference_speed.py)")
    parser.add_argument("--reference-python", default=sys.executable)
    parser.add_argument("--calozoo-python", default=None)
    parser.add_argument("--out", default=str(OUT))
    options = parser.parse_args()
    if options.worker == "reference":
        reference_worker(options.threads, options.size, options.dtype)
        return
    if options.worker == "calozoo":
        calozoo_worker(options.threads, options.size, options.dtype, not options.no_xla)
        return
    keys = [k.strip() for k in options.models.split(",") if k.strip()]
    if sorted(set(keys) - set(MODELS)):
        raise SystemExit(f"unknown models {sorted(set(keys) - set(MODELS))}; choose from {sorted(MODELS)}")
    for key in keys:
        reference = MODELS[key]["reference"]
        if not getattr(options, f"{reference}_git_dir") or not (options.ds1_data if reference == "caloflow"
                                                                  else options.ds2_data):
            raise SystemExit(f"{key} needs --{reference}-git-dir and --{'ds1' if reference == 'caloflow' else 'ds2'}"
                             "-data")
    plans = {}
    for key in keys:
        rounds, steps = (QUICK_PLAN if options.quick else PLAN)[key]
        plans[key] = (options.rounds or rounds, options.steps or steps)
    started_at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    autogroup_nice = shared.set_autogroup_nice(options.autogroup_nice)

    def log(text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    log(f"cpu {shared.cpu_model()}, load {shared.load_average()}, plan {plans}")
    arguments = ["--size", options.size, "--dtype", options.dtype] + (["--no-xla"] if options.no_xla else [])
    workers, rows = {}, []
    try:
        workers["reference"] = shared.Worker("reference", options.reference_python, options.core, options.threads,
                                             arguments, script=__file__, nice=options.nice)
        workers["calozoo"] = shared.Worker("calozoo", options.calozoo_python or shared.default_calozoo_python(),
                                           options.core, options.threads, arguments, script=__file__,
                                           nice=options.nice)
        with tempfile.TemporaryDirectory(prefix="reference_train_speed_") as scratch:
            for key, plan in plans.items():
                rows += measure(key, MODELS[key], plan, workers, options, Path(scratch), log)
    finally:
        for worker in workers.values():
            worker.close()
    result = {
        "issue": 19, "part": 3,
        "command": " ".join(["python", "benchmarks/reference_train_speed.py", *sys.argv[1:]]),
        "started": started_at, "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "machine": {**shared.cpu_description(), "load_average_at_end": shared.load_average()},
        "scheduling": {"core": options.core, "threads": options.threads, "nice": options.nice,
                       "autogroup_nice": autogroup_nice},
        "references": {"caloflow": "Ian-Pang/caloflow-for-calochallenge@f29cd7108b16776177f89aca81073a630d358081",
                       "icaloflow": "claudius-krause/inductive-caloflow@328ae2a029b9d47d0dd57a2e908ad262b9ce9795"},
        "data": {"ds1": options.ds1_data and Path(options.ds1_data).name,
                 "ds2": options.ds2_data and Path(options.ds2_data).name},
        "protocol": ("both stacks in long-lived worker processes pinned with taskset to the same core(s), the same "
                     "thread count and dtype, the same batch size and preprocessed inputs (calozoo's, given to the "
                     "reference); warm-up steps each, then rounds alternating calozoo in-memory, calozoo streamed "
                     "and the reference step (order rotated every round); number = median over rounds of "
                     "showers (Flow-3: rows / 44) per second of optimizer steps"),
        "results": rows,
    }
    Path(options.out).write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {options.out}")
    for row in rows:
        print(f"{row['model']} {row['part']} batch {row['batch']}: showers/s {row['showers_per_s']}; "
              f"calozoo / reference {row['ratio_to_reference']}")


if __name__ == "__main__":
    main()
