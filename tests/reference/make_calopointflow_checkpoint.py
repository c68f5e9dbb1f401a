"""Writes a tiny CaloPointFlow II (DS2) Lightning checkpoint with the reference code, and its outputs for import tests.

Runs only in a separate environment with PyTorch, zuko 1.1.0 and pytorch-lightning 2.3.2 (the reference's pins),
never calozoo's own:

    python -m venv /work/peers-venv-cpf-lightning
    /work/peers-venv-cpf-lightning/bin/pip install torch zuko==1.1.0 omegaconf pytorch-lightning==2.3.2
    /work/peers-venv-cpf-lightning/bin/python tests/reference/make_calopointflow_checkpoint.py \\
        --reference-git-dir PATH/TO/CaloPointFlow/.git

The reference (simonschnake/CaloPointFlow @ `REFERENCE_COMMIT`, extracted as make_calopointflow_fixtures.py does)
builds its `CaloPointFlow` module (model II) from `CONFIG`, a tiny configuration with the keys of its d2_II.yaml, and
trains it as its `train.py` does: a `pytorch_lightning.Trainer` with the same EarlyStopping and ModelCheckpoint
callbacks, one epoch (max_epochs 1) on the three synthetic fixture showers of make_calopointflow_fixtures.py (batch
3, validation on the same batch; no shuffling, CPU, float32 as the reference trains). In epoch 0 the module's
freezables measure the data and freeze at the epoch's end, so the checkpoint holds trained weights, the frozen
preprocessing statistics, the optimizer state and the hyperparameters (omegaconf objects), as any checkpoint of the
reference's training. Only `torch_scatter` and `torchvision` are replaced by the stand-ins of
make_calopointflow_fixtures.py; Lightning is the real one. Lightning writes into `RUN_DIR`, a fixed folder, so that
the paths it records in the checkpoint (the callbacks' state) are the same on every run.

What is written to `tests/reference/calopointflow_ds2/`:

- `checkpoint.ckpt.gz`: the checkpoint ModelCheckpoint saved as `last.ckpt`, byte for byte, gzipped (its DS2
  coordinate table alone, a buffer of the module, takes 155 KB uncompressed);
- `checkpoint_cases.npz`: the reference's float64 outputs of that checkpoint's module (`module.double()`, the
  float32 weights unchanged) on the fixture showers: the preprocessed points and conditionals (from the recorded
  dequantisation noise), the conditional flow's log-density and a sample from recorded noise, the encoder, the latent
  flow's log-density and sample, the point flow's log-density and sample, and the decoded sample;
- `checkpoint.json`: the sizes, seeds, versions and the checkpoint's top-level keys.
"""

from __future__ import annotations

import functools
import gzip
import json
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np
from make_caloflow_fixtures import extract_reference, fixture_options
from make_calopointflow_fixtures import (
    INCIDENT_MEV,
    REFERENCE_COMMIT,
    REFERENCE_FILES,
    REFERENCE_REPOSITORY,
    SEED,
    install_stand_ins,
    preprocess,
    recording_rand_like,
    scatter_sum_or_mean,
    synthetic_showers,
)

OUT = Path(__file__).resolve().parent / "calopointflow_ds2"
RUN_DIR = Path("/tmp/calopointflow-reference-checkpoint")
BINNING = {"z_bins": 45, "alpha_bins": 16, "r_bins": 9}  # DS2
CONFIG = {  # the keys of the reference's d2_II.yaml (and base.yaml's optimizer and trainer), at tiny sizes
    "point_dim": 3, "latent_dim": 4, "conditional_dim": 2, "deepset_flow": True, "cdf_dequantization": True,
    "shift_min_energy": False, "dataset": {"binning": BINNING},
    "point_flow": {"bins": 4, "transforms": 2, "randmask": True, "hidden_features": [6, 6],
                   "point_net_dims": [4, 6], "reduce_net_dims": [6, 3], "reduce": "mean"},
    "latent_flow": {"bins": 4, "transforms": 2, "randmask": True, "hidden_features": [6, 6]},
    "conditional_flow": {"bins": 4, "transforms": 3, "randperm": True, "hidden_features": [6, 6]},
    "encoder": {"point_layers": [6, 8], "latent_layers": [8, 6]},
    "optimizer": {"lr": 0.05}, "trainer": {"max_epochs": 1},
}
NOISE_GRID = 2.0**-10
MODEL_SEED = SEED + 1  # the module's random orders then mix [0, 1] and [1, 0] (at SEED all three are [1, 0])


def point_cloud_batch(data_module, showers, torch):
    """The fixture showers as one batch of the reference's collate function: (coords, vals, nnz, e_in)."""
    coords, vals, nnz, _ = data_module.CaloPointCloudDataset.to_point_clouds(None, showers, INCIDENT_MEV[:, None])
    items = []
    start = 0
    for count, energy in zip(nnz, INCIDENT_MEV):
        items.append((torch.from_numpy(coords[start:start + count]), torch.from_numpy(vals[start:start + count]),
                      torch.tensor(count), torch.tensor([energy], dtype=torch.float32)))
        start += count
    return items


def train_and_checkpoint(model, items, torch) -> Path:
    """One epoch of the reference's Trainer set-up (train.py) on the items; returns the saved `last.ckpt`."""
    import pytorch_lightning as pl

    shutil.rmtree(RUN_DIR, ignore_errors=True)
    loader = torch.utils.data.DataLoader(items, batch_size=len(items), shuffle=False,
                                         collate_fn=functools.partial(collate_points, torch=torch))
    trainer = pl.Trainer(
        **CONFIG["trainer"], accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(RUN_DIR), deterministic=True,
        callbacks=[pl.callbacks.EarlyStopping(monitor="val_loss", mode="min", min_delta=0.00, patience=100),
                   pl.callbacks.ModelCheckpoint(dirpath=str(RUN_DIR / "checkpoints"), monitor="val_loss", mode="min",
                                                save_last=True, save_top_k=3, filename="{epoch}-{val_loss:.4f}")])
    trainer.fit(model, loader, loader)
    return RUN_DIR / "checkpoints" / "last.ckpt"


def collate_points(batch, torch):
    """The reference's `point_cloud_collate_fn` (data.py): points concatenated, counts and energies stacked."""
    coords, vals, nnz, incident = zip(*batch)
    return torch.cat(coords), torch.cat(vals), torch.stack(nnz), torch.stack(incident)


def reference_cases(model, items, torch) -> dict:
    """The reference module's float64 outputs (see the module docstring)."""
    model = model.double().eval()
    coords, vals, nnz, e_in = collate_points(items, torch)
    batch = (coords, vals.double(), nnz, e_in.double())
    uniforms = []
    restore = recording_rand_like(torch, uniforms)
    inputs = preprocess(model, batch, torch)
    restore()
    generator = torch.Generator().manual_seed(SEED)

    def noise(*shape):
        return (torch.randn(shape, generator=generator, dtype=torch.float64) / NOISE_GRID).round() * NOISE_GRID

    points, idx = inputs["points"], inputs["idx"]
    with torch.no_grad():
        conditional_flow = model.conditional_flow(inputs["e_in_hat"])
        conditional_noise = noise(len(nnz), 2)
        conditional_sample = conditional_flow.transform.inv(conditional_noise)
        mu, log_var = model.encoder(points, idx)
        c = torch.cat([inputs["e_in_hat"], inputs["conditional"]], dim=1)
        latent = mu + torch.exp(0.5 * log_var) * noise(len(nnz), CONFIG["latent_dim"])
        latent_noise = noise(len(nnz), CONFIG["latent_dim"])
        point_context = torch.repeat_interleave(torch.cat([c, latent], dim=1), nnz, dim=0)
        point_flow = model.point_flow(idx, nnz, point_context)
        point_noise = noise(len(points), 3)
        point_sample = point_flow.transform.inv(point_noise)
        decoded_coords, decoded_fractions = model.deconstruct_points(point_sample)
        sampled_nnz, sampled_e_sum = model.deconstruct_conditional(conditional_sample, batch[3])
        cases = {
            "uniform_coordinates": np.stack(uniforms[:2], -1), "uniform_nnz": uniforms[2],
            "points": points, "conditional": inputs["conditional"], "e_in_hat": inputs["e_in_hat"],
            "conditional_log_prob": conditional_flow.log_prob(inputs["conditional"]),
            "conditional_noise": conditional_noise, "conditional_sample": conditional_sample,
            "sampled_nnz": sampled_nnz, "sampled_e_sum": sampled_e_sum, "mu": mu, "log_var": log_var,
            "latent": latent, "latent_context": c, "latent_log_prob": model.latent_flow(c).log_prob(latent),
            "latent_noise": latent_noise, "latent_sample": model.latent_flow(c).transform.inv(latent_noise),
            "point_context": point_context, "point_log_prob": point_flow.log_prob(points),
            "point_log_prob_shower_mean": scatter_sum_or_mean(point_flow.log_prob(points), idx, reduce="mean"),
            "point_noise": point_noise, "point_sample": point_sample, "decoded_coords": decoded_coords,
            "decoded_fractions": decoded_fractions,
        }
    return {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        import pytorch_lightning  # noqa: F401  (first: its imports look for the real torchvision)
        import torch
        from omegaconf import OmegaConf

        install_stand_ins(lightning=False)
        sys.path.insert(0, tmp)
        import calopointflow.data as data_module
        import calopointflow.model as model_module

        torch.manual_seed(MODEL_SEED)
        model = model_module.CaloPointFlow(OmegaConf.create(CONFIG))
        items = point_cloud_batch(data_module, synthetic_showers(np.random.default_rng(SEED)), torch)
        checkpoint_path = train_and_checkpoint(model, items, torch)
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        restored = model_module.CaloPointFlow(OmegaConf.create(CONFIG))
        restored.load_state_dict(checkpoint["state_dict"])
        cases = reference_cases(restored, items, torch)
    (options.out / "checkpoint.ckpt.gz").write_bytes(gzip.compress(checkpoint_path.read_bytes(), 9, mtime=0))
    shutil.rmtree(RUN_DIR)
    np.savez_compressed(options.out / "checkpoint_cases.npz", **cases)
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT},
            "libraries": {name: metadata.version(name) for name in ("torch", "zuko", "omegaconf", "pytorch-lightning",
                                                                     "numpy")},
            "config": CONFIG, "seed": SEED, "model_seed": MODEL_SEED, "noise_grid": NOISE_GRID, "run_dir": str(RUN_DIR),
            "checkpoint_keys": sorted(checkpoint), "epoch": checkpoint["epoch"],
            "global_step": checkpoint["global_step"],
            "written_by": "tests/reference/make_calopointflow_checkpoint.py"}
    (options.out / "checkpoint.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote checkpoint.ckpt.gz ({(options.out / 'checkpoint.ckpt.gz').stat().st_size} bytes), "
          f"checkpoint_cases.npz and checkpoint.json to {options.out}")


if __name__ == "__main__":
    main()
