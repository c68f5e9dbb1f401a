"""Issue 21, parts 1 and 4, iCaloFlow DS2 teacher: the reference implementation side by side with calozoo.

The reference is claudius-krause/inductive-caloflow @ 328ae2a (PyTorch, nflows 0.14). This driver is run with a
PyTorch interpreter (never calozoo's): it extracts the reference's `run.py` and `data.py` at that commit from its git
mirror (as tests/reference/make_icaloflow_fixtures.py does, through benchmarks/reference_speed.py's
`import_reference_module`), imports them at run time and drives the reference's own pieces: `build_flow` (MAF-RQS
flows, their Adam and the OneCycleLR arguments), the data sets of `data.py` (float64, U[0, 5 keV) noise per item,
the layer normalisation and logit), its training step, its `eval_flow_*`, `save_flow` / `load_flow` and its
generation chain `generate_flow_1` -> `generate_flow_2` -> `generate_flow_3`. calozoo's own steps (the split, the
evaluation, the calozoo half of the throughput measurement) go through calozoo's command line or a calozoo
interpreter in a separate process. PyTorch is not a dependency of calozoo.

What it does:

* `prepare`: writes the reference's input (a CaloChallenge file, as its `dataset_2_1.hdf5`) from calozoo's training
  split, calozoo's 2 700 fitting rows first (in the order of calozoo.training.settings.fit_validation_rows(3000,
  0.1, seed 0), checked against calozoo's own function in a calozoo interpreter) and its 300 validation rows last;
  the reference's data sets read rows [0, 2 700) for training and [2 700, 3 000) for validation, so both codes fit
  and validate on the same rows.
* `train --flow 1|2|3` (one process per flow): the reference's Flow-1 (45 layer energies), Flow-2 (layer 0) or
  Flow-3 (layers 1-44, one flow shared) at calozoo's compact size (hidden 64, 4 blocks) with calozoo's batch size
  and peak learning rate, all read from the calozoo artifact's metadata (`--budget-from`, default
  artifacts/icaloflow-ds2-electron-teacher/v4/metadata.json), under a wall-clock budget for the training loop: the
  artifact's wall time of that flow (v4: 80 / 130 / 1 538 s) or `--budget`. The run recorded in
  benchmarks/icaloflow_ds2_side_by_side.json used teacher v3's (93 / 135 / 1 813 s, the same sizes, batches and
  learning rates): `git show 730e3f1:artifacts/icaloflow-ds2-electron-teacher/v3/metadata.json > v3.json`, then
  `--budget-from v3.json`. The schedule is the reference's OneCycleLR
  (three-phase, pct_start 0.4, cos, momentum cycling, final_div_factor 10) with `--lr-mode calozoo` (default)
  taking calozoo's max_lr and div_factor, `--lr-mode reference` the reference's own (Flow-1 1e-4 / 10, Flow-2 and
  Flow-3 1e-3 / 50); total_steps is epochs x steps per epoch. A probe (`--probe-steps` training steps and one
  validation on a throw-away copy of the flow) sets the epoch count, int(budget / estimated epoch time), so that
  the schedule ends inside the budget; an epoch that would end more than 2 % past the budget is not started. After
  every epoch the reference's validation log-likelihood; the best epoch is saved by the reference's `save_flow`
  (its `ds_2_flow_N.pt`, what its generation loads). One JSON line per epoch goes to
  `<work>/reference_training_log.jsonl`, the flow's record to `<work>/reference_flow_N.json`.
* `generate`: the reference's generation (`generate_flow_1/2/3`, best epochs, its 15 keV cut) at the 1 000
  held-out incident energies (the first `--limit` of them), in one float64 batch; writes a CaloChallenge file
  (`incident_energies` the held-out ones, `showers` MeV) for `calozoo evaluate`, and `reference_generation.json`.
* `throughput`: one Flow-3 training step at batch 1 080: calozoo's compact Flow-3 (float32, XLA; "as it trains":
  calozoo.training.icaloflow.FlowData's batches with fresh noise and alpha augmentation inside the compiled step;
  "model step": fixed (x, c) batches) in a calozoo interpreter, and the reference's Flow-3 (float64 "as it trains":
  its DataLoader with its per-item noise and transforms, then its step; float64 and float32 "model step" on fixed
  batches), each a long-lived worker (benchmarks/reference_speed.py's `Worker`) pinned to the same core with one
  thread, rounds alternating (the order rotated every round) after warm-up.
* `report`: writes or updates the benchmark JSON (`--out`): protocol, deviations, the per-flow training records,
  held-out table rows (`--row LABEL EVAL_DIR GENERATED_H5`, from `calozoo evaluate`'s results.json), the
  throughput and the generation time; rows and entries already in the file and not produced again are kept.

Commands (2 shared cores; the reference pinned to core 1, one thread):

    W=/tmp/icfwork; REF=/work/peers-venv/bin/python          # torch 2.13 CPU, nflows 0.14, h5py, numpy
    export PYTHONPATH=$PWD                                     # calozoo from this checkout
    calozoo data split /work/shared/geant4/ds2_electrons_g4_train.h5 --validation-fraction 0.25 --seed 0 \\
        --train $W/ds2_train.h5 --validation $W/ds2_heldout.h5
    env -u PYTHONPATH $REF benchmarks/icaloflow_ds2_side_by_side.py prepare --work $W \\
        --calozoo-python "$(command -v python3)"
    for F in 1 2 3; do env -u PYTHONPATH taskset -c 1 $REF benchmarks/icaloflow_ds2_side_by_side.py train \\
        --work $W --flow $F; done                              # 93 + 135 + 1 813 s of training, ~35 min in all
    env -u PYTHONPATH taskset -c 1 $REF benchmarks/icaloflow_ds2_side_by_side.py generate --work $W  # ~3 s/shower
    nice -n 10 calozoo evaluate $W/reference_ds2_heldout_gen.h5 $W/ds2_heldout.h5 -d 2 -m hist,cls-hgb,shape \\
        -o $W/eval_reference
    env -u PYTHONPATH $REF benchmarks/icaloflow_ds2_side_by_side.py throughput --work $W \\
        --calozoo-python "$(command -v python3)" --rounds 5 --steps 5 --warmup 2
    # calozoo's teacher at the same energies (benchmarks/fidelity_heldout.py's generation)
    nice -n 10 calozoo generate icaloflow-ds2-electron-teacher --version 4 --energies-from $W/ds2_heldout.h5 \\
        --seed 12345 -o $W/calozoo_v4_gen.h5
    nice -n 10 calozoo evaluate $W/calozoo_v4_gen.h5 $W/ds2_heldout.h5 -d 2 -m hist,cls-hgb,shape -o $W/eval_v4
    env -u PYTHONPATH $REF benchmarks/icaloflow_ds2_side_by_side.py report --work $W \\
        --row "reference teacher (same budget)" eval_reference reference_ds2_heldout_gen.h5 \\
        --row "calozoo icaloflow-ds2-electron-teacher v4" eval_v4 calozoo_v4_gen.h5
    # (the "GEANT4 floor" row: benchmarks/fidelity_heldout.json's, kept from the existing file)

A smoke run: `--budget 20` for each flow, `generate --limit 50 --out $W/gen50.h5`, `calozoo evaluate ... -m
hist,shape`, `throughput --rounds 2 --steps 2 --warmup 1`, `report --out SOMEWHERE.json`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_speed as shared  # noqa: E402 - Worker, serve, import_reference_module, thread settings
from side_by_side import check_fit_validation_rows, heldout_row, layer_flow_losses, loadavg, log_line  # noqa: E402

REPOSITORY = Path(__file__).resolve().parents[1]
GIT_DIR = "/work/.mirror/claudius-krause+inductive-caloflow/repo"
METADATA = REPOSITORY / "artifacts" / "icaloflow-ds2-electron-teacher" / "v4" / "metadata.json"
NAME = "icaloflow-ds2-electron-teacher"
SPLIT_SEED, VALIDATION_FRACTION = 0, 0.1
DEPTH, LAYER_SIZE = 45, 144
# the reference's flows as its __main__ builds them (features, context features, MADE hidden layers) and its epochs
FLOWS = {1: {"part": "energy_flow", "hidden": "energy_hidden", "features": DEPTH, "context": 1, "made_layers": 1,
             "reference_epochs": 500},
         2: {"part": "first_layer_flow", "hidden": "first_layer_hidden", "features": LAYER_SIZE, "context": 2,
             "made_layers": 2, "reference_epochs": 200},
         3: {"part": "layer_flow", "hidden": "layer_hidden", "features": LAYER_SIZE, "context": 3 + LAYER_SIZE + 44,
             "made_layers": 4 - 2, "reference_epochs": 60}}
FLOW3_ROWS_PER_SHOWER = DEPTH - 1


# ---------------------------------------------------------------------------------------------------- recipe
def recipe(metadata: str, flow: int, budget: float | None = None) -> dict:
    """Flow `flow`'s size, batch size, peak lr, div_factor and budget (the artifact's wall time unless `budget`)
    from the calozoo artifact's metadata.json."""
    with open(metadata) as f:
        meta = json.load(f)
    part = FLOWS[flow]["part"]
    training = meta["training_overrides"][part]
    return {"part": part, "hidden_size": int(meta["config_changes"][FLOWS[flow]["hidden"]]),
            "n_blocks": int(meta["config_changes"]["num_blocks"]), "batch_size": int(training["batch_size"]),
            "max_lr": float(training["schedule"]["max_lr"]), "div_factor": float(training["schedule"]["div_factor"]),
            "budget_s": round(float(budget if budget is not None else meta["training"][part]["wall_time_s"]), 1),
            "calozoo_artifact": f"{meta['name']} v{meta['version']}"}


# ---------------------------------------------------------------------------------------------------- reference
def load_reference(work: str):
    """The reference's run.py (and data.py) extracted at the pinned commit under `work` and imported (float64, as
    run.py sets it; one torch thread); returns (run module, data module, the fixture script module)."""
    shared.set_torch_threads(1)  # also puts tests/reference on sys.path
    import make_icaloflow_fixtures as fixtures

    ref = shared.import_reference_module(GIT_DIR, fixtures, "run", Path(work), "float64")
    import data

    return ref, data, fixtures


def record_schedules(torch) -> list[dict]:
    """The keyword arguments of every OneCycleLR the reference builds, kept in order; its `verbose=` (an argument
    torch 2.13 no longer takes) is dropped."""
    calls, original = [], torch.optim.lr_scheduler.OneCycleLR

    def recording(optimizer, **kwargs):
        calls.append(dict(kwargs))
        kwargs.pop("verbose", None)
        return original(optimizer, **kwargs)

    torch.optim.lr_scheduler.OneCycleLR = recording
    return calls


def reference_args(ref, spec: dict, output_dir: str):
    """The reference's argument namespace for DS2 at calozoo's size (its parser's defaults otherwise: noise 5e-3
    MeV, cut 1.5e-2 MeV, 8 bins, no dropout), with what its __main__ adds (device, normalization, results file)."""
    import torch

    os.makedirs(output_dir, exist_ok=True)
    args = ref.parser.parse_args(["--which_ds", "2", "--hidden_size", str(spec["hidden_size"]), "--n_blocks",
                                  str(spec["n_blocks"]), "--batch_size", str(spec["batch_size"]), "--output_dir",
                                  output_dir, "--no_cuda"])
    args.normalization = 6.5e4
    args.results_file = os.path.join(output_dir, args.results_file)
    args.device = torch.device("cpu")
    ref.args = args
    return args


def build(ref, args, flow: int):
    """(flow, Adam, schedule) from the reference's build_flow with the arguments its __main__ passes."""
    f = FLOWS[flow]
    return ref.build_flow(f["features"], f["context"], args, args.hidden_size, num_layers=f["made_layers"])


def loaders(data, args, flow: int, path: str, n_fit: int, n_val: int):
    """The reference's get_calo_dataloader for flow `flow` on rows [0, n_fit) / [n_fit, n_fit + n_val) of `path`
    (its own takes [0, 70 000) / [70 000, 100 000)); the preprocessing arguments of its __main__."""
    from torch.utils.data import DataLoader

    kwargs = {"with_noise": True, "noise_level": args.noise_level, "apply_logit": True, "do_normalization": True}
    if flow == 1:
        make = lambda start, length: data.CaloDataLayerEnergy(path, which_ds="2", beginning_idx=start,  # noqa: E731
                                                              data_length=length, **kwargs)
    else:
        make = lambda start, length: data.CaloDataShowerShape(path, which_ds="2",  # noqa: E731
                                                              which_layer=0 if flow == 2 else -1,
                                                              beginning_idx=start, data_length=length, **kwargs)
    return (DataLoader(make(0, n_fit), batch_size=args.batch_size, shuffle=True),
            DataLoader(make(n_fit, n_val), batch_size=args.batch_size, shuffle=False))


def flow_inputs(ref, fixtures, args, flow: int, batch):
    """(x, condition) of a batch exactly as the reference's train_eval_flow_{1,2,3} build them."""
    import torch

    if flow == 1:
        return (ref.logit_trafo(batch["energy_dep"] / args.normalization),
                torch.log10(batch["energy_inc"]) - 4.5)
    if flow == 2:
        cond_inc = torch.log10(batch["energy"]) - 4.5
        cond_dep = ref.logit_trafo(batch["energy_dep"] / args.normalization) / 4.
        return batch["layer"], torch.vstack([cond_inc.T, cond_dep.T]).T
    return batch["layer"], fixtures.flow_3_condition(ref, batch, args, torch)


def schedule_arguments(reference: dict, spec: dict, lr_mode: str, total_steps: int) -> dict:
    """The reference's OneCycleLR arguments for this flow with total_steps = `total_steps` (and, in lr_mode
    'calozoo', calozoo's max_lr and div_factor)."""
    kwargs = {k: v for k, v in reference.items() if k not in ("epochs", "steps_per_epoch", "verbose")}
    kwargs["total_steps"] = int(total_steps)
    if lr_mode == "calozoo":
        kwargs.update(max_lr=spec["max_lr"], div_factor=spec["div_factor"])
    return kwargs


def setup_torch() -> dict:
    import torch

    torch.manual_seed(0)
    np.random.seed(0)  # the reference's data sets draw their noise from numpy's global generator
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype()),
            "affinity": sorted(os.sched_getaffinity(0))}


# ---------------------------------------------------------------------------------------------------- prepare
def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def prepare(args):
    import h5py

    work = args.work
    with h5py.File(os.path.join(work, "ds2_train.h5"), "r") as f:
        energies, showers = f["incident_energies"][:], f["showers"][:]
    fit, val = check_fit_validation_rows(len(energies), VALIDATION_FRACTION, SPLIT_SEED, args.calozoo_python,
                                         str(REPOSITORY))
    rows = np.concatenate([fit, val])
    out = os.path.join(work, "ref_ds2_train.h5")
    with h5py.File(out + ".part", "w") as f:
        f.create_dataset("incident_energies", data=energies[rows])
        f.create_dataset("showers", data=showers[rows])
        f.attrs["rows"] = "calozoo fit rows (fit_validation_rows order) then its validation rows"
    os.replace(out + ".part", out)
    info = {"n_fit": len(fit), "n_validation": len(val), "validation_fraction": VALIDATION_FRACTION,
            "seed": SPLIT_SEED, "rows_checked_against": "calozoo.training.settings.fit_validation_rows",
            "sha256": {name: sha256(os.path.join(work, name)) for name in ("ds2_train.h5", "ds2_heldout.h5")}}
    with open(os.path.join(work, "reference_input.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"wrote {len(rows)} rows ({len(fit)} fit + {len(val)} validation) to {out}")


def input_rows(work: str) -> tuple[int, int]:
    with open(os.path.join(work, "reference_input.json")) as f:
        info = json.load(f)
    return info["n_fit"], info["n_validation"]


# ---------------------------------------------------------------------------------------------------- training
def probe(ref, fixtures, args, flow_no: int, flow, train_loader, test_loader, steps: int) -> dict:
    """Seconds per training step (mean of `steps` steps after the first) and of one validation pass, on a
    throw-away copy of the flow with its own optimizer."""
    import torch

    started = time.perf_counter()
    copied = copy.deepcopy(flow)
    optimizer = torch.optim.Adam(copied.parameters(), lr=1e-6)
    times = []
    for i, batch in enumerate(train_loader):
        if i == steps:
            break
        t = time.perf_counter()
        copied.train()
        x, c = flow_inputs(ref, fixtures, args, flow_no, batch)
        loss = -copied.log_prob(x, c).mean(0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - t)
    t = time.perf_counter()
    getattr(ref, f"eval_flow_{flow_no}")(test_loader, copied, args)
    eval_s = time.perf_counter() - t
    s_per_step = float(np.mean(times[1:] if len(times) > 1 else times))
    return {"probe_steps": len(times), "s_per_step": s_per_step, "eval_s": eval_s,
            "epoch_s_est": s_per_step * len(train_loader) + eval_s,
            "calibration_wall_s": time.perf_counter() - started}


def train(args):
    t_process, cpu_process = time.perf_counter(), time.process_time()
    ref, data, fixtures = load_reference(args.work)
    import torch

    calls = record_schedules(torch)
    env = setup_torch()
    spec = recipe(args.budget_from, args.flow, args.budget)
    n_fit, n_val = input_rows(args.work)
    rargs = reference_args(ref, spec, os.path.join(args.work, "ref_run"))
    t = time.perf_counter()
    train_loader, test_loader = loaders(data, rargs, args.flow, os.path.join(args.work, "ref_ds2_train.h5"),
                                        n_fit, n_val)
    data_load_s = time.perf_counter() - t
    flow, optimizer, _ = build(ref, rargs, args.flow)
    reference_schedule = {k: v for k, v in calls[-1].items() if k != "verbose"}
    n_params = sum(p.numel() for p in flow.parameters() if p.requires_grad)
    steps_per_epoch = len(train_loader)
    calibration = probe(ref, fixtures, rargs, args.flow, flow, train_loader, test_loader, args.probe_steps)
    calibration["data_load_wall_s"] = data_load_s
    epochs = max(1, int(spec["budget_s"] / calibration["epoch_s_est"]))
    kwargs = schedule_arguments(reference_schedule, spec, args.lr_mode, epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, **kwargs)
    history = run_epochs(ref, fixtures, rargs, args, flow, optimizer, schedule, train_loader, test_loader, epochs,
                         spec["budget_s"])
    record = {"flow": args.flow, "epochs": epochs, "reference_epochs": FLOWS[args.flow]["reference_epochs"],
              "epochs_reached": history["epochs_reached"], "schedule_finished": history["epochs_reached"] == epochs,
              "steps_per_epoch": steps_per_epoch, "total_steps": epochs * steps_per_epoch,
              "batch_size": spec["batch_size"], "hidden_size": spec["hidden_size"], "n_blocks": spec["n_blocks"],
              "n_params": int(n_params), "budget_s": spec["budget_s"], "budget_from": spec["calozoo_artifact"]
              if args.budget is None else "--budget", "calibration": calibration,
              **{k: v for k, v in history.items() if k != "epochs_reached"},
              "process_wall_s": time.perf_counter() - t_process, "process_cpu_s": time.process_time() - cpu_process,
              "lr_mode": args.lr_mode, "schedule": kwargs, "reference_schedule": reference_schedule,
              **env, "loadavg_end": loadavg()}
    with open(os.path.join(args.work, f"reference_flow_{args.flow}.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps({k: v for k, v in record.items() if "per_epoch" not in k}))


def run_epochs(ref, fixtures, rargs, args, flow, optimizer, schedule, train_loader, test_loader, epochs: int,
               budget_s: float) -> dict:
    """The reference's training loop (train_eval_flow_N: per-step loss, Adam step, schedule step; after every
    epoch eval_flow_N and save_flow of the best) for at most `epochs` epochs inside `budget_s`."""
    evaluate = getattr(ref, f"eval_flow_{args.flow}")
    best, best_epoch, val_curve, epoch_times, eval_times = -math.inf, 0, [], [], []
    cpu0, t_train = time.process_time(), time.perf_counter()
    log = os.path.join(args.work, "reference_training_log.jsonl")
    reached = 0
    for epoch in range(1, epochs + 1):
        mean_epoch = float(np.mean(epoch_times)) if epoch_times else 0.0
        if epoch > 1 and time.perf_counter() - t_train + mean_epoch > budget_s * 1.02:
            break
        t_epoch, train_sum, rows = time.perf_counter(), 0.0, 0
        for batch in train_loader:
            flow.train()
            x, c = flow_inputs(ref, fixtures, rargs, args.flow, batch)
            loss = -flow.log_prob(x, c).mean(0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            train_sum, rows = train_sum + loss.item() * len(x), rows + len(x)
        t = time.perf_counter()
        logp, logp_std = evaluate(test_loader, flow, rargs)
        eval_times.append(time.perf_counter() - t)
        epoch_times.append(time.perf_counter() - t_epoch)
        reached = epoch
        val_curve.append(float(logp))
        if val_curve[-1] > best:
            best, best_epoch = val_curve[-1], epoch
            ref.save_flow(flow, args.flow, rargs)
        log_line(log, {"flow": args.flow, "epoch": epoch, "of": epochs, "train_logp": round(-train_sum / rows, 4),
                       "validation_logp": round(val_curve[-1], 4), "validation_logp_std": round(float(logp_std), 3),
                       "lr": optimizer.param_groups[0]["lr"],
                       "elapsed_s": round(time.perf_counter() - t_train, 2),
                       "utc": time.strftime("%H:%M:%S", time.gmtime()), "loadavg": loadavg()})
    return {"epochs_reached": reached, "train_wall_s": time.perf_counter() - t_train,
            "train_cpu_s": time.process_time() - cpu0, "epoch_wall_s_mean": float(np.mean(epoch_times)),
            "eval_s_mean": float(np.mean(eval_times)), "validation_logp_per_epoch": [round(v, 3) for v in val_curve],
            "best_validation_logp": round(best, 3), "best_epoch": best_epoch}


# ---------------------------------------------------------------------------------------------------- generation
def generate(args):
    import h5py

    ref, _, _ = load_reference(args.work)
    import torch

    record_schedules(torch)
    env = setup_torch()
    spec = recipe(args.budget_from, 3)
    rargs = reference_args(ref, spec, os.path.join(args.work, "ref_run"))
    flows = {n: ref.load_flow(build(ref, rargs, n)[0], n, rargs) for n in FLOWS}
    with h5py.File(os.path.join(args.work, "ds2_heldout.h5"), "r") as f:
        energies = f["incident_energies"][:].reshape(-1, 1).astype(np.float64)
    if args.limit:
        energies = energies[: args.limit]
    torch.manual_seed(args.seed)
    times = {}
    t0 = time.perf_counter()
    incident, samples_1 = ref.generate_flow_1(flows[1], rargs, len(energies),
                                              torch.log10(torch.from_numpy(energies)) - 4.5)
    times["flow_1_s"] = time.perf_counter() - t0
    samples_2 = ref.generate_flow_2(flows[2], rargs, incident, samples_1)
    times["flow_2_s"] = time.perf_counter() - t0 - times["flow_1_s"]
    showers = ref.generate_flow_3(flows[3], rargs, incident, samples_1, samples_2)
    wall = time.perf_counter() - t0
    times["flow_3_s"] = wall - times["flow_1_s"] - times["flow_2_s"]
    showers = showers.numpy().reshape(len(energies), -1)
    out = args.out or os.path.join(args.work, "reference_ds2_heldout_gen.h5")
    with h5py.File(out + ".part", "w") as f:
        f.create_dataset("incident_energies", data=energies, compression="gzip")
        f.create_dataset("showers", data=showers, compression="gzip")
    os.replace(out + ".part", out)
    info = {"n_showers": len(showers), "wall_s": round(wall, 1), "s_per_shower": round(wall / len(showers), 4),
            **{k: round(v, 2) for k, v in times.items()}, "batches": 1, "seed": args.seed,
            "hits_per_shower": round(float((showers > 0).sum(axis=1).mean()), 1), "file": out, **env,
            "loadavg_end": loadavg()}
    with open(os.path.join(args.work, "reference_generation.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------------------- throughput
def reference_worker() -> None:
    """The reference's Flow-3 and its training step: float64 from its DataLoader as it trains, float64 and float32
    on fixed batches."""
    state = {}

    def setup(work: str, metadata: str) -> dict:
        ref, data, fixtures = load_reference(work)
        import torch

        calls = record_schedules(torch)
        setup_torch()
        spec = recipe(metadata, 3)
        rargs = reference_args(ref, spec, os.path.join(work, "ref_throughput"))
        n_fit, n_val = input_rows(work)
        train_loader, _ = loaders(data, rargs, 3, os.path.join(work, "ref_ds2_train.h5"), n_fit, n_val)
        flow, optimizer, _ = build(ref, rargs, 3)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, **schedule_arguments(calls[-1], spec, "calozoo",
                                                                                         100_000))
        full = [b for _, b in zip(range(4), train_loader) if len(b["layer"]) == spec["batch_size"]][:3]
        fixed = [flow_inputs(ref, fixtures, rargs, 3, b) for b in full]
        torch.set_default_dtype(torch.float32)
        flow_32 = copy.deepcopy(flow).to(torch.float32)
        torch.set_default_dtype(torch.float64)
        steps = {"float64 model step": (flow, optimizer, schedule, fixed),
                 "float32 model step": (flow_32, torch.optim.Adam(flow_32.parameters(), lr=1e-4), None,
                                        [(x.float(), c.float()) for x, c in fixed])}
        state.update(ref=ref, fixtures=fixtures, rargs=rargs, loader=train_loader, steps=steps, batches=iter(()),
                     batch_size=spec["batch_size"], torch=torch)
        return {"n_params": int(sum(p.numel() for p in flow.parameters())), "batch": spec["batch_size"],
                "torch": torch.__version__}

    def step(flow, optimizer, schedule, x, c) -> float:
        flow.train()
        loss = -flow.log_prob(x, c).mean(0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        return loss.item()

    def next_batch():
        while True:
            for batch in state["batches"]:
                if len(batch["layer"]) == state["batch_size"]:
                    return batch
            state["batches"] = iter(state["loader"])

    def run(mode: str, steps: int) -> dict:
        torch = state["torch"]
        started = time.perf_counter()
        if mode == "float64 as it trains":
            flow, optimizer, schedule, _ = state["steps"]["float64 model step"]
            for _ in range(steps):
                x, c = flow_inputs(state["ref"], state["fixtures"], state["rargs"], 3, next_batch())
                step(flow, optimizer, schedule, x, c)
        else:
            flow, optimizer, schedule, fixed = state["steps"][mode]
            torch.set_default_dtype(fixed[0][0].dtype)
            for i in range(steps):
                step(flow, optimizer, schedule, *fixed[i % len(fixed)])
            torch.set_default_dtype(torch.float64)
        return {"seconds": time.perf_counter() - started}

    shared.serve({"setup": setup, "run": run})


def calozoo_worker() -> None:
    """calozoo's compact Flow-3 (float32) and its XLA-compiled training step as `calozoo train` builds it."""
    import h5py
    import tensorflow as tf
    import tf_keras

    from calozoo.registry import create, get_entry
    from calozoo.training.icaloflow import FlowData
    from calozoo.training.likelihood import total_steps
    from calozoo.training.schedules import make_schedule
    from calozoo.training.settings import fit_validation_rows as calozoo_rows
    from calozoo.training.trainer import _batches, _make_step

    state = {}

    def setup(train_h5: str) -> dict:
        variant = get_entry(NAME).variant("compact")
        spec = dict(variant.training["layer_flow"])
        batch_size = int(spec["batch_size"])
        model = create(NAME, variant="compact")
        with h5py.File(train_h5, "r") as f:
            energies, showers = f["incident_energies"][:], f["showers"][:]
        fit, _ = calozoo_rows(len(energies), variant.training["validation_fraction"], SPLIT_SEED)
        train = FlowData(model, showers[fit], energies[fit], augment_alpha=bool(variant.training["augment_alpha"]))
        flow, arrays = model.layer_flow, train.arrays("layer_flow")
        generator = tf.random.Generator.from_seed(101)
        optimizer = tf_keras.optimizers.legacy.Adam(
            learning_rate=make_schedule(spec["schedule"], total_steps(spec, len(arrays[0]))),
            global_clipnorm=spec.get("clip_norm"))

        recipe_loss, model_loss = layer_flow_losses(flow, train, generator)

        variables = list(flow.trainable_variables)
        jit = bool(spec.get("jit_compile", False))
        fixed = []
        for i in range(3):
            pick = np.random.default_rng(i).permutation(len(arrays[0]))[:batch_size]
            fixed.append(train.inputs("layer_flow", tf.constant([1, i], tf.int64), *[a[pick] for a in arrays]))
        state.update(steps={"as it trains": _make_step(recipe_loss, variables, optimizer, None, jit_compile=jit),
                            "model step": _make_step(model_loss, variables, optimizer, None, jit_compile=jit)},
                     fixed=fixed, arrays=arrays, batch_size=batch_size, epoch=0, batches=iter(()))
        return {"n_params": int(sum(np.prod(v.shape) for v in variables)), "batch": batch_size,
                "dtype": str(model.dtype.name) if hasattr(model.dtype, "name") else str(model.dtype),
                "jit_compile": jit, "tensorflow": tf.__version__}

    def next_batch():
        while True:
            for batch in state["batches"]:
                if len(batch[0]) == state["batch_size"]:
                    return batch
            state["epoch"] += 1
            state["batches"] = _batches(state["arrays"], state["batch_size"], 0, state["epoch"])

    def run(mode: str, steps: int) -> dict:
        step = state["steps"][mode]
        started = time.perf_counter()
        for i in range(steps):
            batch = next_batch() if mode == "as it trains" else state["fixed"][i % len(state["fixed"])]
            float(step(*batch)[0])
        return {"seconds": time.perf_counter() - started}

    shared.set_tensorflow_threads(1)
    shared.serve({"setup": setup, "run": run})


THROUGHPUT_MODES = (("calozoo", "as it trains", "calozoo float32 XLA as it trains"),
                    ("calozoo", "model step", "calozoo float32 XLA model step"),
                    ("reference", "float64 as it trains", "reference float64 as it trains"),
                    ("reference", "float64 model step", "reference float64 model step"),
                    ("reference", "float32 model step", "reference float32 model step"))


def throughput(args):
    """Alternating rounds of Flow-3 training steps, calozoo and the reference, both pinned to one core."""
    core = str(args.core)
    workers = {"reference": shared.Worker("reference", sys.executable, core, 1, [], script=__file__),
               "calozoo": shared.Worker("calozoo", args.calozoo_python, core, 1, [], script=__file__)}
    try:
        built = {"reference": workers["reference"].call("setup", work=os.path.abspath(args.work),
                                                        metadata=os.path.abspath(args.budget_from)),
                 "calozoo": workers["calozoo"].call("setup",
                                                    train_h5=os.path.abspath(os.path.join(args.work,
                                                                                          "ds2_train.h5")))}
        batch = built["calozoo"]["batch"]
        warmup = {label: round(workers[stack].call("run", mode=mode, steps=args.warmup)["seconds"], 2)
                  for stack, mode, label in THROUGHPUT_MODES}
        rounds, load = {label: [] for *_, label in THROUGHPUT_MODES}, []
        for index in range(args.rounds):
            shift = index % len(THROUGHPUT_MODES)
            for stack, mode, label in THROUGHPUT_MODES[shift:] + THROUGHPUT_MODES[:shift]:
                seconds = workers[stack].call("run", mode=mode, steps=args.steps)["seconds"]
                rounds[label].append(batch * args.steps / seconds)
            load.append(loadavg())
            print(f"round {index + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rounds.items()),
                  flush=True)
    finally:
        for worker in workers.values():
            worker.close()
    medians = {label: round(statistics.median(values), 1) for label, values in rounds.items()}
    result = {"setup": {"batch": batch, "hidden": 64, "blocks": 4, "features": LAYER_SIZE,
                        "context": FLOWS[3]["context"], "steps_per_round": args.steps, "rounds": args.rounds,
                        "warmup_steps": args.warmup, "warmup_s": warmup, "core": args.core, "threads": 1,
                        "order": "rotated every round", "calozoo": built["calozoo"],
                        "reference": built["reference"], "loadavg_per_round": load},
              "rows_per_s": medians,
              "rows_per_s_rounds": {label: [round(v, 1) for v in values] for label, values in rounds.items()},
              "ratio_as_trained": round(medians["calozoo float32 XLA as it trains"]
                                        / medians["reference float64 as it trains"], 2),
              "ratio_model_step_float32": round(medians["calozoo float32 XLA model step"]
                                                / medians["reference float32 model step"], 2)}
    with open(os.path.join(args.work, "throughput.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


# ---------------------------------------------------------------------------------------------------- report
PROTOCOL = ("same {n_fit} training / {n_val} validation / {n_heldout} held-out rows (calozoo data split "
            "--validation-fraction 0.25 --seed 0, then calozoo's 10 % validation draw); same size (hidden 64, 4 "
            "blocks), same batch sizes and peak learning rates; the reference's own preprocessing (U[0, 5 keV) "
            "noise, float64); the reference got {budgets} pinned to one core while calozoo's run used the shared two "
            "cores; both generated at the {n_generated} held-out energies; both evaluated with calozoo evaluate GEN "
            "ds2_heldout.h5 -d 2 -m hist,cls-hgb,shape")


def thousands(value) -> str:
    return f"{value:,}".replace(",", " ")


def deviations(flows: dict, n_fit: int, n_val: int, generation: dict | None) -> list[str]:
    """The deviations from the reference's own defaults, from the run's records."""
    out = [f"{thousands(n_fit)} / {thousands(n_val)} rows instead of 70 000 / 30 000 (the reference's data sets "
           "built on those rows of one file in place of its get_calo_dataloader)"]
    if flows:
        ordered = [flows[n] for n in sorted(flows)]
        batches = "/".join(thousands(f["batch_size"]) for f in ordered)
        if all(f["lr_mode"] == "calozoo" for f in ordered):
            lrs = "/".join(f"{f['schedule']['max_lr']:g}" for f in ordered)
            divs = "/".join(f"{f['schedule']['div_factor']:g}" for f in ordered)
            out.append(f"calozoo's batch sizes {batches} and peak lr {lrs} with its div_factor {divs} in the "
                       "reference's OneCycleLR (its own: batch 1 000, lr 1e-4/1e-3/1e-3, div_factor 10/50/50)")
        else:
            out.append(f"calozoo's batch sizes {batches} with the reference's own learning rates")
        capped = "; ".join(f"Flow-{f['flow']} {f['epochs']} of {f['reference_epochs']}" for f in ordered)
        out.append(f"epoch counts capped to the wall budget ({capped})" + "".join(
            f"; Flow-{f['flow']} stopped after {f['epochs_reached']} of {f['epochs']} scheduled epochs (its "
            "schedule did not finish)" for f in ordered if not f["schedule_finished"]) + "".join(
            f"; Flow-{f['flow']}'s first epoch overran its budget ({f['train_wall_s']:.0f} s of {f['budget_s']:g})"
            for f in ordered if f["epochs_reached"] == 1 and f["train_wall_s"] > 1.02 * f["budget_s"]))
    out.append("OneCycleLR verbose= argument dropped (torch 2.13)")
    if generation is not None:
        n = thousands(generation["n_showers"])
        out.append(f"generation driven with the held-out energies in one float64 batch ({n} showers) in place of its "
                   "10 batches of 10 000 at random energies")
    return out


def report(args):
    """Collects the work directory's results into the benchmark JSON (--out)."""
    work = args.work

    def load(name):
        path = os.path.join(work, name)
        if not os.path.exists(path):
            return None
        with open(path) as f:
            return json.load(f)

    out = load_json(args.out)
    flows = {n: load(f"reference_flow_{n}.json") for n in FLOWS}
    flows = {n: f for n, f in flows.items() if f is not None}
    n_fit, n_val = input_rows(work)
    generation = load("reference_generation.json")
    import h5py

    with h5py.File(os.path.join(work, "ds2_heldout.h5"), "r") as f:
        n_heldout = len(f["incident_energies"])
    budgets = " / ".join(thousands(round(f["budget_s"])) for f in flows.values())
    if all(f["budget_from"] != "--budget" for f in flows.values()):
        source = next(iter(flows.values()))["budget_from"] if flows else "the artifact's metadata"
        budgets = f"the calozoo artifact's wall time per flow ({budgets} s, from {source})"
    else:
        budgets = f"a wall budget per flow of {budgets} s (--budget)"
    n_generated = thousands(generation["n_showers"] if generation else n_heldout)
    out.update({"issue": 21, "part": "1 and 4: iCaloFlow DS2 side by side with the reference code "
                "(claudius-krause/inductive-caloflow @ 328ae2a, torch " + next(
                    (f["torch"] for f in flows.values()), "2.13.0+cpu") + " CPU, nflows 0.14)",
                "protocol": PROTOCOL.format(n_fit=thousands(n_fit), n_val=thousands(n_val),
                                            n_heldout=thousands(n_heldout), budgets=budgets, n_generated=n_generated),
                "deviations_of_the_reference_run": deviations(flows, n_fit, n_val, generation)})
    training = out.setdefault("reference_training", {})
    for n, record in flows.items():
        training[f"flow_{n}"] = record
    if 3 in flows:
        training.pop("flow_3_watch", None)
    table = {label: heldout_row(os.path.join(work, directory), os.path.join(work, generated), auc_with_std=False)
             for label, directory, generated in args.row}
    if table:
        out.setdefault("heldout_table", {}).update(table)
    throughput_result = load("throughput.json")
    if throughput_result is not None:
        out["training_step_throughput_flow3"] = throughput_result
    if generation is not None:
        out["reference_generation"] = generation
        out["reference_generation_s_per_shower_one_core"] = round(generation["s_per_shower"], 1)
    with open(args.out + ".part", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(args.out + ".part", args.out)
    print(json.dumps(out.get("heldout_table", {}), indent=1))


def load_json(path: str) -> dict:
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------------- main
def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":  # started by shared.Worker: --worker STACK --threads N
        {"reference": reference_worker, "calozoo": calozoo_worker}[sys.argv[2]]()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "train", "generate", "throughput", "report"):
        p = sub.add_parser(name)
        p.add_argument("--work", default="/tmp/icfwork")
        if name in ("train", "generate", "throughput"):
            p.add_argument("--budget-from", default=str(METADATA),
                           help="the calozoo artifact's metadata.json (size, batch sizes, lr, wall times)")
        if name in ("prepare", "throughput"):
            p.add_argument("--calozoo-python", required=True, help="an interpreter with calozoo (TensorFlow)")
        if name == "train":
            p.add_argument("--flow", type=int, choices=sorted(FLOWS), required=True)
            p.add_argument("--budget", type=float, help="wall seconds of the training loop (default: the artifact's)")
            p.add_argument("--lr-mode", choices=("calozoo", "reference"), default="calozoo")
            p.add_argument("--probe-steps", type=int, default=9)
        if name == "generate":
            p.add_argument("--limit", type=int, help="only the first N held-out energies (smoke runs)")
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--out", help="default <work>/reference_ds2_heldout_gen.h5")
        if name == "throughput":
            p.add_argument("--core", type=int, default=1)
            p.add_argument("--steps", type=int, default=5)
            p.add_argument("--rounds", type=int, default=5)
            p.add_argument("--warmup", type=int, default=2)
        if name == "report":
            p.add_argument("--out", default=str(REPOSITORY / "benchmarks" / "icaloflow_ds2_side_by_side.json"))
            p.add_argument("--row", nargs=3, action="append", default=[],
                           metavar=("LABEL", "EVAL_DIR", "GENERATED_H5"), help="a held-out table row")
    args = parser.parse_args()
    {"prepare": prepare, "train": train, "generate": generate, "throughput": throughput,
     "report": report}[args.command](args)


if __name__ == "__main__":
    main()
