"""Writes the CaloFlow DS1 photon reference fixtures by running the reference PyTorch code at small sizes.

Runs only in a separate environment with PyTorch and nflows 0.14 (never calozoo's own):

    python -m venv /work/peers-venv
    /work/peers-venv/bin/pip install torch nflows==0.14 h5py        # or: pip install 'calozoo[peers]' h5py
    /work/peers-venv/bin/python tests/reference/make_caloflow_fixtures.py \\
        --reference-git-dir PATH/TO/caloflow-for-calochallenge/.git

The reference is Ian-Pang/caloflow-for-calochallenge at `REFERENCE_COMMIT`: its `run_gamma_2023.py` and
`data_gamma.py` are read from that git directory at that commit into a temporary folder and imported from there
(nothing of them is copied into this repository). Their plotting and pandas imports, which the functions called
here never use, are stubbed.

What is written to `tests/reference/caloflow_ds1/` (see `fixtures.json` for the sizes, seeds and versions):

- `teacher.npz`, `student.npz`, `energy_flow.npz`: the `model_state_dict` of each reference flow, keys exactly as
  the reference saves them. Before the reference ran, every weight was put on a coarse grid (`round_parameters`) so
  that float16 stores it exactly (masks as bool, degrees and permutations as int16) and the files stay small; the
  reference computed everything below in float64 with exactly these values. The noise fed to the samplers is on a
  2^-10 grid for the same reason.
- `cases.npz`: three synthetic DS1 photon showers, the reference preprocessing of them (with its own noise), and
  the outputs of the reference code in float64 (MADE output, one MAF block both ways, log-densities, samples from
  recorded noise, and the whole student generation chain to showers in MeV).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import types
from importlib import metadata
from pathlib import Path

import numpy as np

REFERENCE_REPOSITORY = "Ian-Pang/caloflow-for-calochallenge"
REFERENCE_COMMIT = "f29cd7108b16776177f89aca81073a630d358081"
REFERENCE_FILES = ("run_gamma_2023.py", "data_gamma.py")
OUT = Path(__file__).resolve().parent / "caloflow_ds1"

LAYER_SHAPES = [(1, 8), (10, 16), (10, 19), (1, 5), (1, 5)]  # the reference's input_dims of the DS1 photons
INCIDENT_MEV = np.array([1024.0, 65536.0, 1048576.0])
SIZES = {"teacher_hidden": 8, "student_hidden": 10, "flow_blocks": 3, "n_hidden": 1, "num_bins": 8,
         "tail_bound": 14.0, "dropout": 0.05, "energy_hidden": 8, "energy_blocks": 2, "energy_made_blocks": 2}
WEIGHT_GRIDS = {"final_layer": 2.0**-4, "other": 2.0**-6}
FINAL_SCALE = 4.0
KEEP = 0.15  # the fraction of MADE output-layer weights left non-zero
NOISE_GRID = 2.0**-10
SEED = 22


def extract_reference(git_dir: str, folder: Path, commit: str = REFERENCE_COMMIT,
                      files: tuple[str, ...] = REFERENCE_FILES) -> None:
    """The reference `files` at `commit`, written into `folder` with their sub-folders (fails if the commit is
    absent)."""
    for name in files:
        text = subprocess.run(["git", "--git-dir", git_dir, "show", f"{commit}:{name}"], check=True,
                              capture_output=True, text=True).stdout
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def stub_unused_imports(names=("pandas", "plot_calo_gamma", "torchvision", "torchvision.transforms",
                                "torchvision.utils")) -> None:
    """Empty modules for the imports of the reference scripts that the called functions never use."""
    for name in names:
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)


def synthetic_showers(rng: np.random.Generator) -> np.ndarray:
    """(3, 368) float32 MeV: sparse positive deposits (about half the voxels empty), scaled to ~E_inc."""
    n_voxels = sum(a * r for a, r in LAYER_SHAPES)
    deposits = rng.gamma(0.6, 1.0, size=(len(INCIDENT_MEV), n_voxels)) * (rng.random((3, n_voxels)) < 0.5)
    deposits[:, 0] = np.maximum(deposits[:, 0], 0.1)  # no empty layer 0
    return (deposits / deposits.sum(axis=1, keepdims=True) * 0.9 * INCIDENT_MEV[:, None]).astype(np.float32)


def write_calogan_style_file(showers: np.ndarray, path: Path) -> None:
    """The `layer_k` / `energy` layout that the reference's data loader reads, from CaloChallenge-order voxels."""
    import h5py

    offsets = np.cumsum([0] + [a * r for a, r in LAYER_SHAPES])
    with h5py.File(path, "w") as handle:
        for k, (a, r) in enumerate(LAYER_SHAPES):
            handle[f"layer_{k}"] = showers[:, offsets[k]:offsets[k + 1]].reshape(-1, a, r)
        handle["energy"] = INCIDENT_MEV[:, None]


def reference_batch(data, folder: Path, particle: str = "gamma", n_layers: int = 5):
    """All showers as one batch of the reference's Flow-II dataset (`data`: its data module; noise, layer
    normalisation, logit), the noisy voxels (model units) it drew, and the dataset."""
    import torch

    noisy, add_noise = [], data.add_noise

    def recording_add_noise(layer):
        result = add_noise(layer)
        noisy.append(result.reshape(-1))
        return result

    data.add_noise = recording_add_noise
    dataset = data.CaloDataset(str(folder), particle, prefix="test_", with_noise=True, apply_logit=True,
                               **{f"transform_{k}": "L_norm" for k in range(n_layers)})
    batch = torch.utils.data.default_collate([dataset[i] for i in range(len(dataset))])
    data.add_noise = add_noise
    noisy_voxels = np.stack([np.concatenate(noisy[n_layers * i:n_layers * (i + 1)]) for i in range(len(dataset))])
    return batch, noisy_voxels, dataset


def conditions_and_inputs(batch, torch):
    """(x, y) of Flow-II and (u, c) of Flow-I from a reference batch, as the reference's evaluation builds them."""
    energy = batch["energy"]
    layer_terms = [torch.log10(batch[f"layer_{k}_E"].unsqueeze(-1) + 1e-8) - 1.0 for k in range(5)]
    y = torch.cat([torch.log10(energy * 3.0)] + layer_terms, 1)
    x = torch.cat([batch[f"layer_{k}"].reshape(len(energy), -1) for k in range(5)], 1)
    return x, y


def on_grid(values, grid: float):
    """Values rounded to multiples of `grid` (exactly representable in few bits, so the files compress)."""
    return (values / grid).round() * grid


def round_parameters(model, torch, keep: float = KEEP, bias_keep: float | None = None) -> None:
    """Every weight and bias onto a coarse grid (`WEIGHT_GRIDS`), exactly representable in float16. The MADE output
    layers are scaled up first so that the splines bend, and all but a fraction `keep` of their weights (masked or
    not) set to zero, which keeps the files small; every mask still hides non-zero raw weights. With `bias_keep`,
    all but that fraction of their biases are set to zero too (for wide flows, whose output biases dominate)."""
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "final_layer" in name:
                fraction = keep if name.endswith("weight") else bias_keep
                kept = 1.0 if fraction is None else torch.rand(parameter.shape, generator=generator) < fraction
                parameter.copy_(on_grid(parameter * FINAL_SCALE, WEIGHT_GRIDS["final_layer"]) * kept)
            else:
                parameter.copy_(on_grid(parameter, WEIGHT_GRIDS["other"]))
            assert parameter.abs().max() < 4.0, name


def build_flows(ref, transforms, distributions, flows, torch, dim_split=None, sizes=SIZES, **rounding):
    """Teacher (MAF), student (IAF, the teacher's permutations) and Flow-I, built as the reference script does.

    `dim_split`: voxels per calorimeter layer (default the DS1 photons'); the conditions are E_inc and one per layer,
    Flow-I has one feature per layer. `ref` gives the reference's `InversionLayer`, `RandomPermutationLayer`,
    `IAFRQS` and `GuidedCompositeTransform` (the same in the DS1 and the CaloGAN scripts); `rounding` goes to
    `round_parameters`."""
    import torch.nn.functional as F

    dim_split = dim_split or [a * r for a, r in LAYER_SHAPES]
    context, n_layers = 1 + len(dim_split), len(dim_split)
    spline = {"num_blocks": sizes["n_hidden"], "use_residual_blocks": False, "use_batch_norm": False,
              "dropout_probability": sizes["dropout"], "activation": F.relu, "random_mask": False,
              "num_bins": sizes["num_bins"], "tails": "linear", "tail_bound": sizes["tail_bound"],
              "min_bin_width": 1e-6, "min_bin_height": 1e-6, "min_derivative": 1e-6}
    teacher_blocks = []
    for i in range(sizes["flow_blocks"]):
        teacher_blocks.append(transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(
            **spline, features=sum(dim_split), context_features=context, hidden_features=sizes["teacher_hidden"]))
        teacher_blocks.append(ref.InversionLayer(dim_split) if i % 2 == 0 else ref.RandomPermutationLayer(dim_split))
    del teacher_blocks[-1]
    teacher = flows.Flow(transforms.CompositeTransform(teacher_blocks),
                         distributions.StandardNormal(shape=[sum(dim_split)]))
    teacher_permutations = [t._permutation for t in teacher._transform._transforms if hasattr(t, "_permutation")]
    student_blocks = []
    for i in range(sizes["flow_blocks"]):
        student_blocks.append(transforms.InverseTransform(ref.IAFRQS(
            **spline, features=sum(dim_split), context_features=context, hidden_features=sizes["student_hidden"])))
        if i < sizes["flow_blocks"] - 1:
            student_blocks.append(ref.InversionLayer(dim_split) if i % 2 == 0
                                  else transforms.Permutation(teacher_permutations[i]))
    student = flows.Flow(ref.GuidedCompositeTransform(student_blocks),
                         distributions.StandardNormal(shape=[sum(dim_split)]))
    energy_params = {**spline, "num_blocks": sizes["energy_made_blocks"], "dropout_probability": 0.0,
                     "features": n_layers, "context_features": 1, "hidden_features": sizes["energy_hidden"]}
    energy_blocks = []
    for _ in range(sizes["energy_blocks"]):
        energy_blocks.append(transforms.MaskedPiecewiseRationalQuadraticAutoregressiveTransform(**energy_params))
        energy_blocks.append(transforms.RandomPermutation(n_layers))
    energy_flow = flows.Flow(transforms.CompositeTransform(energy_blocks),
                             distributions.StandardNormal(shape=[n_layers]))
    for model in (teacher, student, energy_flow):
        round_parameters(model, torch, **rounding)
        model.eval()
    return teacher, student, energy_flow


def recorded_noise(flow, store: list):
    """Wraps the base distribution's draw so that the noise a reference sampler uses is kept (on a grid); returns a
    function that restores the original draw."""
    draw = flow._distribution._sample

    def recording(num_samples, context):
        noise = on_grid(draw(num_samples, context), NOISE_GRID)
        store.append(noise.reshape(-1, noise.shape[-1]).detach().numpy().copy())
        return noise

    flow._distribution._sample = recording
    return lambda: setattr(flow._distribution, "_sample", draw)


def student_generation(ref, data_gamma, student, energy_flow, folder: Path, torch):
    """The reference's whole student generation chain on the three incident energies, with the noise it drew."""
    energy_noise, shower_noise = [], []
    recorded_noise(energy_flow, energy_noise)
    recorded_noise(student, shower_noise)
    args = argparse.Namespace(device=torch.device("cpu"), dim_split=[a * r for a, r in LAYER_SHAPES])
    energies = torch.tensor(INCIDENT_MEV / 1e5)
    samples = ref.generate_single_with_rec(student, args, 1, energies, energy_flow)
    path = folder / "generated.hdf5"
    data_gamma.save_samples_to_file(samples.reshape(len(energies), -1), energies, str(path), 0.01)
    import h5py

    with h5py.File(path, "r") as handle:
        showers = handle["showers"][:]
    unit = ref.inverse_logit(energy_flow._transform.inverse(torch.tensor(energy_noise[0]),
                                                             torch.log10(energies * 3.0).unsqueeze(-1))[0])
    layer_energies = ref.trafo_to_energy_space(unit, energies)
    return {"generation_energy_noise": energy_noise[0], "generation_shower_noise": shower_noise[0],
            "generation_layer_energies": layer_energies.numpy(), "generation_showers_mev": showers}


def reference_cases(ref, data_gamma, teacher, student, energy_flow, folder: Path, torch) -> dict:
    """Every compared quantity, computed by the reference code in float64."""
    batch, noisy_voxels, _ = reference_batch(data_gamma, folder)
    evaluated, _ = ref.evaluate_single_with_rec(teacher, [batch], 0, argparse.Namespace(
        results_file=str(folder / "results.txt"), device=torch.device("cpu"), n_epochs=1))
    x, y = conditions_and_inputs(batch, torch)
    energy = batch["energy"]
    layer_energies = torch.stack([batch[f"layer_{k}_E"] for k in range(5)], 1)
    u = ref.logit_trafo(ref.trafo_to_unit_space(torch.cat([layer_energies, energy], 1)))
    c = torch.log10(energy * 3.0)
    generator = torch.Generator().manual_seed(SEED)
    noise = on_grid(torch.randn(x.shape, generator=generator), NOISE_GRID)
    wide = on_grid(4.0 * torch.randn(x.shape, generator=generator), NOISE_GRID)
    block = teacher._transform._transforms[0]
    with torch.no_grad():
        made = block.autoregressive_net(x, y)
        block_z, block_logdet = block(x, y)
        block_inverse, block_inverse_logdet = block.inverse(wide, y)
        teacher_z, teacher_logdet = teacher._transform(x, y)
        teacher_samples, _ = teacher._transform.inverse(noise, y)
        student_samples, student_sample_logdet = student._transform.inverse(noise, y)
        cases = {
            "noisy_voxels": noisy_voxels, "x": x, "y": y, "u": u, "c": c,
            "made_output_row0": made[:1], "block0_z": block_z, "block0_logdet": block_logdet, "wide": wide,
            "block0_inverse": block_inverse, "block0_inverse_logdet": block_inverse_logdet,
            "teacher_z": teacher_z, "teacher_logdet": teacher_logdet, "teacher_log_prob": teacher.log_prob(x, y),
            "noise": noise, "teacher_samples": teacher_samples, "student_samples": student_samples,
            "student_sample_log_prob": student.log_prob(student_samples, y),
            "student_sample_logdet": student_sample_logdet, "student_log_prob": student.log_prob(x, y),
            "energy_flow_log_prob": energy_flow.log_prob(u, c),
        }
        cases.update(student_generation(ref, data_gamma, student, energy_flow, folder, torch))
        assert torch.allclose(evaluated, cases["teacher_log_prob"].mean(), rtol=1e-14), "conditions differ"
        cases["reference_evaluate_mean_log_prob"] = evaluated
    return {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}


def reference_constants(ref, data_gamma, torch) -> dict:
    """Preprocessing constants as the reference code behaves: logit alpha, the u0 factor, the noise scale, the
    energy unit, and the command-line defaults (threshold, spline)."""
    energies = torch.tensor([[0.1, 0.1, 0.1, 0.1, 0.1, 1.0]])  # five layers, then E_inc: u0 = 0.5 / f
    defaults = vars(ref.parser.parse_args([]))
    assert ref.ALPHA == data_gamma.ALPHA
    return {"alpha": ref.ALPHA, "u0_factor": float(0.5 / ref.trafo_to_unit_space(energies)[0, 0]),
            "noise_max_of_1e5_draws": float(data_gamma.add_noise(np.zeros(100_000)).max()),
            "threshold_mev": defaults["threshold"], "tail_bound": defaults["tail_bound"],
            "num_bins": defaults["n_bins"], "hidden_size": defaults["hidden_size"], "n_blocks": defaults["n_blocks"]}


def state_dict_arrays(model) -> dict:
    """The model's state_dict as numpy arrays, stored compactly without changing a value: weights and biases as
    float16 where that is exact (other floats, such as data-dependent buffers, as they are), masks as bool, degrees
    and permutations as int16."""
    arrays = {}
    for key, value in model.state_dict().items():
        array = value.detach().numpy()
        compact = array.astype(bool if key.endswith(".mask") else np.float16 if np.issubdtype(array.dtype, np.floating)
                               else np.int16)
        if np.issubdtype(array.dtype, np.floating) and not np.array_equal(compact.astype(array.dtype), array):
            compact = array
        assert np.array_equal(compact.astype(array.dtype), array), key
        arrays[key] = compact
    return arrays


def fixture_options(doc: str, repository: str, out: Path, more=None) -> argparse.Namespace:
    """The command line of every fixture script: --reference-git-dir, the script's own options (`more(parser)`) and
    --out, a folder created here (`options.out` is a Path)."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--reference-git-dir", required=True, help=f"a clone of {repository} (its .git)")
    if more is not None:
        more(parser)
    parser.add_argument("--out", default=str(out))
    options = parser.parse_args()
    options.out = Path(options.out)
    options.out.mkdir(parents=True, exist_ok=True)
    return options


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    out = options.out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_reference(options.reference_git_dir, folder)
        stub_unused_imports()
        sys.path.insert(0, tmp)
        import data_gamma
        import run_gamma_2023 as ref  # sets torch's default dtype to float64
        import torch
        from nflows import distributions, flows, transforms

        torch.manual_seed(SEED)
        np.random.seed(SEED)
        showers = synthetic_showers(np.random.default_rng(SEED))
        write_calogan_style_file(showers, folder / "test_gamma.hdf5")
        teacher, student, energy_flow = build_flows(ref, transforms, distributions, flows, torch)
        cases = reference_cases(ref, data_gamma, teacher, student, energy_flow, folder, torch)
        constants = reference_constants(ref, data_gamma, torch)
        constants["energy_unit_mev"] = float(INCIDENT_MEV[0] / data_gamma.CaloDataset(
            str(folder), "gamma", prefix="test_").file_energy[0, 0])
    cases.update(showers_mev=showers, incident_energies_mev=INCIDENT_MEV[:, None])
    np.savez_compressed(out / "cases.npz", **cases)
    for name, model in (("teacher", teacher), ("student", student), ("energy_flow", energy_flow)):
        np.savez_compressed(out / f"{name}.npz", **state_dict_arrays(model))
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES},
            "libraries": {"torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "sizes": SIZES, "constants": constants, "seed": SEED, "weight_grids": WEIGHT_GRIDS,
            "final_layer_scale": FINAL_SCALE, "final_layer_kept": KEEP, "noise_grid": NOISE_GRID,
            "incident_energies_mev": INCIDENT_MEV.tolist(),
            "written_by": "tests/reference/make_caloflow_fixtures.py"}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


if __name__ == "__main__":
    main()
