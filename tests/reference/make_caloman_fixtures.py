"""Writes the CaloMan DS1 reference fixtures by running the reference PyTorch code at small sizes.

Runs only in a separate environment with PyTorch, nflows 0.14 and matplotlib (never calozoo's own):

    /work/peers-venv/bin/python tests/reference/make_caloman_fixtures.py \\
        --reference-git-dir PATH/TO/calo-man/.git

The reference is layer6ai-labs/calo-man at `REFERENCE_COMMIT`: the modules listed in `REFERENCE_FILES` (its config
functions, model factory, networks, flows, preprocessing and the DS1 binning files) are read from that git
directory at that commit into a temporary folder and imported from there (nothing of them is copied into this
repository). The package `__init__`s of `two_step_zoo`, `two_step_zoo.datasets` and `two_step_zoo.evaluators`
are not run (they import the trainers, TensorBoard, scikit-learn and SciPy, which nothing called here uses), and
`torchvision` (the unused residual networks) is stubbed. The reference runs in float64 because its
`evaluators/evaluate.py` sets torch's default dtype at import; that module is not imported here, so the same
default is set explicitly.

The models are built as `main.py --dataset photons1 --epl-model flow --gae-model vae --de-model flow` builds them
(`config.get_epl_configs`, the same overrides, `two_step_zoo.factory`), with `use_labels=True` for the GAE (as the
fast sampler requires) and the small sizes of `SIZES`. Every weight is then redrawn on a coarse grid
(`randomize_parameters`), so that float16 stores it exactly and the LU layers and the near-zero-initialised
residual blocks are not trivial; the scaling buffers (`data_min`, `data_max`) are set from the synthetic data as the
reference trainers set them. Everything below was computed by the reference code in float64 with exactly these
values.

What is written to `tests/reference/caloman/` (see `fixtures.json` for the sizes, seeds and versions):

- `epl.npz`, `gae.npz`, `de.npz`: the `state_dict` of the EPL flow, the VAE and the DE flow, keys exactly as the
  reference's checkpoints (`module_state_dict`) hold them.
- `cases.npz`: synthetic DS1 photon (and two pion) showers, the reference preprocessing of them, the EPL and DE
  log-densities, samples from recorded noise, the encoder and decoder outputs, the ELBO with its recorded noise, one
  generation batch of `main-sample-fast.py` end to end, and the reference's energy snapping and u-space inversion on
  edge cases.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import types
from importlib import metadata
from pathlib import Path

import numpy as np
from make_caloflow_fixtures import extract_reference, fixture_options, on_grid, recorded_noise, state_dict_arrays

REFERENCE_REPOSITORY = "layer6ai-labs/calo-man"
REFERENCE_COMMIT = "5547f23b28dde265b4ecfcace334629fd643f2aa"
REFERENCE_FILES = (
    *(f"config/{name}.py" for name in ("__init__", "get_config", "generalized_autoencoder", "density_estimator",
                                       "shared_config", "intrinsic_dimension")),
    *(f"two_step_zoo/{name}.py" for name in ("two_step", "vae", "avb", "utils", "distributions", "factory")),
    *(f"two_step_zoo/networks/{name}.py" for name in ("__init__", "neural_networks", "invertible_networks")),
    *(f"two_step_zoo/density_estimator/{name}.py" for name in ("__init__", "density_estimator", "autoregressive",
                                                               "ebm", "flow")),
    *(f"two_step_zoo/generalized_autoencoder/{name}.py" for name in ("__init__", "generalized_autoencoder",
                                                                     "autoencoder", "bigan", "wae")),
    *(f"two_step_zoo/datasets/{name}.py" for name in ("calo_challenge_epl", "calo_challenge_showers",
                                                      "supervised_dataset")),
    *(f"two_step_zoo/evaluators/{name}.py" for name in ("high_level_features", "xml_handler")),
    *(f"two_step_zoo/evaluators/binning/binning_dataset_{name}.xml" for name in ("photons1", "pions1")),
)
OUT = Path(__file__).resolve().parent / "caloman"

PHOTON_LAYERS = (8, 160, 190, 5, 5)
PION_LAYERS = (8, 100, 100, 5, 150, 160, 10)
INCIDENT_MEV = np.array([256.0, 1024.0, 8192.0, 65536.0, 1048576.0, 4194304.0])
SIZES = {"epl_hidden": 8, "epl_layers": 2, "epl_blocks": 2, "latent_dim": 4, "encoder_hidden": [8, 8],
         "decoder_hidden": [8, 8], "de_hidden": 8, "de_layers": 2, "de_blocks": 2}
WEIGHT_GRID = 2.0**-8
NOISE_GRID = 2.0**-10
SEED = 22
# The rows that set the scaling buffers: all but row 1, whose empty layer has logit(alpha) = -13.8 in u-space, which
# would stretch the untrained EPL flow's samples far beyond the data range.
TRAINING_ROWS = [0, 2, 3, 4, 5]
# E_inc values around the reference's bin edges (1.5 x each DS1 energy) and CaloMan's log-midpoints (sqrt 2 x)
SNAP_ENERGIES = np.array([200.0, 256.0, 300.0, 370.0, 380.0, 700.0, 1500.0, 1000000.0, 4194304.0, 5000000.0])


def import_reference(folder: Path):
    """(config, factory, two_step_zoo modules) of the reference extracted into `folder`, imported without the
    package `__init__`s that pull in training and evaluation machinery."""
    os.environ.setdefault("MPLBACKEND", "Agg")
    sys.path.insert(0, str(folder))
    resnet = types.ModuleType("torchvision.models.resnet")
    resnet.BasicBlock, resnet.conv1x1 = type("BasicBlock", (), {"expansion": 1}), None
    sys.modules.update({"torchvision": types.ModuleType("torchvision"),
                        "torchvision.models": types.ModuleType("torchvision.models"),
                        "torchvision.models.resnet": resnet,
                        "two_step_zoo.datasets.loaders": types.ModuleType("two_step_zoo.datasets.loaders")})
    for package in ("two_step_zoo", "two_step_zoo.datasets", "two_step_zoo.evaluators"):
        module = types.ModuleType(package)
        module.__path__ = [str(folder / package.replace(".", "/"))]
        sys.modules[package] = module
    import torch

    torch.set_default_dtype(torch.float64)  # what two_step_zoo/evaluators/evaluate.py does at import
    from two_step_zoo import avb, two_step, vae

    package = sys.modules["two_step_zoo"]
    package.TwoStepDensityEstimator, package.GaussianVAE = two_step.TwoStepDensityEstimator, vae.GaussianVAE
    package.AdversarialVariationalBayes = avb.AdversarialVariationalBayes
    import config
    from two_step_zoo import factory
    from two_step_zoo.datasets import calo_challenge_epl, calo_challenge_showers

    return config, factory, types.SimpleNamespace(config=config, vae=vae, epl=calo_challenge_epl,
                                                  showers=calo_challenge_showers)


def reference_configs(config) -> tuple[dict, dict, dict, dict]:
    """(epl, gae, de, shared) configs as `main.py` makes them, with `SIZES` and `use_labels=True` as overrides, and
    the sizes `main-sample-fast.py` sets before building."""
    epl_cfg, gae_cfg, de_cfg, shared_cfg = config.get_epl_configs("photons1", "flow", "vae", "flow")
    epl_cfg.update(hidden_units=SIZES["epl_hidden"], num_layers=SIZES["epl_layers"],
                   num_blocks_per_layer=SIZES["epl_blocks"])
    epl_cfg["dataset"] = epl_cfg["dataset"] + "-epl"
    for key in ("make_valid_loader", "train_batch_size", "valid_batch_size", "test_batch_size"):
        epl_cfg[key] = shared_cfg[key]
    gae_cfg.update(latent_dim=SIZES["latent_dim"], encoder_hidden_dims=SIZES["encoder_hidden"],
                   decoder_hidden_dims=SIZES["decoder_hidden"], use_labels=True, conditional_on_epl=True)
    de_cfg.update(hidden_units=SIZES["de_hidden"], num_layers=SIZES["de_layers"],
                  num_blocks_per_layer=SIZES["de_blocks"], data_dim=SIZES["latent_dim"], conditional_on_epl=True)
    shared_cfg["conditional_on_epl"] = True
    epl_cfg.update(label_dim=1, data_dim=len(PHOTON_LAYERS), data_shape=(len(PHOTON_LAYERS),))
    shared_cfg.update(data_dim=sum(PHOTON_LAYERS), data_shape=(sum(PHOTON_LAYERS),), label_dim=1 + len(PHOTON_LAYERS),
                      train_dataset_size=121000)
    return epl_cfg, gae_cfg, de_cfg, shared_cfg


def randomize_parameters(model, torch) -> None:
    """Every parameter redrawn on the grid `WEIGHT_GRID` (float16-exact): weights U(-2, 2) / sqrt(fan-in), the
    rest (biases, LU entries) U(-0.1, 0.1) about their identity-init value (the LU diagonal's is
    log(e^(1 - eps) - 1)), so that the untrained flows stay near the data range."""
    generator = torch.Generator().manual_seed(SEED)
    identity_diag = float(np.log(np.expm1(1.0 - 1e-3)))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            bound = 2.0 / np.sqrt(parameter.shape[-1]) if parameter.dim() == 2 else 0.1
            centre = identity_diag if name.endswith("unconstrained_upper_diag") else 0.0
            draw = centre + (2.0 * torch.rand(parameter.shape, generator=generator) - 1.0) * bound
            parameter.copy_(on_grid(draw, WEIGHT_GRID))
            assert parameter.abs().max() < 4.0, name


def synthetic_showers(rng: np.random.Generator, layers, energies) -> np.ndarray:
    """(N, V) float64 MeV: sparse gamma deposits scaled to 0.3-1.5 E_inc; row 1 has an empty layer 3."""
    n_voxels = sum(layers)
    deposits = rng.gamma(0.6, 1.0, size=(len(energies), n_voxels)) * (rng.random((len(energies), n_voxels)) < 0.5)
    deposits[:, 0] = np.maximum(deposits[:, 0], 0.1)
    if len(energies) > 1:
        start = sum(layers[:3])
        deposits[1, start:start + layers[3]] = 0.0
    scale = rng.uniform(0.3, 1.5, size=(len(energies), 1)) * energies[:, None]
    return on_grid(deposits / deposits.sum(axis=1, keepdims=True) * scale, 2.0**-12)


def preprocessing_cases(ref, showers, energies, dataset: str) -> dict:
    """The reference preprocessing of both steps with the dataset's own configs (as `main.py` makes them): EPL
    u-space logits and condition, normalised voxels and labels."""
    epl_cfg, _, _, shared_cfg = ref.config.get_epl_configs(dataset, "flow", "vae", "flow")
    shared_cfg["conditional_on_epl"] = True
    layer_energies = ref.epl.get_eperlayer(dataset, showers)
    u, c = ref.epl.preprocess(layer_energies, energies, epl_cfg)
    voxels, labels = ref.showers.preprocess(showers, energies, shared_cfg)
    return {"layer_energies": layer_energies, "u": u, "c": c, "voxels": voxels, "labels": labels}


def set_scales(module, data, torch) -> None:
    """`data_min`, `data_max` from training data, as the reference's `SingleTrainer.update_transform_parameters`."""
    data = torch.as_tensor(data)
    module.data_min, module.data_max = data.min(), data.max()


def recorded_gaussian(vae_module, store: list):
    """Wraps the VAE's latent draw so that its noise is kept (on a grid); returns the function that restores it."""
    draw = vae_module.diagonal_gaussian_sample

    def recording(mu, sigma, shape=None):
        import torch

        noise = on_grid(torch.randn_like(mu), NOISE_GRID)
        store.append(noise.numpy().copy())
        return mu + sigma * noise

    vae_module.diagonal_gaussian_sample = recording
    return lambda: setattr(vae_module, "diagonal_gaussian_sample", draw)


def generation_batch(ref, epl, two_step, epl_cfg, shared_cfg, torch) -> dict:
    """One batch of `main-sample-fast.py`'s loop (E_inc in MeV as read from the file), with the noise it drew."""
    energy_noise, latent_noise = [], []
    restore = [recorded_noise(epl._nflow, energy_noise),
               recorded_noise(two_step.density_estimator._nflow, latent_noise)]
    raw_e_inc = torch.tensor(INCIDENT_MEV[:, None])
    epl_e_inc = torch.as_tensor(ref.epl.preprocess_einc(INCIDENT_MEV[:, None], epl_cfg))
    eperlayer_batch = epl.sample(epl_e_inc.shape[0], epl_e_inc)
    eperlayer, _ = ref.epl.undo_preprocessing_epl(eperlayer_batch, epl_e_inc, epl_cfg)
    prep_eperlayer = ref.epl.preprocess_eperlayer(eperlayer, raw_e_inc, shared_cfg)  # normalize_to_epl: MeV stays
    energy = torch.cat((ref.epl.preprocess_einc(raw_e_inc, shared_cfg), prep_eperlayer), dim=-1)
    shapes = two_step.sample(energy.shape[0], energy).numpy()
    clipped = np.clip(shapes, two_step.data_min.numpy(), two_step.data_max.numpy())
    showers, energies = ref.showers.undo_preprocessing_showers(clipped, energy.numpy(), shared_cfg)
    for undo in restore:
        undo()
    return {"generation_energy_noise": energy_noise[0], "generation_latent_noise": latent_noise[0],
            "generation_epl_samples": eperlayer_batch, "generation_layer_energies": eperlayer,
            "generation_labels": energy, "generation_decoder_means": shapes, "generation_showers_mev": showers,
            "generation_incident_energies_mev": energies}


def reference_cases(ref, modules, configs, torch) -> dict:
    """Every compared quantity, computed by the reference code in float64."""
    epl, two_step = modules
    epl_cfg, _, _, shared_cfg = configs
    gae, de = two_step.generalized_autoencoder, two_step.density_estimator
    rng = np.random.default_rng(SEED)
    showers = synthetic_showers(rng, PHOTON_LAYERS, INCIDENT_MEV)
    energies = INCIDENT_MEV[:, None]
    photons = preprocessing_cases(ref, showers, energies, "photons1")
    pion_energies = np.array([[2048.0], [262144.0]])
    pion_showers = synthetic_showers(rng, PION_LAYERS, pion_energies[:, 0])
    pions = preprocessing_cases(ref, pion_showers, pion_energies, "pions1")
    u, c = torch.as_tensor(photons["u"]), torch.as_tensor(photons["c"])
    x, y = torch.as_tensor(photons["voxels"]), torch.as_tensor(photons["labels"])
    set_scales(epl, u[TRAINING_ROWS], torch)
    set_scales(gae, x[TRAINING_ROWS], torch)
    cases = {"showers_mev": showers, "incident_energies_mev": energies, "pion_showers_mev": pion_showers,
             "pion_incident_energies_mev": pion_energies,
             **{f"photon_{k}": v for k, v in photons.items()}, **{f"pion_{k}": v for k, v in pions.items()}}
    with torch.no_grad():
        latents = gae.encode(x, y)
        set_scales(de, latents[TRAINING_ROWS], torch)
        encoder_mean, encoder_log_sigma = gae.encode_transformed(x, y)
        decoder_mean, decoder_log_sigma = gae.decode_to_transformed(latents, y)
        elbo_noise = []
        restore = recorded_gaussian(ref.vae, elbo_noise)
        elbo = gae.log_prob(x, y)
        restore()
        epl_noise, de_noise = [], []
        restore = [recorded_noise(epl._nflow, epl_noise), recorded_noise(de._nflow, de_noise)]
        epl_samples, de_samples = epl.sample(len(c), c), de.sample(len(y), y)
        for undo in restore:
            undo()
        cases.update({
            "epl_log_prob": epl.log_prob(u, c), "epl_noise": epl_noise[0], "epl_samples": epl_samples,
            "encoder_mean": encoder_mean, "encoder_log_sigma": encoder_log_sigma, "decoder_mean": decoder_mean,
            "decoder_log_sigma": decoder_log_sigma, "elbo": elbo, "elbo_noise": elbo_noise[0],
            "rec_error": gae.rec_error(x, y), "latents": latents, "de_log_prob": de.log_prob(latents, y),
            "de_noise": de_noise[0], "de_samples": de_samples,
        })
        cases.update(generation_batch(ref, epl, two_step, epl_cfg, shared_cfg, torch))
        cases.update(edge_cases(ref, epl_cfg, torch))
    return {k: (v.detach().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in cases.items()}


def edge_cases(ref, epl_cfg, torch) -> dict:
    """The reference's E_inc snapping (`en_binning`) near its bin edges, and its u-space inversion of logits beyond
    logit(1 - alpha), where it does not clamp the fractions."""
    logits = torch.tensor([[15.0, -15.0, 15.0, 2.0, -1.0], [3.0, 16.0, 0.5, -16.0, 14.0]])
    condition = torch.log10(torch.tensor([[65536.0], [1024.0]]) / 33.3e3)
    layer_energies, _ = ref.epl.undo_preprocessing_epl(logits, condition, epl_cfg)
    return {"snap_energies": SNAP_ENERGIES[:, None], "snap_reference": ref.epl.en_binning(SNAP_ENERGIES[:, None]),
            "extreme_logits": logits, "extreme_condition": condition, "extreme_layer_energies": layer_energies}


def reference_constants(config, ref, configs) -> dict:
    """f of both datasets (the EPL and the shared config), alpha, the flows' spline, the defaults calozoo's
    configurations depart from."""
    defaults = {name: config.get_epl_configs(name, "flow", "vae", "flow") for name in ("photons1", "pions1")}
    constants = {name: {"epl_max_deposited_ratio": cfgs[0]["max_deposited_ratio"],
                        "shared_max_deposited_ratio": cfgs[3]["max_deposited_ratio"]}
                 for name, cfgs in defaults.items()}
    epl_cfg, gae_cfg, de_cfg, _ = defaults["photons1"]
    constants.update(alpha=ref.epl.ALPHA, shower_alpha=ref.showers.ALPHA, tail_bound=de_cfg["tail_bound"],
                     num_bins=de_cfg["num_bins"], hidden_units=de_cfg["hidden_units"], num_layers=de_cfg["num_layers"],
                     num_blocks_per_layer=de_cfg["num_blocks_per_layer"], epl_hidden_units=epl_cfg["hidden_units"],
                     gae_use_labels_default=gae_cfg["use_labels"], latent_dim_default=gae_cfg["latent_dim"])
    return constants


def build(factory, configs, torch):
    """(EPL flow, two-step module) built by the reference factory from `configs`, weights redrawn, in eval mode."""
    epl_cfg, gae_cfg, de_cfg, shared_cfg = configs
    epl = factory.get_single_module(epl_cfg, data_dim=epl_cfg["data_dim"], data_shape=epl_cfg["data_shape"],
                                    label_dim=epl_cfg["label_dim"], train_dataset_size=121000)
    two_step = factory.get_two_step_module(gae_cfg, de_cfg, shared_cfg)
    for model in (epl, two_step):
        randomize_parameters(model, torch)
        model.eval()
    return epl, two_step


def main() -> None:
    options = fixture_options(__doc__, REFERENCE_REPOSITORY, OUT)
    out = options.out
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        extract_reference(options.reference_git_dir, folder, REFERENCE_COMMIT, REFERENCE_FILES)
        config, factory, ref = import_reference(folder)
        import torch

        torch.manual_seed(SEED)
        np.random.seed(SEED)
        configs = reference_configs(config)
        epl, two_step = build(factory, configs, torch)
        cases = reference_cases(ref, (epl, two_step), configs, torch)
        constants = reference_constants(config, ref, configs)
    np.savez_compressed(out / "cases.npz", **cases)
    for name, model in (("epl", epl), ("gae", two_step.generalized_autoencoder), ("de", two_step.density_estimator)):
        np.savez_compressed(out / f"{name}.npz", **state_dict_arrays(model))
    meta = {"reference": {"repository": REFERENCE_REPOSITORY, "commit": REFERENCE_COMMIT, "files": REFERENCE_FILES},
            "libraries": {"torch": torch.__version__, "nflows": metadata.version("nflows"), "numpy": np.__version__,
                          "python": sys.version.split()[0]},
            "sizes": SIZES, "constants": constants, "seed": SEED, "weight_grid": WEIGHT_GRID,
            "noise_grid": NOISE_GRID, "incident_energies_mev": INCIDENT_MEV.tolist(),
            "written_by": "tests/reference/make_caloman_fixtures.py"}
    (out / "fixtures.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


if __name__ == "__main__":
    main()
