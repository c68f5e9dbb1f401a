"""Issue 21, parts 1 and 4, Convolutional L2LFlows DS2: the reference implementation side by side with calozoo.

The reference is FLC-QU-hep/ConvL2LFlow @ f7f92a5 (PyTorch) with its nflows fork ThorstenBuss/nflows @ 138f868.
This driver is run with a PyTorch interpreter (never calozoo's): it extracts both at their commits, imports the
reference's own modules (`src/flow.py`, `src/data.py`, `src/config.py`, `src/generator.py`) at run time and drives
them; calozoo's own steps (the split, the evaluation, the calozoo half of the throughput measurement) go through
calozoo's command line or a calozoo interpreter in a separate process. PyTorch is not a dependency of calozoo.

What it does:

* `prepare`: writes the reference's input format (`<r>x<alpha>/energy` in GeV, `layers` (N, 45, 9, 16) in MeV,
  `layer_e` in GeV above the 1.515e-5 GeV cut, as the reference's scripts/convert_challenge.py and
  scripts/calc_layer_e.py do) from calozoo's training split, with calozoo's 2 700 fitting rows first (in the order of
  calozoo.training.settings.fit_validation_rows(3000, 0.1, seed 0)) and its 300 validation rows last: the reference
  always validates on the last tenth of its file, so both codes fit and validate on the same rows.
* `energy` / `layers`: trains the reference's energy flow (MAFlow) and its 45 causal layer flows (ConvFlow) at
  calozoo's compact size, each under a wall-clock budget (calozoo v3's wall time: 255 s and 3 164 s, the latter
  split evenly over the 45 flows, building, data loading and a short step-time probe included). The training step
  is the reference's (`src/train.py` Trainer.fit: Adam, -log p mean, global-norm clipping, OneCycleLR per step);
  the epoch count is set from the probe so the schedule ends inside the budget, and an epoch that would overrun
  the budget is not started. One JSON line per epoch goes to `<work>/reference_training_log.jsonl`.
* `generate`: the reference's Generator (energy flow at its best validation epoch, layer flows as trained at the
  end, `*_final.pt`, as the reference's generator loads them; veto 2.6; its `renormalize` post-processing) at the
  1 000 held-out incident energies; writes a CaloChallenge file (`incident_energies` MeV, `showers` MeV in the
  challenge's layer x alpha x r order) for `calozoo evaluate`.
* `throughput`: one layer-flow training step at batch 512, calozoo's compact shared layer flow (float32, XLA, run
  in a calozoo interpreter) and the reference's layer flow 10 (float32, as it trains), each in its own worker
  process pinned to the same single core, alternating rounds in one run.

Commands (2 shared cores; the reference pinned to core 1, one thread):

    W=/tmp/l2lwork; REF=/work/peers-venv/bin/python          # torch 2.13 CPU, h5py, numpy, pyyaml, matplotlib
    mkdir -p /tmp/tspA && ln -sfn $PWD/tools /tmp/tspA/calozoo_tools   # calozoo from this checkout
    export PYTHONPATH=/tmp/tspA:$PWD
    calozoo data split /work/shared/geant4/ds2_electrons_g4_train.h5 --validation-fraction 0.25 --seed 0 \\
        --train $W/ds2_train.h5 --validation $W/ds2_heldout.h5
    env -u PYTHONPATH $REF benchmarks/l2lflow_ds2_side_by_side.py prepare --work $W
    env -u PYTHONPATH taskset -c 1 $REF benchmarks/l2lflow_ds2_side_by_side.py energy --work $W --budget 255
    env -u PYTHONPATH taskset -c 1 $REF benchmarks/l2lflow_ds2_side_by_side.py layers --work $W --budget 3164
    env -u PYTHONPATH taskset -c 1 $REF benchmarks/l2lflow_ds2_side_by_side.py generate --work $W
    nice -n 10 calozoo evaluate $W/reference_ds2_heldout_gen.h5 $W/ds2_heldout.h5 -d 2 -m hist,cls-hgb,shape \\
        -o $W/eval_reference
    env -u PYTHONPATH $REF benchmarks/l2lflow_ds2_side_by_side.py throughput --work $W \\
        --calozoo-python "$(command -v python3)" --calozoo-path /tmp/tspA:$PWD --rounds 5 --steps 10 --warmup 3
    # calozoo v3 at the same energies (the generation of benchmarks/fidelity_heldout.json's row; cls-hgb from there)
    nice -n 10 calozoo generate l2lflow-ds2-electron --energies-from $W/ds2_heldout.h5 --seed 12345 \\
        -o $W/calozoo_v3_gen.h5
    nice -n 10 calozoo evaluate $W/calozoo_v3_gen.h5 $W/ds2_heldout.h5 -d 2 -m hist,shape \\
        -o $W/eval_calozoo_v3_histshape
    env -u PYTHONPATH $REF benchmarks/l2lflow_ds2_side_by_side.py report --work $W \\
        --row "reference (same budget)" eval_reference reference_ds2_heldout_gen.h5
    # (the calozoo and GEANT4-floor rows and the "why" section of the JSON were filled in from the runs above and
    # benchmarks/l2lflow_ds2_side_by_side_probes.py)

The reference's `src/` modules import one another by bare name and its nflows fork must shadow any installed
nflows, so both extracted trees go to the front of sys.path (the venv's own nflows 0.14 stays installed).
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import math
import os
import subprocess
import sys
import tarfile
import time
import types

import numpy as np
from side_by_side import fit_validation_rows, heldout_row, loadavg, log_line

REFERENCE = ("/work/.mirror/FLC-QU-hep+ConvL2LFlow/repo", "f7f92a5e12311313f6f91a0c847cb3afabb3f09e")
NFLOWS_FORK = ("/work/.mirror/ThorstenBuss+nflows/repo", "138f86830e161bb0095dbb5cdd51871b769ea5b7")
N_LAYERS, N_R, N_ALPHA = 45, 9, 16
CUT_GEV = 1.515e-5
SPLIT_SEED, VALIDATION_FRACTION = 0, 0.1
# calozoo compact (zoo_configs/l2lflow-ds2-electron.yaml, variant compact; artifact v3)
ENERGY = {"batch_size": 256, "max_lr": 3e-3, "div_factor": 10.0}
LAYERS = {"batch_size": 512, "max_lr": 2e-3, "div_factor": 25.0, "clip_norm": 100.0}


def extract(git_dir: str, commit: str, dest: str) -> str:
    """`git archive` of `commit` unpacked under `dest` (once)."""
    marker = os.path.join(dest, ".commit")
    if os.path.exists(marker) and open(marker).read().strip() == commit:
        return dest
    os.makedirs(dest, exist_ok=True)
    blob = subprocess.run(["git", "--git-dir", git_dir, "archive", commit], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest)
    with open(marker, "w") as f:
        f.write(commit + "\n")
    return dest


def import_reference(work: str):
    """Puts the extracted reference `src/` and the nflows fork first on sys.path; returns the reference root."""
    ref = extract(*REFERENCE, os.path.join(work, "ConvL2LFlow"))
    fork = extract(*NFLOWS_FORK, os.path.join(work, "nflows_fork"))
    sys.path[:0] = [os.path.join(ref, "src"), fork]
    # src/generator.py imports src/postprocessing.py (scipy, for the optional `flow1d` spline, not used here):
    if "postprocessing" not in sys.modules:
        stub = types.ModuleType("postprocessing")
        stub.Postprocessor = type("Postprocessor", (), {})
        sys.modules["postprocessing"] = stub
    import nflows
    assert nflows.__file__.startswith(fork), nflows.__file__
    return ref


# ---------------------------------------------------------------------------------------------------- configs
def shower_conf(work: str, epochs: int = 1) -> dict:
    """The reference's conf/causal.yaml (DS3) at calozoo's compact size, with DS2's geometry as calozoo adapts it
    (9 radial bins are odd: squeeze (1, 2) and U-Net down-sampling (3, 2), (3, 4) instead of 2 and (3, 5), (3, 5))."""
    return {
        "run_name": "shower", "result_path": os.path.join(work, "ref_shower"),
        "dataset": {
            "class": "ShowerDataset", "data_file": os.path.join(work, "ref_ds2_train.h5"),
            "noise_mode": "uniform", "noise_mean": 5.0e-7,
            "extra_noise_mode": "log_normal", "extra_noise_mean": -6.0, "extra_noise_std": 0.2,
            "apply_cut_depos_energy": True, "energy_threshold": CUT_GEV,
            "samples_trafo": [["NormLayer", 1.0e-6], ["Clamp", 0.0, 1.0], ["Log", 10.0, 1.0e-7],
                              ["Affine", 1.0 / 7.0, 1], ["LogIt", 1.0e-2]],
            "cond_trafo": [["Log", 10.0, 1.0e-6], ["Affine", 2.0, -3.0]],
            "cond_trafo2": [["Log", 10.0, 1.0e-6], ["Affine", 1.0, 1.0]],
            "device": "cpu", "random_shift": True},
        "dataloader": {"batch_size": LAYERS["batch_size"], "pin_memory": False},
        "flow": {"class": "ConvFlow", "squeeze": [1, 2], "num_blocks": 2, "num_layers_cond": 5,
                 "out_features_embed": 8, "coupling_block": "rational_quadratic", "use_act_norm": True,
                 "use_one_by_ones": True,
                 "subnet_args": {"hidden": 8, "cyclic_padding": True, "downsamples": [[3, 2], [3, 4]],
                                 "identity_init": True}},
        "trainer": {"learning_rate": LAYERS["max_lr"], "num_epochs": epochs, "scheduler": "OneCycle",
                    "grad_clip": LAYERS["clip_norm"], "weight_decay": 0.0},
        "postprocess": {"renormalize": True},
    }


def energy_conf(work: str, epochs: int = 1) -> dict:
    """The reference's conf/energy.yaml at calozoo's compact size (4 MADE blocks, hidden 32) and DS2 energy scale."""
    return {
        "run_name": "energy", "result_path": os.path.join(work, "ref_energy"),
        "dataset": {
            "class": "EnergyDataset", "data_file": os.path.join(work, "ref_ds2_train.h5"),
            "noise_mode": "gaussian", "noise_mean": 1.0e-6, "noise_std": 2.0e-7,
            "samples_trafo": [["Affine", 1.0 / 65.0], ["Clamp", 0.0, 1.0], ["LogIt", 1.0e-6]],
            "cond_trafo": [["Log", 10.0, 1.0e-6], ["Affine", 2.0, -3.0]],
            "device": "cpu"},
        "dataloader": {"batch_size": ENERGY["batch_size"], "pin_memory": False},
        "flow": {"class": "MAFlow", "num_blocks": 4, "num_bins": 8, "num_layers": 1, "permutation": "random",
                 "block": "MADE", "context_features_trafo": 1, "hidden_features": 32, "min_bin_height": 1.0e-6,
                 "min_bin_width": 1.0e-6, "min_derivative": 1.0e-6, "dropout": 0.0, "use_embedding_net": False,
                 "use_residual_blocks": False, "alpha": 1.0e-6},
        "trainer": {"learning_rate": ENERGY["max_lr"], "num_epochs": epochs, "scheduler": "OneCycle"},
    }


def write_conf(conf: dict) -> str:
    import yaml
    os.makedirs(os.path.join(conf["result_path"], "flows"), exist_ok=True)
    path = os.path.join(conf["result_path"], "conf.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(conf, f, sort_keys=False)
    return path


# ---------------------------------------------------------------------------------------------------- prepare
def prepare(args):
    import h5py
    work = args.work
    with h5py.File(os.path.join(work, "ds2_train.h5"), "r") as f:
        energies = f["incident_energies"][:].reshape(-1, 1)  # MeV
        showers = f["showers"][:]
    fit, val = fit_validation_rows(len(energies), VALIDATION_FRACTION, SPLIT_SEED)
    rows = np.concatenate([fit, val])
    # challenge order (layer, alpha, r) -> the reference's (layer, r, alpha): convert_challenge.py swaps the last axes
    layers = showers[rows].reshape(-1, N_LAYERS, N_ALPHA, N_R).swapaxes(-2, -1)
    gev = layers.astype(np.float64) / 1e3
    layer_e = np.where(gev < CUT_GEV, 0.0, gev).sum(axis=(2, 3))
    with h5py.File(os.path.join(work, "ref_ds2_train.h5"), "w") as out:
        key = f"{N_R}x{N_ALPHA}"
        out.create_dataset(key + "/energy", data=energies[rows] / 1e3)
        out.create_dataset(key + "/layers", data=layers)
        out.create_dataset(key + "/layer_e", data=layer_e)
        out.attrs["rows"] = "calozoo fit rows (2 700, fit_validation_rows order) then its 300 validation rows"
    print(f"wrote {len(rows)} rows ({len(fit)} fit + {len(val)} validation) to {work}/ref_ds2_train.h5")


# ---------------------------------------------------------------------------------------------------- training
def train_one(work: str, conf: dict, layer, budget_s: float, spec: dict, started: float) -> dict:
    """Trains one reference flow with the reference's step under a wall budget measured from `started`."""
    import torch
    from config import Config
    from torch.nn.utils import clip_grad_norm_

    conf_path = write_conf(conf)
    cfg = Config(conf_path)
    flow = cfg.get_flow(layer)
    train_loader, val_loader = cfg.get_loaders(layer)
    n_params = sum(p.numel() for p in flow.parameters() if p.requires_grad)
    steps_per_epoch = len(train_loader)
    grad_clip = conf["trainer"].get("grad_clip")

    def step(model, optimizer, batch, scheduler=None):
        nll = -model(batch["samples"], batch["context"])
        loss = torch.mean(nll)
        optimizer.zero_grad()
        loss.backward()
        if grad_clip:
            clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        return torch.sum(nll).item()

    def validate(model):
        model.eval()
        total = 0.0
        with torch.no_grad():
            for batch in val_loader:
                total += torch.sum(-model(batch["samples"], batch["context"])).item()
        model.train()
        return total / len(val_loader.dataset)

    # step-time probe on a throw-away copy (the real flow's ActNorms still initialise on its own first batch)
    t_probe = time.perf_counter()
    probe = copy.deepcopy(flow)
    probe.train()
    probe_opt = torch.optim.Adam(probe.parameters(), lr=1e-6)
    probe_steps = min(3, steps_per_epoch)
    times = []
    for i, batch in enumerate(train_loader):
        if i == probe_steps:
            break
        t = time.perf_counter()
        step(probe, probe_opt, batch)
        times.append(time.perf_counter() - t)
    s_per_step = float(np.mean(times[1:] if len(times) > 1 else times))
    t = time.perf_counter()
    validate(probe)
    eval_s = time.perf_counter() - t
    del probe, probe_opt
    probe_s = time.perf_counter() - t_probe
    epoch_est = s_per_step * steps_per_epoch + eval_s
    left = budget_s - (time.perf_counter() - started)
    epochs = max(1, int(left / epoch_est))

    optimizer = torch.optim.Adam(flow.parameters(), lr=spec["max_lr"], betas=(0.9, 0.999))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=spec["max_lr"],
                                                    total_steps=epochs * steps_per_epoch,
                                                    div_factor=spec["div_factor"])
    best, best_state, best_epoch, val_curve, train_curve = math.inf, None, 0, [], []
    cpu0, t_train = time.process_time(), time.perf_counter()
    epoch_times = []
    reached = 0
    flow.train()
    for epoch in range(1, epochs + 1):
        elapsed = time.perf_counter() - started
        mean_epoch = float(np.mean(epoch_times)) if epoch_times else epoch_est
        if epoch > 1 and elapsed + mean_epoch > budget_s * 1.02:
            break
        t_epoch = time.perf_counter()
        train_sum = sum(step(flow, optimizer, batch, scheduler) for batch in train_loader)
        val = validate(flow)
        epoch_times.append(time.perf_counter() - t_epoch)
        reached = epoch
        train_curve.append(train_sum / len(train_loader.dataset))
        val_curve.append(val)
        if val < best:
            best, best_epoch = val, epoch
            best_state = copy.deepcopy(flow.state_dict())
        log_line(os.path.join(work, "reference_training_log.jsonl"),
                 {"flow": "energy" if layer is None else int(layer), "epoch": epoch, "of": epochs,
                  "train_nll": round(train_curve[-1], 4), "validation_nll": round(val, 4),
                  "lr": optimizer.param_groups[0]["lr"], "elapsed_s": round(time.perf_counter() - started, 2),
                  "utc": time.strftime("%H:%M:%S", time.gmtime()), "loadavg": loadavg()})
    name = "flow" if layer is None else f"flow{layer:02d}"
    flow.save(os.path.join(conf["result_path"], "flows", f"{name}_final.pt"))
    final_state = copy.deepcopy(flow.state_dict())
    flow.load_state_dict(best_state)
    flow.save(os.path.join(conf["result_path"], "flows", f"{name}.pt"))
    flow.load_state_dict(final_state)
    return {"flow": "energy" if layer is None else int(layer), "n_params": int(n_params),
            "batch_size": conf["dataloader"]["batch_size"], "steps_per_epoch": steps_per_epoch,
            "epochs_scheduled": epochs, "epochs_reached": reached,
            "schedule_finished": reached == epochs, "budget_s": round(budget_s, 2),
            "probe": {"steps": probe_steps, "s_per_step": round(s_per_step, 4), "eval_s": round(eval_s, 4),
                      "probe_wall_s": round(probe_s, 2)},
            "train_wall_s": round(time.perf_counter() - t_train, 2),
            "train_cpu_s": round(time.process_time() - cpu0, 2),
            "flow_wall_s": round(time.perf_counter() - started, 2),
            "epoch_wall_s_mean": round(float(np.mean(epoch_times)), 3),
            "validation_nll_per_epoch": [round(v, 3) for v in val_curve],
            "train_nll_per_epoch": [round(v, 3) for v in train_curve],
            "best_validation_nll": round(best, 4), "best_epoch": best_epoch,
            "schedule": {"name": "torch OneCycleLR", "max_lr": spec["max_lr"], "div_factor": spec["div_factor"],
                         "other": "PyTorch defaults (pct_start 0.3, cos, final_div_factor 1e4, momentum cycling)"},
            "loadavg_end": loadavg()}


def setup_torch():
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    np.random.seed(0)
    return {"torch": torch.__version__, "threads": torch.get_num_threads(), "dtype": str(torch.get_default_dtype()),
            "affinity": sorted(os.sched_getaffinity(0))}


def train_energy(args):
    import_reference(args.work)
    env = setup_torch()
    started = time.perf_counter()
    result = train_one(args.work, energy_conf(args.work), None, args.budget, ENERGY, started)
    result.update(env)
    with open(os.path.join(args.work, "reference_energy.json"), "w") as f:
        json.dump(result, f, indent=1)


def train_layers(args):
    import_reference(args.work)
    env = setup_torch()
    per_flow = args.budget / N_LAYERS
    results = []
    t0 = time.perf_counter()
    for layer in range(args.start, args.stop):
        started = time.perf_counter()
        results.append(train_one(args.work, shower_conf(args.work), layer, per_flow, LAYERS, started))
        with open(os.path.join(args.work, f"reference_layers_{args.start:02d}.json"), "w") as f:
            json.dump({"per_flow_budget_s": per_flow, "wall_s": round(time.perf_counter() - t0, 2),
                       **env, "flows": results}, f, indent=1)


# ---------------------------------------------------------------------------------------------------- generation
def generate(args):
    import h5py
    import torch
    import_reference(args.work)
    env = setup_torch()
    import generator as reference_generator

    with h5py.File(os.path.join(args.work, "ds2_heldout.h5"), "r") as f:
        energies_mev = f["incident_energies"][:].reshape(-1, 1)
    torch.manual_seed(args.seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        gen = reference_generator.Generator(os.path.join(args.work, "ref_shower"),
                                            os.path.join(args.work, "ref_energy"), veto=2.6)
        context = torch.from_numpy(energies_mev / 1e3).to(torch.get_default_dtype())
        samples = reference_generator.generate(gen, context, batch_size=args.batch_size, device="cpu")
    wall = time.perf_counter() - t0
    showers = samples.numpy().astype(np.float64) * 1e3  # GeV -> MeV, (N, 45, r, alpha)
    showers = showers.swapaxes(-2, -1).reshape(len(showers), -1).astype(np.float32)
    out = os.path.join(args.work, "reference_ds2_heldout_gen.h5")
    with h5py.File(out, "w") as f:
        f.create_dataset("incident_energies", data=energies_mev)
        f.create_dataset("showers", data=showers, compression="gzip")
    info = {"n_showers": len(showers), "wall_s": round(wall, 1), "s_per_shower": round(wall / len(showers), 4),
            "hits_per_shower_above_cut": float(np.mean(np.sum(showers > CUT_GEV * 1e3, axis=1))),
            "batch_size": args.batch_size, "seed": args.seed, **env, "loadavg_end": loadavg()}
    with open(os.path.join(args.work, "reference_generation.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------------------- throughput
REFERENCE_WORKER = r"""
import json, sys, time
sys.path[:0] = [sys.argv[1], sys.argv[2]]
import numpy as np, torch, yaml
from torch.nn.utils import clip_grad_norm_
torch.set_num_threads(1); torch.manual_seed(0)
from config import Config
cfg = Config(sys.argv[3]); layer = int(sys.argv[4])
flow = cfg.get_flow(layer); train_loader, _ = cfg.get_loaders(layer)
opt = torch.optim.Adam(flow.parameters(), lr=1e-4)
B = cfg.conf_loader["batch_size"]
batches = [b for _, b in zip(range(4), train_loader) if len(b["samples"]) == B]
def model_step(b):
    nll = -flow(b["samples"], b["context"]); loss = torch.mean(nll)
    opt.zero_grad(); loss.backward(); clip_grad_norm_(flow.parameters(), 100.0); opt.step()
print(json.dumps({"ready": True, "n_params": sum(p.numel() for p in flow.parameters()),
                  "batch": int(len(batches[0]["samples"]))}), flush=True)
for line in sys.stdin:
    n = int(line)
    t = time.perf_counter()  # as it trains: the reference's data loader (noise, shift, transforms) + step
    it = iter(train_loader); done = 0
    while done < n:
        try: b = next(it)
        except StopIteration: it = iter(train_loader); continue
        if len(b["samples"]) == B: model_step(b); done += 1
    as_trained = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n): model_step(batches[i % len(batches)])
    model = time.perf_counter() - t
    print(json.dumps({"as_trained_s": as_trained, "model_step_s": model}), flush=True)
"""


def throughput(args):
    """Alternating rounds of N layer-flow training steps, calozoo and the reference, both pinned to one core."""
    ref = import_reference(args.work)
    conf_path = write_conf(shower_conf(args.work))
    fork = os.path.join(args.work, "nflows_fork")
    core = str(args.core)
    env_ref = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env_ref.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ref_proc = subprocess.Popen(["taskset", "-c", core, sys.executable, "-c", REFERENCE_WORKER,
                                 os.path.join(ref, "src"), fork, conf_path, str(args.layer)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env_ref)
    env_zoo = dict(os.environ, PYTHONPATH=args.calozoo_path, OMP_NUM_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2",
                   TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
    zoo_proc = subprocess.Popen(["taskset", "-c", core, args.calozoo_python,
                                 os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                              "l2lflow_ds2_step_worker.py"),
                                 os.path.join(args.work, "ds2_train.h5"), str(args.layer)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env_zoo)

    def read(proc):
        while True:
            line = proc.stdout.readline()
            if not line:
                raise RuntimeError("worker ended")
            if line.startswith("{"):
                return json.loads(line)

    info = {"reference": read(ref_proc), "calozoo": read(zoo_proc)}
    for proc in (ref_proc, zoo_proc):  # warm-up (XLA compilation, allocator)
        proc.stdin.write(f"{args.warmup}\n")
        proc.stdin.flush()
        read(proc)
    rounds = {"reference": [], "calozoo": []}
    load = []
    for _ in range(args.rounds):
        for name, proc in (("calozoo", zoo_proc), ("reference", ref_proc)):
            proc.stdin.write(f"{args.steps}\n")
            proc.stdin.flush()
            rounds[name].append(read(proc))
        load.append(loadavg())
    for proc in (ref_proc, zoo_proc):
        proc.stdin.close()
        proc.wait()
    batch = info["calozoo"]["batch"]
    summary = {}
    for name in rounds:
        for key in ("as_trained_s", "model_step_s"):
            per_round = [batch * args.steps / r[key] for r in rounds[name]]
            summary[f"{name} {key[:-2]}"] = {"rows_per_s_median": round(float(np.median(per_round)), 1),
                                            "rows_per_s_rounds": [round(x, 1) for x in per_round]}
    result = {"setup": {"batch": batch, "steps_per_round": args.steps, "rounds": args.rounds,
                        "warmup_steps": args.warmup, "core": args.core, "reference_layer_flow": args.layer,
                        "calozoo_n_params": info["calozoo"]["n_params"],
                        "reference_n_params": info["reference"]["n_params"], "loadavg_per_round": load},
              "rows_per_s": summary,
              "ratio_as_trained": round(summary["calozoo as_trained"]["rows_per_s_median"]
                                        / summary["reference as_trained"]["rows_per_s_median"], 2),
              "ratio_model_step": round(summary["calozoo model_step"]["rows_per_s_median"]
                                        / summary["reference model_step"]["rows_per_s_median"], 2)}
    with open(os.path.join(args.work, "throughput.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))


# ---------------------------------------------------------------------------------------------------- report
def report(args):
    """Collects the work directory's results into the benchmark JSON (--out)."""
    work = args.work
    load = lambda name: json.load(open(os.path.join(work, name)))  # noqa: E731
    energy = load("reference_energy.json")
    layers = load("reference_layers_00.json")
    flows = layers["flows"]
    out = json.load(open(args.out)) if os.path.exists(args.out) else {}
    out["reference_training"] = {
        "energy_flow": energy,
        "layer_flows": {
            "per_flow_budget_s": round(layers["per_flow_budget_s"], 2), "wall_s": layers["wall_s"],
            "n_params_per_flow": [f["n_params"] for f in flows],
            "n_params_total": int(sum(f["n_params"] for f in flows)),
            "epochs_scheduled": [f["epochs_scheduled"] for f in flows],
            "epochs_reached": [f["epochs_reached"] for f in flows],
            "steps_total": int(sum(f["epochs_reached"] * f["steps_per_epoch"] for f in flows)),
            "train_cpu_s_total": round(sum(f["train_cpu_s"] for f in flows), 1),
            "best_validation_nll": [f["best_validation_nll"] for f in flows],
            "final_validation_nll": [f["validation_nll_per_epoch"][-1] for f in flows],
            "mean_over_layers_final_validation_nll": round(
                float(np.mean([f["validation_nll_per_epoch"][-1] for f in flows])), 3),
            "mean_over_layers_best_validation_nll": round(
                float(np.mean([f["best_validation_nll"] for f in flows])), 3),
            "loadavg_end_per_flow": [f["loadavg_end"] for f in flows],
            "torch": layers["torch"], "threads": layers["threads"], "dtype": layers["dtype"],
            "affinity": layers["affinity"],
            "flows": flows}}
    out["reference_generation"] = load("reference_generation.json")
    table = {}
    for label, directory, generated in args.row:
        table[label] = heldout_row(os.path.join(work, directory), os.path.join(work, generated))
    if table:
        out.setdefault("heldout_table", {}).update(table)
    if os.path.exists(os.path.join(work, "throughput.json")):
        out["training_step_throughput_layer_flow"] = load("throughput.json")
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(out.get("heldout_table", {}), indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("prepare", "energy", "layers", "generate", "throughput", "report"):
        p = sub.add_parser(name)
        p.add_argument("--work", default="/tmp/l2lwork")
        if name in ("energy", "layers"):
            p.add_argument("--budget", type=float, required=True, help="wall seconds (layers: for all 45 flows)")
        if name == "layers":
            p.add_argument("--start", type=int, default=0)
            p.add_argument("--stop", type=int, default=N_LAYERS)
        if name == "generate":
            p.add_argument("--batch-size", type=int, default=1000)
            p.add_argument("--seed", type=int, default=0)
        if name == "throughput":
            p.add_argument("--calozoo-python", required=True)
            p.add_argument("--calozoo-path", required=True)
            p.add_argument("--layer", type=int, default=10)
            p.add_argument("--core", type=int, default=1)
            p.add_argument("--steps", type=int, default=10)
            p.add_argument("--rounds", type=int, default=5)
            p.add_argument("--warmup", type=int, default=3)
        if name == "report":
            p.add_argument("--out", default="benchmarks/l2lflow_ds2_side_by_side.json")
            p.add_argument("--row", nargs=3, action="append", default=[],
                           metavar=("LABEL", "EVAL_DIR", "GENERATED_H5"), help="a held-out table row")
    args = parser.parse_args()
    {"prepare": prepare, "energy": train_energy, "layers": train_layers, "generate": generate,
     "throughput": throughput, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
