"""Writes the CaloPointFlow II (DS2) reference fixtures by running the reference PyTorch code at small sizes.

Runs only in a separate environment with PyTorch and zuko 1.1.0 (never calozoo's own):

    python -m venv /work/peers-venv-cpf
    /work/peers-venv-cpf/bin/pip install torch zuko==1.1.0 omegaconf h5py     # or: pip install 'calozoo[peers]' h5py
    /work/peers-venv-cpf/bin/python tests/reference/make_calopointflow_fixtures.py \\
        --reference-git-dir PATH/TO/CaloPointFlow/.git

The reference is simonschnake/CaloPointFlow at `REFERENCE_COMMIT`: the files of its package `calopointflow/` named in
`REFERENCE_FILES` are read from that git directory at that commit into a temporary folder and imported from there
(nothing of them is copied into this repository). The whole reference `CaloPointFlow` module (model II: DeepSetFlow
point flow, CDF dequantisation) is built from a tiny configuration (`CONFIG`) on the real DS2 geometry, in float64
(torch's default dtype is set first, so every parameter and buffer is float64).

Three of its imports are not installed here and are replaced by small stand-ins (`install_stand_ins`), which the
functions called below use only as follows:

- `torch_scatter.scatter`: sums and means over a point index (`scatter_sum_or_mean`, pure torch, the same results
  as torch_scatter's for the 1-d and (points, features) inputs the reference passes);
- `pytorch_lightning`: `LightningModule` is an `nn.Module` with a `hparams` dict and no-op `save_hyperparameters`
  and `log` (only the training loop uses the rest); `LightningDataModule` is a bare class;
- `torchvision.datasets.utils`: download helpers of `data.py` that converting showers to points never calls.

What is written to `tests/reference/calopointflow_ds2/` (see `fixtures.json` for the sizes, seeds and versions):

- `model.npz`: the reference module's `state_dict`, keys exactly as the reference saves them. Before anything ran,
  every parameter was put on a 2^-6 grid (`make_caloflow_fixtures.round_parameters`; the last layer of each spline
  hypernetwork scaled by `HYPER_SCALE` first so that the splines bend), so float16 stores it exactly (masks as bool,
  integer buffers as int16). The preprocessing statistics (`STATISTICS`, measured on the fixture showers in the
  reference's "epoch 0" mode, then frozen) are stored as float64.
- `cases.npz`: three synthetic DS2 showers, the reference's point clouds of them, the uniform noise its
  preprocessing drew, its preprocessing outputs, and its float64 outputs of the encoder, the latent flow (log-density,
  sample from recorded noise), the first DeepSet coupling (both directions and log-dets), the point flow
  (log-density, sample from recorded noise) and the decoding of the sampled points, of the preprocessed points and
  of points beyond the probit's eps (`edge_points`).
"""

from __future__ import annotations

import inspect
import json
import sys
import tempfile
import types
from importlib import metadata
from pathlib import Path

import numpy as np
from make_caloflow_fixtures import extract_reference, fixture_options, on_grid, round_parameters, state_dict_arrays

REFERENCE_REPOSITORY = "simonschnake/CaloPointFlow"
REFERENCE_COMMIT = "6fca03b65b3f7f92debc29438a61a580035107fc"
REFERENCE_FILES = tuple(f"calopointflow/{name}" for name in (
    "__init__.py", "model.py", "data.py",
    "modules/__init__.py", "modules/encoder.py", "modules/deep_sets.py", "modules/deepset_flow.py",
    "modules/neural_spline_coupling_flow.py",
    "freezables/__init__.py", "freezables/freeze_module.py", "freezables/freezable.py", "freezables/normalize.py",
    "freezables/dequantization.py", "freezables/min_max_scale.py",
    "utils/__init__.py", "utils/load.py", "utils/nested.py", "utils/scatter.py", "utils/transform.py"))
OUT = Path(__file__).resolve().parent / "calopointflow_ds2"

BINNING = {"z_bins": 45, "alpha_bins": 16, "r_bins": 9}  # DS2
CONFIG = {  # the keys of the reference's d2_II.yaml, at tiny sizes
    "point_dim": 3, "latent_dim": 4, "conditional_dim": 2, "deepset_flow": True, "cdf_dequantization": True,
    "shift_min_energy": False, "dataset": {"binning": BINNING},
    "point_flow": {"bins": 8, "transforms": 3, "randmask": True, "hidden_features": [8, 8],
                   "point_net_dims": [6, 8, 8], "reduce_net_dims": [8, 6, 5], "reduce": "mean"},
    "latent_flow": {"bins": 8, "transforms": 2, "randmask": True, "hidden_features": [8, 8]},
    "conditional_flow": {"bins": 4, "transforms": 1, "randperm": True, "hidden_features": [4]},
    "encoder": {"point_layers": [6, 8], "latent_layers": [8, 6]},
}
INCIDENT_MEV = np.array([2048.0, 65536.0, 524288.0])
HITS = (9, 14, 20)
HYPER_SCALE = 4.0
NOISE_GRID = 2.0**-10
SEED = 22
# the preprocessing buffers (measured on data, not on a grid); `_freezables.k.` repeats them under a second name
STATISTICS = ("dequantize_coords.", "min_max_scale_", "normalize_", "_freezables.")


def scatter_sum_or_mean(src, index, dim=-1, reduce="sum"):
    """torch_scatter.scatter for reduce "sum" / "mean" with a 1-d index along `dim` (out size index.max() + 1; a
    mean divides by the count clamped to 1, as torch_scatter does)."""
    import torch

    dim = dim % src.dim()
    shape = list(src.shape)
    shape[dim] = int(index.max()) + 1
    total = torch.zeros(shape, dtype=src.dtype).index_add_(dim, index, src)
    if reduce == "sum":
        return total
    if reduce != "mean":
        raise NotImplementedError(reduce)
    count = torch.zeros(shape[dim], dtype=src.dtype).index_add_(0, index, torch.ones_like(index, dtype=src.dtype))
    view = [1] * len(shape)
    view[dim] = -1
    return total / count.clamp(min=1).view(view)


def install_stand_ins(lightning: bool = True) -> None:
    """The module stand-ins described in the module docstring (`lightning=False`: all but pytorch_lightning)."""
    import torch

    scatter = types.ModuleType("torch_scatter")
    scatter.scatter = scatter_sum_or_mean
    vision, datasets, vision_utils = (types.ModuleType(name) for name in (
        "torchvision", "torchvision.datasets", "torchvision.datasets.utils"))
    for name in ("calculate_md5", "check_integrity", "download_url", "verify_str_arg"):
        setattr(vision_utils, name, None)
    vision.datasets, datasets.utils = datasets, vision_utils
    sys.modules.update({"torch_scatter": scatter, "torchvision": vision, "torchvision.datasets": datasets,
                        "torchvision.datasets.utils": vision_utils})
    if not lightning:
        return

    class LightningModule(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()
            self.hparams = {}

        def save_hyperparameters(self, *args, **kwargs):
            pass

        def log(self, *args, **kwargs):
            pass

    lightning = types.ModuleType("pytorch_lightning")
    lightning.LightningModule, lightning.LightningDataModule = LightningModule, type("LightningDataModule", (), {})
    utilities, types_module = types.ModuleType("pytorch_lightning.utilities"), types.ModuleType(
        "pytorch_lightning.utilities.types")
    types_module.STEP_OUTPUT = object
    lightning.utilities, utilities.types = utilities, types_module
    sys.modules.update({"pytorch_lightning": lightning, "pytorch_lightning.utilities": utilities,
                        "pytorch_lightning.utilities.types": types_module})


def synthetic_showers(rng: np.random.Generator) -> np.ndarray:
    """(3, 6480) float32 MeV: `HITS` deposits at distinct random voxels and two more in the third shower that share a
    (z, r) cell, summing to ~0.9 E_inc. No hit in the first and last layer or the last radial bin, so the CDF
    dequantisation has empty bins at its ends."""
    z, _, r = np.unravel_index(np.arange(6480), (BINNING["z_bins"], BINNING["alpha_bins"], BINNING["r_bins"]))
    allowed = np.flatnonzero((z > 0) & (z < BINNING["z_bins"] - 1) & (r < BINNING["r_bins"] - 1))
    showers = np.zeros((len(HITS), len(z)))
    for row, hits in enumerate(HITS):
        voxels = rng.choice(allowed, hits, replace=False)
        showers[row, voxels] = rng.gamma(0.6, 1.0, hits) + 1e-3
    showers[2, [10 * 144 + 3 * 9 + 4, 10 * 144 + 7 * 9 + 4]] = [0.5, 0.25]  # z 10, alpha 3 and 7, r 4
    return (showers / showers.sum(axis=1, keepdims=True) * 0.9 * INCIDENT_MEV[:, None]).astype(np.float32)


def recording_rand_like(torch, store: list):
    """Wraps torch.rand_like so that every uniform draw of the reference preprocessing is kept; returns the
    function that restores it."""
    rand_like = torch.rand_like

    def recording(*args, **kwargs):
        draw = rand_like(*args, **kwargs)
        store.append(draw.detach().numpy().copy())
        return draw

    torch.rand_like = recording
    return lambda: setattr(torch, "rand_like", rand_like)


def build_model(model_module, torch):
    """The reference module at `CONFIG`, parameters on the grid, in eval mode."""
    from omegaconf import OmegaConf

    torch.manual_seed(SEED)
    model = model_module.CaloPointFlow(OmegaConf.create(CONFIG))
    with torch.no_grad():
        for name, module in model.named_modules():
            if name.endswith(".hyper"):
                last = [m for m in module if hasattr(m, "weight")][-1]  # zuko.nn.Linear or MaskedLinear
                last.weight.mul_(HYPER_SCALE)
                last.bias.mul_(HYPER_SCALE)
    round_parameters(model, torch)
    return model.eval()


def preprocess(model, batch, torch) -> dict:
    """The reference preprocessing of one batch, as its `_step` does it, in float64 (the point values and incident
    energies are passed as float64; the reference itself casts nnz and the dequantised coordinates to float32)."""
    coords, vals, nnz, e_in = batch
    idx = torch.repeat_interleave(torch.arange(len(nnz)), nnz)
    e_sum = scatter_sum_or_mean(vals, idx)  # the stand-in of the reference's torch_scatter.scatter
    vals = vals / torch.repeat_interleave(e_sum, nnz, dim=0)
    return {"points": model.construct_points(coords, vals), "e_in_hat": model.transform_e_in(e_in),
            "conditional": model.construct_conditional(nnz, e_sum, e_in), "idx": idx, "fractions": vals}


def reference_cases(model, data_module, showers, torch) -> tuple[dict, dict]:
    """Every compared quantity, computed by the reference code; and the raw-statistics checks."""
    coords, vals, nnz, idx = data_module.CaloPointCloudDataset.to_point_clouds(None, showers, INCIDENT_MEV[:, None])
    assert np.array_equal(idx, np.arange(len(showers)))
    batch = (torch.from_numpy(coords), torch.from_numpy(vals.astype(np.float64)), torch.from_numpy(nnz),
             torch.from_numpy(INCIDENT_MEV[:, None]))
    preprocess(model, batch, torch)  # "epoch 0": the freezables measure the batch
    for freezable in model._freezables:
        freezable.freeze()
    uniforms = []
    restore = recording_rand_like(torch, uniforms)
    inputs = preprocess(model, batch, torch)
    restore()
    assert [u.shape for u in uniforms] == [(len(vals),), (len(vals),), (len(nnz),)], [u.shape for u in uniforms]
    points, idx, nnz_t = inputs["points"], inputs["idx"], batch[2]
    generator = torch.Generator().manual_seed(SEED)

    def noise(*shape, scale=1.0):
        return on_grid(scale * torch.randn(shape, generator=generator, dtype=torch.float64), NOISE_GRID)

    # the reference's CDFDequantization.forward (cdf[k] + pdf[k] u) in float64; its own writes into a float32 tensor
    zr = model.coords[batch[0].squeeze(1)][:, [0, 2]]
    y_dequantised = torch.stack([model.dequantize_coords.cdf[i][zr[:, i]] + model.dequantize_coords.pdf[i][zr[:, i]]
                                 * torch.from_numpy(uniforms[i]).double() for i in range(2)], dim=-1)
    utils = sys.modules["calopointflow.utils"]
    with torch.no_grad():
        mu, log_var = model.encoder(points, idx)
        latent_eps = noise(len(nnz_t), CONFIG["latent_dim"])
        latent = latent_eps * torch.exp(0.5 * log_var) + mu
        c = torch.cat([inputs["e_in_hat"], inputs["conditional"]], dim=1)
        latent_flow = model.latent_flow(c)
        latent_noise = noise(len(nnz_t), CONFIG["latent_dim"])
        latent_sample, latent_sample_ladj = latent_flow.transform.inv.call_and_ladj(latent_noise)
        point_context = torch.repeat_interleave(torch.cat([c, latent], dim=1), nnz_t, dim=0)
        point_flow = model.point_flow(idx, nnz_t, point_context)
        coupling = point_flow.transform.transforms[0]
        coupling_y, coupling_ladj = coupling.call_and_ladj(points)
        wide = noise(len(points), 3, scale=3.0)
        coupling_inverse, coupling_inverse_ladj = coupling.inv.call_and_ladj(wide)
        point_noise = noise(len(points), 3)
        point_sample, point_sample_ladj = point_flow.transform.inv.call_and_ladj(point_noise)
        decoded_coords, decoded_fractions = model.deconstruct_points(point_sample)
        decoded_input = model.deconstruct_points(points)
        edge_points = torch.tensor([[-6.0, 6.0, 0.0], [6.0, -6.0, 0.5], [-4.76, 4.76, -9.0], [4.76, -4.76, 9.0],
                                    [-4.7, 4.7, 1.0], [4.7, -4.7, -1.0]])  # probit eps: p clamped to 0 or 1
        decoded_edges = model.deconstruct_points(edge_points)
        cases = {
            "showers_mev": showers, "incident_energies_mev": INCIDENT_MEV[:, None], "coords": coords,
            "vals": vals, "nnz": nnz, "uniform_coordinates": np.stack(uniforms[:2], -1),
            "uniform_nnz": uniforms[2], "fractions": inputs["fractions"], "points": points,
            "dequantised_unit": y_dequantised, "probit_of_dequantised_unit": utils.normal_quantile(y_dequantised),
            "conditional": inputs["conditional"], "e_in_hat": inputs["e_in_hat"], "mu": mu, "log_var": log_var,
            "latent_eps": latent_eps, "latent": latent, "latent_context": c,
            "latent_log_prob": latent_flow.log_prob(latent), "latent_noise": latent_noise,
            "latent_sample": latent_sample, "latent_sample_ladj": latent_sample_ladj,
            "point_context": point_context, "coupling0_y": coupling_y, "coupling0_ladj": coupling_ladj,
            "wide": wide, "coupling0_inverse": coupling_inverse, "coupling0_inverse_ladj": coupling_inverse_ladj,
            "point_log_prob": point_flow.log_prob(points), "point_noise": point_noise, "point_sample": point_sample,
            "point_sample_ladj": point_sample_ladj, "decoded_coords": decoded_coords,
            "decoded_fractions": decoded_fractions, "decoded_input_coords": decoded_input[0],
            "decoded_input_fractions": decoded_input[1], "edge_points": edge_points,
            "decoded_edge_coords": decoded_edges[0], "decoded_edge_fractions": decoded_edges[1],
            "point_log_prob_shower_mean": scatter_sum_or_mean(point_flow.log_prob(points), idx,
                                                              reduce="mean"),
        }
    return {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}


def reference_constants(model, torch) -> dict:
    """The preprocessing and spline constants as the reference code has them (function defaults and buffers)."""
    utils = sys.modules["calopointflow.utils"]
    from zuko.transforms import MonotonicRQSTransform

    rqs = inspect.signature(MonotonicRQSTransform.__init__).parameters
    quantile_eps = {name: inspect.signature(getattr(utils, name)).parameters["eps"].default
                    for name in ("logistic_quantile", "logistic_cdf", "normal_quantile", "normal_cdf")}
    return {"quantile_eps": quantile_eps, "rqs_bound": rqs["bound"].default, "rqs_slope": rqs["slope"].default,
            "cdf_dequantisation_dtype": str(model.dequantize_coords(torch.zeros(1, 2, dtype=torch.long)).dtype),
            "shift_min_energy_mev": 0.5e-3 / 0.033, "entropy_constant": 5.675754132818691}


def paper_size_parameters(model_module, torch) -> dict:
    """Trainable parameters per part of the reference module at its d2_II sizes (the yaml values, typed here)."""
    from omegaconf import OmegaConf

    d2_ii = {**CONFIG, "latent_dim": 128,
             "point_flow": {"bins": 8, "transforms": 12, "randmask": True, "hidden_features": [128, 128, 128],
                            "point_net_dims": [64, 128, 512], "reduce_net_dims": [512, 256, 128], "reduce": "mean"},
             "latent_flow": {"bins": 8, "transforms": 8, "randmask": True, "hidden_features": [1024] * 3},
             "conditional_flow": {"bins": 12, "transforms": 12, "randperm": True, "hidden_features": [128] * 3},
             "encoder": {"point_layers": [64, 128, 1024], "latent_layers": [1024, 512, 512]}}
    model = model_module.CaloPointFlow(OmegaConf.create(d2_ii))
    counts = {part: sum(p.numel() for p in getattr(model, part).parameters())
              for part in ("encoder", "conditional_flow", "latent_flow", "point_flow")}
    counts["deepset_point_net"] = sum(p.numel() for p in model.point_flow.transform.transforms[0].deep_set.point_net
                                      .parameters())
    return counts


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    out = options.out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        import torch

        torch.set_default_dtype(torch.float64)
        install_stand_ins()
        sys.path.insert(0, tmp)
        import calopointflow.data as data_module
        import calopointflow.model as model_module

        model = build_model(model_module, torch)
        showers = synthetic_showers(np.random.default_rng(SEED))
        cases = reference_cases(model, data_module, showers, torch)
        constants = reference_constants(model, torch)
        constants["paper_size_parameters"] = paper_size_parameters(model_module, torch)
    np.savez_compressed(out / "cases.npz", **cases)
    state = model.state_dict()
    weights = types.SimpleNamespace(state_dict=lambda: {k: v for k, v in state.items() if not k.startswith(STATISTICS)})
    statistics = {k: v.numpy() for k, v in state.items() if k.startswith(STATISTICS)}
    np.savez_compressed(out / "model.npz", **state_dict_arrays(weights), **statistics)
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES},
            "libraries": {"torch": torch.__version__, "zuko": metadata.version("zuko"),
                          "omegaconf": metadata.version("omegaconf"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "config": CONFIG, "constants": constants, "seed": SEED, "weight_grid": 2.0**-6,
            "hyper_scale": HYPER_SCALE, "noise_grid": NOISE_GRID, "incident_energies_mev": INCIDENT_MEV.tolist(),
            "hits": HITS, "written_by": "tests/reference/make_calopointflow_fixtures.py"}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


if __name__ == "__main__":
    main()
