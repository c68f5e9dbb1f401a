"""Writes the ConvL2LFlow reference fixtures by running the reference PyTorch code at small sizes.

Runs only in a separate environment with PyTorch and the reference's nflows fork (never calozoo's own):

    python -m venv /work/peers-venv-l2lfix
    /work/peers-venv-l2lfix/bin/pip install torch numpy pyyaml
    git --git-dir PATH/TO/nflows/.git archive 138f86830e161bb0095dbb5cdd51871b769ea5b7 | tar -x -C /tmp/nflows-fork
    /work/peers-venv-l2lfix/bin/pip install --no-deps /tmp/nflows-fork umnn   # the fork imports UMNN at import time
    /work/peers-venv-l2lfix/bin/python tests/reference/make_l2lflow_fixtures.py \\
        --reference-git-dir PATH/TO/ConvL2LFlow/.git

The reference is FLC-QU-hep/ConvL2LFlow at `REFERENCE_COMMIT` with its nflows fork ThorstenBuss/nflows at
`NFLOWS_COMMIT` (the commit its requirements.txt pins; the fork installs as `nflows` 0.14). The reference's `src/`
files in `REFERENCE_FILES` are read from the git directory at that commit into a temporary folder and imported from
there (nothing of them is copied into this repository); its `conf/*.yaml` are read the same way.

What is written to `tests/reference/l2lflow/` (see `fixtures.json` for the sizes, seeds and versions):

- `layer_flow.npz`, `first_layer_flow.npz`, `energy_flow.npz`: the state_dicts of a reference `ConvFlow` for layer
  `LAYER` (with the context embedding), of one for layer 0 (no embedding: the context is subsampled) and of a
  reference `MAFlow` energy flow, keys exactly as the reference saves them (`weights` of its checkpoints). Every
  weight, BatchNorm statistic, ActNorm and LU entry was first drawn at random (the identity initialisation would hide
  the spline and the conditioner) and put on a coarse grid, so that float16 stores it exactly; the MADE weights go
  through `make_caloflow_fixtures.round_parameters` as in the CaloFlow fixtures.
- `cases.npz`: inputs on a 2^-10 grid and the reference's float64 outputs: every transform of the layer flow in both
  directions (input, output, log-det), the context embedding and the first U-Net, the log-densities of both layer
  flows, a sample of each from recorded base noise, the energy flow's log-density and a sample from recorded noise,
  and the reference preprocessing chains (`conf/causal.yaml`, `conf/energy.yaml`) on fixed values.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
from make_caloflow_fixtures import extract_reference, fixture_options, on_grid, round_parameters, state_dict_arrays

REFERENCE_REPOSITORY = "FLC-QU-hep/ConvL2LFlow"
REFERENCE_COMMIT = "f7f92a5e12311313f6f91a0c847cb3afabb3f09e"
NFLOWS_REPOSITORY = "ThorstenBuss/nflows"
NFLOWS_COMMIT = "138f86830e161bb0095dbb5cdd51871b769ea5b7"
REFERENCE_FILES = ("src/flow.py", "src/torch_util.py", "src/preprocessing.py", "conf/causal.yaml",
                   "conf/energy.yaml")
OUT = Path(__file__).resolve().parent / "l2lflow"

IMAGE = (6, 8)  # (r, alpha) of the small layer images; squeeze 2 -> 4 channels of 3 x 4
LAYER = 2  # the layer flow with an embedding: min(5, 2) + 2 = 4 context channels
ROWS = 3
SIZES = {"squeeze": 2, "num_blocks": 2, "hidden": 2, "downsamples": [[3, 2], [1, 2]], "out_features_embed": 3,
         "energy_features": 45, "energy_blocks": 2, "energy_hidden": 8, "energy_num_layers": 1, "energy_num_bins": 8}
GRID = 2.0**-6
NOISE_GRID = 2.0**-10
SEED = 22


def layer_flow_conf(causal: dict) -> dict:
    """The reference's `conf/causal.yaml` flow section at the fixture's sizes (everything else as the paper's)."""
    conf = json.loads(json.dumps(causal["flow"]))
    conf.update(num_blocks=SIZES["num_blocks"], out_features_embed=SIZES["out_features_embed"])
    conf["subnet_args"].update(hidden=SIZES["hidden"], downsamples=SIZES["downsamples"])
    del conf["class"]
    return conf


def energy_flow_conf(energy: dict) -> dict:
    """The reference's `conf/energy.yaml` flow section at the fixture's sizes."""
    conf = dict(energy["flow"])
    conf.update(num_blocks=SIZES["energy_blocks"], hidden_features=SIZES["energy_hidden"],
                num_layers=SIZES["energy_num_layers"], num_bins=SIZES["energy_num_bins"])
    return conf


def randomize(model, torch, generator) -> None:
    """Every parameter and BatchNorm statistic of a ConvFlow drawn at random on the `GRID` (float16-exact): weights
    and biases U(-0.75, 0.75), BatchNorm scales and running variances U(0.5, 1.5) (positive), LU diagonals and
    ActNorm log-scales U(-0.5, 0.5). Marks the ActNorms as initialised (the reference initialises them only in
    training mode anyway)."""

    def uniform(shape, low, high):
        return on_grid(low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64), GRID)

    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(uniform(module.running_mean.shape, -0.5, 0.5))
                module.running_var.copy_(uniform(module.running_var.shape, 0.5, 1.5))
                module.weight.copy_(uniform(module.weight.shape, 0.5, 1.5))
                module.bias.copy_(uniform(module.bias.shape, -0.5, 0.5))
            elif hasattr(module, "initialized") and hasattr(module, "log_scale"):
                module.log_scale.copy_(uniform(module.log_scale.shape, -0.5, 0.5))
                module.shift.copy_(uniform(module.shift.shape, -0.5, 0.5))
                module.initialized.fill_(True)
            elif hasattr(module, "unconstrained_upper_diag"):
                for tensor in (module.lower_entries, module.upper_entries, module.unconstrained_upper_diag,
                               module.bias):
                    tensor.copy_(uniform(tensor.shape, -0.5, 0.5))
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                module.weight.copy_(uniform(module.weight.shape, -0.75, 0.75))
                module.bias.copy_(uniform(module.bias.shape, -0.75, 0.75))
    for name, parameter in model.named_parameters():
        assert torch.equal(parameter, on_grid(parameter, GRID)), name


def sample_with_noise(flow, context, noise, torch):
    """The reference's `Flow.sample` with its `torch.randn` draw replaced by `noise`."""
    import flow as flow_module

    randn = flow_module.torch.randn
    flow_module.torch.randn = lambda *shape, **kwargs: noise
    try:
        return flow.sample(context)
    finally:
        flow_module.torch.randn = randn


def layer_flow_cases(flow, prefix: str, x, context, generator, torch, per_transform: bool) -> dict:
    """Log-density, a sample from grid noise and (per_transform) every transform of `flow` both ways."""
    cases = {f"{prefix}_x": x, f"{prefix}_context": context, f"{prefix}_log_prob": flow(x, context)}
    embedded = flow.embedding_net(context)
    cases[f"{prefix}_embedded"] = embedded
    noise = on_grid(torch.randn((len(x), *flow.hidden_shape), generator=generator, dtype=torch.float64), NOISE_GRID)
    cases[f"{prefix}_noise"] = noise
    cases[f"{prefix}_sample"] = sample_with_noise(flow, context, noise, torch)
    if per_transform:
        h = x
        for k, transform in enumerate(flow.transform._transforms):
            out, logdet = transform(h, embedded)
            wide = on_grid(3.0 * torch.randn(out.shape, generator=generator, dtype=torch.float64), NOISE_GRID)
            if k == 2:  # the first coupling: some inputs beyond the tail bound 15 (the linear tails)
                wide[0, 0, 0, :2] = torch.tensor([-16.5, 15.25])
            back, back_logdet = transform.inverse(wide, embedded)
            cases.update({f"{prefix}_t{k}_in": h, f"{prefix}_t{k}_out": out, f"{prefix}_t{k}_logdet": logdet,
                          f"{prefix}_t{k}_wide": wide, f"{prefix}_t{k}_inverse": back,
                          f"{prefix}_t{k}_inverse_logdet": back_logdet})
            if hasattr(transform, "transform_net"):
                identity = h[:, transform.identity_features]
                cases[f"{prefix}_t{k}_unet"] = transform.transform_net(identity, embedded)
            h = out
        assert torch.allclose(h.flatten(1).pow(2).sum(1) * -0.5 - flow._log_z
                              + sum(cases[f"{prefix}_t{k}_logdet"] for k in range(len(flow.transform._transforms))),
                              cases[f"{prefix}_log_prob"], rtol=1e-12)
    return cases


def preprocessing_cases(preprocessing, causal: dict, energy: dict, generator, torch) -> dict:
    """The reference's transformation chains of `conf/causal.yaml` and `conf/energy.yaml` on fixed values."""
    samples = preprocessing.compose(causal["dataset"]["samples_trafo"])
    voxels = torch.tensor([[0.0, 1e-9, 1.515e-5, 1e-4, 3e-3, 0.2, 0.7, 1.3]], dtype=torch.float64).repeat(2, 1)
    voxels = voxels.reshape(2, 1, 2, 4) * torch.tensor([1.0, 2.5], dtype=torch.float64).reshape(2, 1, 1, 1)
    samples(voxels)  # sets the NormLayer's per-layer maximum (the reference does this on its training data)
    layer_max = samples.sub_modules[0].layer_max
    transformed = samples(voxels)
    generated = on_grid(6.0 * torch.rand((2, 1, 2, 4), generator=generator, dtype=torch.float64) - 3.0, NOISE_GRID)
    energies = torch.tensor([[1e-7, 1e-3, 0.5, 20.0, 63.0]], dtype=torch.float64)
    incident = torch.tensor([[1.0, 10.0, 100.0, 1000.0]], dtype=torch.float64)
    energy_samples = preprocessing.compose(energy["dataset"]["samples_trafo"])
    layer_energies = torch.tensor([[1e-6, 0.01, 1.0, 30.0, 70.0]], dtype=torch.float64)
    energy_logits = on_grid(torch.linspace(-14.0, 14.0, 9, dtype=torch.float64)[None], NOISE_GRID)
    return {"pre_voxels_gev": voxels, "pre_layer_max_gev": layer_max, "pre_transformed": transformed,
            "pre_generated": generated, "pre_generated_gev": samples.inverse(generated),
            "pre_energies_gev": energies,
            "pre_energy_channel": preprocessing.compose(causal["dataset"]["cond_trafo2"])(energies),
            "pre_incident_gev": incident,
            "pre_incident_condition": preprocessing.compose(causal["dataset"]["cond_trafo"])(incident),
            "pre_energy_incident_condition": preprocessing.compose(energy["dataset"]["cond_trafo"])(incident),
            "pre_layer_energies_gev": layer_energies, "pre_energy_x": energy_samples(layer_energies),
            "pre_energy_logits": energy_logits, "pre_energy_logits_gev": energy_samples.inverse(energy_logits)}


def reference_constants(causal: dict, energy: dict, torch) -> dict:
    """Preprocessing and architecture constants as the reference's configurations and code set them."""
    import flow as reference
    from nflows.transforms.splines import rational_quadratic as rq

    coupling_class, coupling_args = reference.get_coupling(causal["flow"]["coupling_block"])
    defaults = {name: parameter.default for name, parameter in
                __import__("inspect").signature(coupling_class.__init__).parameters.items()}
    data, flow = causal["dataset"], causal["flow"]
    return {"causal_dataset": {k: v for k, v in data.items() if k not in ("data_file", "device")},
            "energy_dataset": {k: v for k, v in energy["dataset"].items() if k not in ("data_file", "device")},
            "causal_flow": flow, "energy_flow": energy["flow"],
            "coupling_tail_bound": coupling_args["tail_bound"], "coupling_tails": coupling_args["tails"],
            "coupling_identity_init": coupling_args["enable_identity_init"],
            "coupling_num_bins": defaults["num_bins"],
            "coupling_min": [rq.DEFAULT_MIN_BIN_WIDTH, rq.DEFAULT_MIN_BIN_HEIGHT, rq.DEFAULT_MIN_DERIVATIVE],
            "energy_tail_bound": -math.log(energy["flow"]["alpha"]),
            "lu_eps": reference.transforms.OneByOneConvolution(2).eps}


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    out = options.out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "src").mkdir()
        (folder / "conf").mkdir()
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        sys.path.insert(0, str(folder / "src"))
        import flow as reference
        import preprocessing
        import torch
        import yaml

        torch.set_default_dtype(torch.float64)
        torch.manual_seed(SEED)
        generator = torch.Generator().manual_seed(SEED)
        causal = yaml.safe_load((folder / "conf/causal.yaml").read_text())
        energy = yaml.safe_load((folder / "conf/energy.yaml").read_text())
        data_dim = (1, *IMAGE)
        layer_flow = reference.ConvFlow(data_dim, LAYER, layer_flow_conf(causal))
        first_layer_flow = reference.ConvFlow(data_dim, 0, layer_flow_conf(causal))
        energy_flow = reference.MAFlow((SIZES["energy_features"],), energy_flow_conf(energy))
        for model in (layer_flow, first_layer_flow):
            randomize(model, torch, generator)
        round_parameters(energy_flow, torch)
        flows = {"layer_flow": layer_flow, "first_layer_flow": first_layer_flow, "energy_flow": energy_flow}
        for model in flows.values():
            model.eval()
        cases = {}
        with torch.no_grad():
            for prefix, model, channels in (("layer", layer_flow, min(5, LAYER) + 2), ("first", first_layer_flow, 2)):
                x = on_grid(torch.rand((ROWS, *data_dim), generator=generator) * 9.0 - 4.5, NOISE_GRID)
                context = on_grid(torch.randn((ROWS, channels, *IMAGE), generator=generator), NOISE_GRID)
                cases.update(layer_flow_cases(model, prefix, x, context, generator, torch, prefix == "layer"))
            energies = torch.rand((ROWS, SIZES["energy_features"]), generator=generator) * 5.0
            energies[0, :3] = 0.0
            x = preprocessing.compose(energy["dataset"]["samples_trafo"])(energies + 1e-6)
            condition = preprocessing.compose(energy["dataset"]["cond_trafo"])(
                torch.tensor([[2.0], [50.0], [800.0]]))
            noise = on_grid(torch.randn((ROWS, SIZES["energy_features"]), generator=generator), NOISE_GRID)
            cases.update(energy_x=x, energy_c=condition, energy_log_prob=energy_flow(x, condition),
                         energy_noise=noise, energy_sample=sample_with_noise(energy_flow, condition, noise, torch))
            cases.update(preprocessing_cases(preprocessing, causal, energy, generator, torch))
        constants = reference_constants(causal, energy, torch)
    cases = {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}
    np.savez_compressed(out / "cases.npz", **cases)
    for name, model in flows.items():
        np.savez_compressed(out / f"{name}.npz", **state_dict_arrays(model))
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES,
                          "nflows_repository": NFLOWS_REPOSITORY, "nflows_commit": NFLOWS_COMMIT},
            "libraries": {"torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "image": IMAGE, "layer": LAYER, "rows": ROWS, "sizes": SIZES, "constants": constants, "seed": SEED,
            "weight_grid": GRID, "noise_grid": NOISE_GRID, "written_by": "tests/reference/make_l2lflow_fixtures.py"}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    sizes = {p.name: p.stat().st_size for p in sorted(out.iterdir())}
    print(f"wrote {sizes} ({sum(sizes.values())} bytes) to {out}")


if __name__ == "__main__":
    main()
