"""Writes the CaloGAN CaloFlow reference fixtures by running the reference PyTorch code at small sizes.

Runs only in a separate environment with PyTorch and nflows 0.14 (never calozoo's own):

    /work/peers-venv/bin/python tests/reference/make_calogan_caloflow_fixtures.py \\
        --reference-git-dir PATH/TO/AD_with_CF/.git

The original CaloFlow (v1 teacher, v2 student) is not public; its runnable descendant on the CaloGAN detector
(3 layers, 3x96 + 12x12 + 12x6 = 504 voxels) is Ian-Pang/AD_with_CF at `REFERENCE_COMMIT` (docs/calogan.md).
Its `run.py` and `data.py` are read from that git directory at that commit into a temporary folder and imported from
there (nothing of them is copied into this repository); their plotting, pandas and torchvision imports, which the
functions called here never use, are stubbed. The flows are wired as its `__main__` wires them (the same wiring as
the DS1 script, `make_caloflow_fixtures.build_flows`, with the reference's own `InversionLayer`,
`RandomPermutationLayer`, `IAFRQS` and `GuidedCompositeTransform`), at the sizes in `SIZES`. The reference is the
same for e+, gamma and pi+ (only the data file differs), so one set of fixtures serves all three.

What is written to `tests/reference/caloflow_calogan/` (see `fixtures.json` for the sizes, seeds and versions):

- `teacher.npz`, `student.npz`, `energy_flow.npz`: the `model_state_dict` of each reference flow, keys exactly as
  the reference saves them, every weight put on a coarse grid first (`make_caloflow_fixtures.round_parameters`) so
  that float16 stores it exactly.
- `cases.npz`: the energies (GeV, as CaloGAN files hold them) of three synthetic CaloGAN showers, the noisy voxels
  the reference's data loader drew from them (model units), the Flow-II input and condition its own `evaluate`
  passed to the flow, the Flow-I input and condition, the reference's inverse preprocessing of that Flow-II input
  (`transform_to_energy` with the batch's layer energies, then `save_samples_to_file`), and the reference's outputs
  in float64: MADE output, log-densities, samples from recorded noise, and the whole student generation chain to the
  showers its `save_samples_to_file` writes (MeV, clamped and thresholded). The teacher's generation chain differs
  from the student's only in Flow-II, whose samples from the same noise are compared directly.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
from make_caloflow_fixtures import (
    build_flows,
    extract_reference,
    fixture_options,
    on_grid,
    recorded_noise,
    reference_batch,
    state_dict_arrays,
    stub_unused_imports,
)

REFERENCE_REPOSITORY = "Ian-Pang/AD_with_CF"
REFERENCE_COMMIT = "6aec2569d1c14494bedfb8c0954a0c2260c58f50"
REFERENCE_FILES = ("run.py", "data.py")
OUT = Path(__file__).resolve().parent / "caloflow_calogan"

LAYER_SHAPES = [(3, 96), (12, 12), (12, 6)]  # the reference's input_dims
INCIDENT_GEV = np.array([1.5, 20.0, 97.0])
SIZES = {"teacher_hidden": 4, "student_hidden": 5, "flow_blocks": 3, "n_hidden": 1, "num_bins": 8,
         "tail_bound": 14.0, "dropout": 0.05, "energy_hidden": 8, "energy_blocks": 2, "energy_made_blocks": 2}
ROUNDING = {"keep": 0.08, "bias_keep": 0.15}  # thinner output layers than DS1's: 504 voxels, files <= 300 KB
NOISE_GRID = 2.0**-10
SEED = 23


def synthetic_showers(rng: np.random.Generator) -> np.ndarray:
    """(3, 504) MeV: sparse positive deposits (about half the voxels empty), ~0.9 E_inc in all."""
    n_voxels = sum(a * b for a, b in LAYER_SHAPES)
    deposits = rng.gamma(0.6, 1.0, size=(len(INCIDENT_GEV), n_voxels)) * (rng.random((3, n_voxels)) < 0.5)
    deposits[:, [0, 288, 432]] += 0.1  # no empty layer
    return deposits / deposits.sum(axis=1, keepdims=True) * 0.9 * 1e3 * INCIDENT_GEV[:, None]


def write_calogan_file(showers: np.ndarray, path: Path) -> None:
    """A CaloGAN file (docs/calogan.md section 1.2): `layer_k` (N, a, b) MeV, `energy` (N, 1) GeV, `overflow`."""
    import h5py

    offsets = np.cumsum([0] + [a * b for a, b in LAYER_SHAPES])
    with h5py.File(path, "w") as handle:
        for k, shape in enumerate(LAYER_SHAPES):
            handle[f"layer_{k}"] = showers[:, offsets[k]:offsets[k + 1]].reshape(-1, *shape)
        handle["energy"] = INCIDENT_GEV[:, None]
        handle["overflow"] = np.zeros((len(showers), 3))


def evaluated_inputs(ref, teacher, batch, folder: Path, torch):
    """The reference's `evaluate` on the batch, with the (x, y) it hands the flow recorded, and its mean."""
    seen, log_prob = [], teacher.log_prob

    def recording(x, y):
        seen.append((x, y))
        return log_prob(x, y)

    teacher.log_prob = recording
    mean, _ = ref.evaluate(teacher, [batch], 0, argparse.Namespace(
        results_file=str(folder / "results.txt"), device=torch.device("cpu"), n_epochs=1))
    del teacher.log_prob
    return seen[0][0], seen[0][1], mean


def generation(ref, data, model, energy_flow, energies, folder: Path, torch, tag: str) -> dict:
    """The reference's generation chain (`generate_single_with_rec`, then `save_samples_to_file`) with `model`, the
    noise of both flows recorded; the showers as the file holds them (MeV, flat), and the Flow-I layer energies."""
    energy_noise, shower_noise = [], []
    restore_energy, restore_shower = recorded_noise(energy_flow, energy_noise), recorded_noise(model, shower_noise)
    args = argparse.Namespace(device=torch.device("cpu"), dim_split=[a * b for a, b in LAYER_SHAPES],
                              log_preprocess=False)
    samples = ref.generate_single_with_rec(model, args, 1, energies, energy_flow)
    restore_energy(), restore_shower()
    path = folder / f"generated_{tag}.hdf5"
    data.save_samples_to_file(samples, energies, str(path), 0.01)
    import h5py

    with h5py.File(path, "r") as handle:
        showers = np.concatenate([handle[f"layer_{k}"][:].reshape(len(energies), -1) for k in range(3)], 1)
        saved_energy = handle["energy"][:]
    unit = ref.sample_rec_flow(_replaying(energy_flow, energy_noise[0], torch), 1, args, energies)
    return {f"{tag}_energy_noise": energy_noise[0], f"{tag}_shower_noise": shower_noise[0],
            f"{tag}_layer_energies": ref.trafo_to_energy_space(unit, energies).numpy(),
            f"{tag}_showers_mev": showers, f"{tag}_saved_energy_gev": saved_energy}


def back_to_energy(ref, data, x, layer_energies, energies, folder: Path) -> dict:
    """The reference's inverse preprocessing of the batch's own Flow-II input: `transform_to_energy` with the
    batch's layer energies, as `save_samples_to_file` writes it (MeV, clamped, thresholded)."""
    import h5py

    args = argparse.Namespace(dim_split=[a * b for a, b in LAYER_SHAPES])
    voxels = ref.transform_to_energy(x.unsqueeze(1), args, scaling=layer_energies)
    path = folder / "back_to_energy.hdf5"
    data.save_samples_to_file(voxels, energies, str(path), 0.01)
    with h5py.File(path, "r") as handle:
        return {"x_saved_mev": np.concatenate([handle[f"layer_{k}"][:].reshape(len(x), -1) for k in range(3)], 1)}


def _replaying(flow, noise, torch):
    """`flow` drawing `noise` once more (to recompute the layer energies of a recorded generation)."""
    draw = flow._distribution._sample

    def replay(num_samples, context):
        flow._distribution._sample = draw
        return torch.tensor(noise).reshape(-1, num_samples, noise.shape[-1])

    flow._distribution._sample = replay
    return flow


def reference_cases(ref, data, teacher, student, energy_flow, folder: Path, torch) -> dict:
    """Every compared quantity, computed by the reference code in float64."""
    batch, noisy_voxels, dataset = reference_batch(data, folder, "eplus", 3)
    x, y, evaluated = evaluated_inputs(ref, teacher, batch, folder, torch)
    energy = batch["energy"]
    layer_energies = torch.stack([batch[f"layer_{k}_E"] for k in range(3)], 1)
    u = ref.logit_trafo(ref.trafo_to_unit_space(torch.cat([layer_energies, energy], 1)))
    c = torch.log10(energy * 10.0)  # Flow-I's condition, as train_rec_flow and sample_rec_flow write it
    generator = torch.Generator().manual_seed(SEED)
    noise = on_grid(torch.randn(x.shape, generator=generator), NOISE_GRID)
    with torch.no_grad():
        made = teacher._transform._transforms[0].autoregressive_net(x, y)
        _, teacher_logdet = teacher._transform(x, y)
        teacher_samples, _ = teacher._transform.inverse(noise, y)
        student_samples, student_sample_logdet = student._transform.inverse(noise, y)
        cases = {
            "noisy_voxels": noisy_voxels, "x": x, "y": y, "u": u, "c": c,
            "made_output_row0": made[:1],
            "teacher_logdet": teacher_logdet, "teacher_log_prob": teacher.log_prob(x, y),
            "noise": noise, "teacher_samples": teacher_samples, "student_samples": student_samples,
            "student_sample_log_prob": student.log_prob(student_samples, y),
            "student_sample_logdet": student_sample_logdet, "student_log_prob": student.log_prob(x, y),
            "energy_flow_log_prob": energy_flow.log_prob(u, c), "reference_evaluate_mean_log_prob": evaluated,
            "energy_model_units": energy, "layer_energies": layer_energies,
        }
        energies = energy[:, 0]
        cases.update(back_to_energy(ref, data, x, layer_energies, energies, folder))
        cases.update(generation(ref, data, student, energy_flow, energies, folder, torch, "student"))
    return {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}


def reference_constants(ref, data, folder: Path, showers: np.ndarray, torch) -> dict:
    """Preprocessing constants as the reference code behaves: units, logit alpha, the u0 factor, the noise scale,
    the conditions at chosen energies, the save-time clamp, and the command-line defaults."""
    defaults = vars(ref.parser.parse_args([]))
    assert ref.ALPHA == data.ALPHA
    dataset = data.CaloDataset(str(folder), "eplus", prefix="test_")
    energies = torch.tensor([[0.1, 0.1, 0.1, 1.0]])  # three layers, then E_tot: u0 = 0.3 / f
    return {"alpha": ref.ALPHA, "u0_factor": float(0.3 / ref.trafo_to_unit_space(energies)[0, 0]),
            "noise_max_of_1e5_draws": float(data.add_noise(np.zeros(100_000)).max()),
            "energy_unit_gev": float(INCIDENT_GEV[0] / dataset.file_energy[0, 0]),
            "voxel_unit_mev": float(showers[0, 0] / dataset.file_layer_0[0, 0, 0]),
            "threshold_mev": defaults["threshold"], "tail_bound": defaults["tail_bound"],
            "num_bins": defaults["n_bins"], "hidden_size": defaults["hidden_size"],
            "student_hidden_size": defaults["student_hidden_size"], "n_blocks": defaults["n_blocks"],
            "n_hidden": defaults["n_hidden"], "dropout": defaults["dropout_probability"],
            "with_noise": defaults["with_noise"], "fully_guided": defaults["fully_guided"]}


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    out = options.out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        stub_unused_imports(("pandas", "plot_calo", "torchvision", "torchvision.transforms"))
        sys.path.insert(0, tmp)
        import data
        import run as ref  # sets torch's default dtype to float64
        import torch
        from nflows import distributions, flows, transforms

        torch.manual_seed(SEED)
        np.random.seed(SEED)
        showers = synthetic_showers(np.random.default_rng(SEED))
        write_calogan_file(showers, folder / "test_eplus.hdf5")
        teacher, student, energy_flow = build_flows(ref, transforms, distributions, flows, torch,
                                                    [a * b for a, b in LAYER_SHAPES], SIZES, **ROUNDING)
        cases = reference_cases(ref, data, teacher, student, energy_flow, folder, torch)
        constants = reference_constants(ref, data, folder, showers, torch)
    cases.update(incident_energies_gev=INCIDENT_GEV[:, None])
    np.savez_compressed(out / "cases.npz", **cases)
    for name, model in (("teacher", teacher), ("student", student), ("energy_flow", energy_flow)):
        np.savez_compressed(out / f"{name}.npz", **state_dict_arrays(model))
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES},
            "libraries": {"torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "sizes": SIZES, "rounding": ROUNDING, "constants": constants, "seed": SEED, "noise_grid": NOISE_GRID,
            "incident_energies_gev": INCIDENT_GEV.tolist(),
            "written_by": "tests/reference/make_calogan_caloflow_fixtures.py"}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


if __name__ == "__main__":
    main()
