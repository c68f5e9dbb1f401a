"""Writes the iCaloFlow DS2 electron reference fixtures by running the reference PyTorch code at small sizes.

Runs only in a separate environment with PyTorch and nflows 0.14 (never calozoo's own):

    /work/peers-venv/bin/python tests/reference/make_icaloflow_fixtures.py \\
        --reference-git-dir PATH/TO/inductive-caloflow/.git --showers ds2_electrons_g4_train.h5

The reference is claudius-krause/inductive-caloflow at `REFERENCE_COMMIT`: its `run.py` and `data.py` are read from
that git directory at that commit into a temporary folder and imported from there (nothing of them is copied into
this repository). The flows are built by the reference's own `build_flow` / `build_flow_student` with the arguments
its `__main__` passes (Flow-1: 45 features, 1 condition, 1 MADE hidden layer; Flow-2: 144, 2, 2 layers; Flow-3:
144, 3 + 144 + 44, 4 - 2 layers), at the sizes in `SIZES`. The inputs are `ROWS` GEANT4 showers of the given file.

What is written to `tests/reference/icaloflow_ds2/` (see `fixtures.json` for the sizes, seeds and versions):

- `{energy_flow,first_layer_flow,layer_flow}_{teacher,student}.npz` (Flow-1 has only the teacher's; the student
  reuses it): the `model_state_dict` of each reference flow, keys exactly as the reference saves them, every
  weight put on a coarse grid first (`make_caloflow_fixtures.round_parameters`) so that float16 stores it exactly.
- `cases.npz`: the showers, the noisy values the reference's data loaders drew (their noise), the flow inputs and
  conditions the reference built from them, its log-densities (float64), and inductive generation steps of its
  `generate_flow_3` with the student (previous layer, its noisy copy, the base noise, the generated layer in MeV)
  for `STEPS`.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
from make_caloflow_fixtures import (
    extract_reference,
    fixture_options,
    recorded_noise,
    round_parameters,
    state_dict_arrays,
)

REFERENCE_REPOSITORY = "claudius-krause/inductive-caloflow"
REFERENCE_COMMIT = "328ae2a029b9d47d0dd57a2e908ad262b9ce9795"
REFERENCE_FILES = ("run.py", "data.py")
OUT = Path(__file__).resolve().parent / "icaloflow_ds2"

DEPTH, LAYER_SIZE = 45, 144
SIZES = {"hidden": 8, "student_hidden": 10, "n_blocks": 2}
ROWS = (1, 2, 25)  # rows of the GEANT4 file: E_inc 1.19, 6.77 and 1.62 GeV
FLOW3_ROWS = (0, 30, 44 + 20, 88 + 0, 88 + 43)  # of the 3 x 44 Flow-3 items: layers 1, 31, 21, 1, 44
STEPS = (1, 5)  # generation steps stored: layer 1 from layer 0, layer 5 from layer 4
NOISE_GRID = 2.0**-10
SEED = 22


def write_showers(source: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The `ROWS` showers of `source` into a CaloChallenge-style file that the reference loaders read."""
    import h5py

    with h5py.File(source, "r") as handle:
        showers = np.stack([handle["showers"][i] for i in ROWS])
        incident = np.stack([handle["incident_energies"][i] for i in ROWS])
    with h5py.File(path, "w") as handle:
        handle["showers"], handle["incident_energies"] = showers, incident
    return showers, incident


def recording_noise(data):
    """Wraps the data module's `add_noise` so that every noisy array it returns is kept, in call order."""
    store, add_noise = [], data.add_noise

    def recording(array, noise_level=1e-4):
        result = add_noise(array, noise_level=noise_level)
        store.append(np.array(result, np.float64))
        return result

    data.add_noise = recording
    return store, lambda: setattr(data, "add_noise", add_noise)


def batch_of(dataset, indices, torch):
    return torch.utils.data.default_collate([dataset[i] for i in indices])


def drop_scheduler_verbose(torch) -> None:
    """The reference passes `verbose=` to its (unused here) learning-rate schedulers, an argument torch 2.13 no
    longer takes; the schedulers are built without it."""
    schedulers = torch.optim.lr_scheduler
    for name in ("OneCycleLR", "MultiStepLR"):
        original = getattr(schedulers, name)

        def quiet(*args, original=original, **kwargs):
            kwargs.pop("verbose", None)
            return original(*args, **kwargs)

        setattr(schedulers, name, quiet)


def build_flows(ref, args):
    """Teacher and student flows, built by the reference functions as its `__main__` calls them."""
    flow_1, _, _ = ref.build_flow(DEPTH, 1, args, args.hidden_size)
    flow_2, _, _ = ref.build_flow(LAYER_SIZE, 2, args, args.hidden_size, num_layers=2)
    flow_3, _, _ = ref.build_flow(LAYER_SIZE, 3 + LAYER_SIZE + 44, args, args.hidden_size,
                                  num_layers=4 - int(args.which_ds))
    student_2, _, _ = ref.build_flow_student(flow_2, LAYER_SIZE, 2, args, args.student_hidden_size, num_layers=2)
    student_3, _, _ = ref.build_flow_student(flow_3, LAYER_SIZE, 3 + LAYER_SIZE + 44, args,
                                             args.student_hidden_size, num_layers=4 - int(args.which_ds))
    flows = {"energy_flow_teacher": flow_1, "first_layer_flow_teacher": flow_2, "layer_flow_teacher": flow_3,
             "first_layer_flow_student": student_2, "layer_flow_student": student_3}
    import torch

    for flow in flows.values():
        round_parameters(flow, torch)
        flow.eval()
    return flows


def flow_3_condition(ref, batch, args, torch):
    """The Flow-3 condition exactly as the reference's `eval_flow_3` builds it."""
    import torch.nn.functional as F

    cond_inc = torch.log10(batch["energy"]) - 4.5
    cond_dep = ref.logit_trafo(batch["energy_dep"] / args.normalization)
    cond_dep_p = ref.logit_trafo(batch["energy_dep_p"] / args.normalization)
    cond_num = F.one_hot(batch["layer_number"] - 1, num_classes=44)
    return torch.vstack([cond_inc.T, cond_dep.T, cond_dep_p.T, batch["layer_p"].T, cond_num.T]).T


def density_cases(ref, data, flows, path: Path, args, torch) -> dict:
    """Flow-1/2/3 inputs from the reference loaders (with their noise) and the reference log-densities."""
    kwargs = {"with_noise": True, "noise_level": args.noise_level, "apply_logit": True, "do_normalization": True}
    cases = {}
    energy_set = data.CaloDataLayerEnergy(str(path), which_ds="2", data_length=len(ROWS), **kwargs)
    batch = batch_of(energy_set, range(len(ROWS)), torch)
    x = ref.logit_trafo(batch["energy_dep"] / args.normalization)
    c = torch.log10(batch["energy_inc"]) - 4.5
    evaluated, _ = ref.eval_flow_1([batch], flows["energy_flow_teacher"], args)
    cases.update(energy_noisy_mev=batch["energy_dep"], energy_x=x, energy_c=c,
                 energy_log_prob=flows["energy_flow_teacher"].log_prob(x, c))
    assert torch.allclose(evaluated, cases["energy_log_prob"].mean(), rtol=1e-14)

    for name, which_layer, indices, prefix in (("first_layer_flow", 0, range(len(ROWS)), "first"),
                                               ("layer_flow", -1, FLOW3_ROWS, "layer")):
        dataset = data.CaloDataShowerShape(str(path), which_ds="2", which_layer=which_layer, data_length=len(ROWS),
                                           **kwargs)
        noisy, restore = recording_noise(data)
        batch = batch_of(dataset, indices, torch)
        restore()
        # per item: energy_dep, layer, energy_dep_p, layer_p (the order of CaloDataShowerShape.__getitem__)
        items = [noisy[4 * i:4 * i + 4] for i in range(len(indices))]
        cases[f"{prefix}_noisy_energy_mev"] = np.stack([item[0] for item in items])
        cases[f"{prefix}_noisy_layer_mev"] = np.stack([item[1] for item in items])
        x = batch["layer"]
        if which_layer == 0:
            c = torch.vstack([(torch.log10(batch["energy"]) - 4.5).T,
                              (ref.logit_trafo(batch["energy_dep"] / args.normalization) / 4.0).T]).T
            evaluated, _ = ref.eval_flow_2([batch], flows[f"{name}_teacher"], args)
        else:
            c = flow_3_condition(ref, batch, args, torch)
            cases["layer_noisy_previous_energy_mev"] = np.stack([item[2] for item in items])
            cases["layer_noisy_previous_layer_mev"] = np.stack([item[3] for item in items])
            cases["layer_number"] = batch["layer_number"]
            evaluated, _ = ref.eval_flow_3([batch], flows[f"{name}_teacher"], args)
        cases.update({f"{prefix}_incident_mev": batch["energy"], f"{prefix}_x": x, f"{prefix}_c": c,
                      f"{prefix}_log_prob": flows[f"{name}_teacher"].log_prob(x, c),
                      f"{prefix}_student_log_prob": flows[f"{name}_student"].log_prob(x, c)})
        assert torch.allclose(evaluated, cases[f"{prefix}_log_prob"].mean(), rtol=1e-14), name
    return cases


def generation_cases(ref, flows, showers, incident, args, torch) -> dict:
    """The reference's `generate_flow_3` with the student (the generator) on the true layer energies and the true
    layer 0, with every noise it drew recorded; the inputs and outputs of `STEPS` are kept. (The teacher's 44
    sequential inversions take minutes in the reference; its sampling direction is covered by the DS1 fixtures.)"""
    layers = torch.tensor(showers.reshape(len(ROWS), DEPTH, LAYER_SIZE), dtype=torch.float64)
    energies = layers.sum(-1)
    cases = {"generation_incident_mev": incident, "generation_layer_energies_mev": energies}
    for role in ("student",):
        flow = flows[f"layer_flow_{role}"]
        base, noisy = [], []
        restore_base = recorded_noise(flow, base)
        add_noise = ref.add_noise

        def recording(array, noise_level=1e-4, add_noise=add_noise, noisy=noisy):
            result = add_noise(array, noise_level=noise_level)
            noisy.append(result.numpy().copy())
            return result

        ref.add_noise = recording
        generated = ref.generate_flow_3(flow, args, torch.tensor(incident), energies, layers[:, 0])
        ref.add_noise = add_noise
        restore_base()
        generated = generated.reshape(len(ROWS), DEPTH, LAYER_SIZE).numpy()
        for step in STEPS:
            cases[f"generation_{role}_step{step}_previous_mev"] = generated[:, step - 1]
            cases[f"generation_{role}_step{step}_noisy_previous_mev"] = noisy[step - 1]
            cases[f"generation_{role}_step{step}_noise"] = base[step - 1]
            cases[f"generation_{role}_step{step}_layer_mev"] = generated[:, step]
    return cases


def reference_constants(ref, data, source: str, args) -> dict:
    """Preprocessing constants as the reference behaves: logit alpha, the noise scale, the energy unit (set in its
    `__main__`, read from the source), the command-line defaults and the spline's tail bound."""
    defaults = vars(ref.parser.parse_args([]))
    assert ref.ALPHA == data.ALPHA
    normalization = re.findall(r"args\.normalization = ([0-9.e+-]+)", source)
    assert len(normalization) == 1
    block = args.built_block
    return {"alpha": ref.ALPHA, "energy_unit_mev": float(normalization[0]),
            "noise_max_of_1e5_draws": float(data.add_noise(np.zeros(100_000), args.noise_level).max()),
            "noise_level_mev": defaults["noise_level"], "threshold_mev": defaults["threshold_cut"],
            "tail_bound": float(block.tail_bound), "min_bin_width": block.min_bin_width,
            "min_bin_height": block.min_bin_height, "min_derivative": block.min_derivative,
            "num_bins": defaults["n_bins"], "hidden_size": defaults["hidden_size"],
            "student_hidden_size": defaults["student_hidden_size"], "n_blocks": defaults["n_blocks"],
            "n_hidden": defaults["n_hidden"], "dropout": defaults["dropout_probability"]}


def paper_size_parameter_counts(ref, args) -> dict:
    """Trainable parameters of the reference flows at its default (paper) sizes, built after everything else so
    that the fixtures' weights do not depend on them."""
    paper = ref.parser.parse_args([])
    paper.device, paper.results_file = args.device, args.results_file
    depth = 4 - int(paper.which_ds)
    teacher_2, _, _ = ref.build_flow(LAYER_SIZE, 2, paper, paper.hidden_size, num_layers=2)
    teacher_3, _, _ = ref.build_flow(LAYER_SIZE, 3 + LAYER_SIZE + 44, paper, paper.hidden_size, num_layers=depth)
    flows = {"energy_flow": ref.build_flow(DEPTH, 1, paper, paper.hidden_size)[0], "first_layer_flow": teacher_2,
             "layer_flow": teacher_3,
             "first_layer_flow_student": ref.build_flow_student(teacher_2, LAYER_SIZE, 2, paper, 256, num_layers=2)[0],
             "layer_flow_student": ref.build_flow_student(teacher_3, LAYER_SIZE, 3 + LAYER_SIZE + 44, paper,
                                                          paper.student_hidden_size, num_layers=depth)[0]}
    return {name: sum(p.numel() for p in flow.parameters() if p.requires_grad) for name, flow in flows.items()}


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT, lambda parser: parser.add_argument(
        "--showers", required=True, help="a DS2 electron file (showers, incident_energies)"))
    out = options.out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        sys.path.insert(0, tmp)
        import data
        import run as ref  # sets torch's default dtype to float64
        import torch

        torch.manual_seed(SEED)
        np.random.seed(SEED)
        showers, incident = write_showers(options.showers, folder / "showers.hdf5")
        args = ref.parser.parse_args(["--n_blocks", str(SIZES["n_blocks"]), "--hidden_size", str(SIZES["hidden"]),
                                      "--student_hidden_size", str(SIZES["student_hidden"])])
        args.device, args.results_file = torch.device("cpu"), str(folder / "results.txt")
        source = (folder / "run.py").read_text()
        args.normalization = float(re.findall(r"args\.normalization = ([0-9.e+-]+)", source)[0])
        ref.args = args  # the reference's functions read the module-level `args` of its __main__ in places
        drop_scheduler_verbose(torch)
        flows = build_flows(ref, args)
        args.built_block = flows["layer_flow_teacher"]._transform._transforms[0]
        with torch.no_grad():
            cases = density_cases(ref, data, flows, folder / "showers.hdf5", args, torch)
            cases.update(generation_cases(ref, flows, showers, incident, args, torch))
        constants = reference_constants(ref, data, source, args)
        constants["paper_size_parameters"] = paper_size_parameter_counts(ref, args)
    cases = {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}
    cases.update(showers_mev=showers, incident_energies_mev=incident)
    np.savez_compressed(out / "cases.npz", **cases)
    for name, flow in flows.items():
        np.savez_compressed(out / f"{name}.npz", **state_dict_arrays(flow))
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES},
            "libraries": {"torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "sizes": SIZES, "constants": constants, "seed": SEED, "rows": ROWS, "flow3_rows": FLOW3_ROWS,
            "steps": STEPS, "noise_grid": NOISE_GRID, "showers": Path(options.showers).name,
            "written_by": "tests/reference/make_icaloflow_fixtures.py"}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(f"wrote {sizes} ({sum(sizes.values())} bytes) to {out}")


if __name__ == "__main__":
    main()
