"""How CaloMan DS1 is trained: EPL flow, then the autoencoder, then the DE flow on the encoder means."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from calozoo.models.caloman import CaloMan
from calozoo.training.likelihood import total_steps, train_by_likelihood
from calozoo.training.schedules import make_schedule
from calozoo.training.settings import fit_validation_rows, merged_settings
from calozoo.training.trainer import TrainingResult, train_loop

__all__ = ["DEFAULT_TRAINING", "train_caloman", "encoder_means"]

# The reference recipe (docs/models.md section 5.3): Adam 1e-3, batch 512, gradient norm clipped at 10; the
# autoencoder with per-step cosine annealing. YAML configs override any entry. The reference's early stopping
# (patience 20) is not reproduced: every epoch runs and the best validation epoch is kept.
DEFAULT_TRAINING = {
    "validation_fraction": 0.2,
    "energy_flow": {"batch_size": 512, "epochs": 300, "clip_norm": 10.0, "jit_compile": True,
                    "schedule": {"name": "constant", "lr": 1e-3}},
    "autoencoder": {"batch_size": 512, "epochs": 300, "clip_norm": 10.0, "jit_compile": True,
                    "schedule": {"name": "cosine", "lr": 1e-3}},
    "latent_flow": {"batch_size": 512, "epochs": 200, "clip_norm": 10.0, "jit_compile": True,
                    "schedule": {"name": "constant", "lr": 1e-3}},
}
PARTS = ("energy_flow", "autoencoder", "latent_flow")


def _flow_training(flow, x, c, x_val, c_val, spec, checkpoint_dir, resume, seed, progress, name):
    x_val_t, c_val_t = tf.constant(x_val), tf.constant(c_val)
    validation_nll = tf.function(lambda: -tf.reduce_mean(flow.log_prob(x_val_t, c_val_t)))
    return train_by_likelihood(flow, [x, c], spec, validation_nll=validation_nll, checkpoint_dir=checkpoint_dir,
                               resume=resume, seed=seed, progress=progress, description=name)


def _autoencoder_training(model: CaloMan, voxels, labels, val_voxels, val_labels, spec, checkpoint_dir, resume, seed,
                          progress) -> TrainingResult:
    """-ELBO (or squared error) per batch; the epoch with the lowest validation L2 reconstruction error is kept."""
    autoencoder = model.autoencoder
    use_labels = model.config.use_labels
    val_x, val_y = tf.constant(val_voxels), tf.constant(val_labels)
    reconstruction = tf.function(lambda: autoencoder.reconstruction_error(val_x, val_y if use_labels else None))
    step_seeds = np.random.default_rng(seed + 5).integers(0, 2**31 - 1, size=(len(voxels), 2)).astype(np.int32)

    def loss_fn(x, y, row_seed):
        loss = autoencoder.loss(x, y if use_labels else None, row_seed[0])
        return loss, loss

    return train_loop(autoencoder, loss_fn, [voxels, labels, step_seeds], epochs=int(spec["epochs"]),
                      batch_size=int(spec["batch_size"]),
                      learning_rate=make_schedule(spec["schedule"], total_steps(spec, len(voxels))),
                      checkpoint_dir=checkpoint_dir, evaluate=lambda _: float(reconstruction()),
                      metric_name="validation_l2_reconstruction", resume=resume, seed=seed, progress=progress,
                      description="autoencoder", jit_compile=bool(spec.get("jit_compile", False)),
                      clip_norm=spec.get("clip_norm"), max_steps_per_epoch=spec.get("max_steps_per_epoch"),
                      patience=spec.get("patience"))


def encoder_means(model: CaloMan, voxels, labels, batch_size: int = 10_000) -> np.ndarray:
    """The encoder means (N, latent) of layer-normalised voxels, unscaled."""
    y = labels if model.config.use_labels else None
    parts = [model.autoencoder.encode(voxels[i : i + batch_size], None if y is None else y[i : i + batch_size])[0]
             for i in range(0, len(voxels), batch_size)]
    return np.concatenate([p.numpy() for p in parts]) if parts else np.zeros((0, model.config.latent_dim))


def _numpy_inputs(model: CaloMan, showers, energies) -> dict:
    return {k: v.numpy() for k, v in model.preprocess(showers, energies).items()}


def train_caloman(model: CaloMan, showers, energies, checkpoint_dir, *, settings: dict | None = None,
                  epochs: int | None = None, resume: bool = False, seed: int = 0, progress: bool = True,
                  strategy=None, **_) -> dict[str, TrainingResult]:
    """Trains the three steps in order on showers/energies in MeV (a training split); one result per step.

    A further `validation_fraction` of the rows selects each step's best epoch. The flows' input scales (largest
    |u-space logit|, largest |encoder mean| on the training rows) and the voxel range are stored in the model.
    `epochs` overrides every step's epoch count. Multi-device strategies are not supported for CaloMan.
    """
    if strategy is not None:
        raise ValueError("CaloMan training runs on one device; use `--strategy none`.")
    settings = merged_settings(DEFAULT_TRAINING, settings)
    if epochs is not None:
        for part in PARTS:
            settings[part]["epochs"] = int(epochs)
    fit_rows, val_rows = fit_validation_rows(len(showers), settings["validation_fraction"], seed)
    train = _numpy_inputs(model, showers[fit_rows], energies[fit_rows])
    valid = _numpy_inputs(model, showers[val_rows], energies[val_rows])
    model.energy_scale.assign(float(np.abs(train["energy_x"]).max()) or 1.0)
    energy_scale = model.energy_scale.numpy()
    results = {"energy_flow": _flow_training(model.energy_flow, train["energy_x"] / energy_scale, train["energy_c"],
                                             valid["energy_x"] / energy_scale, valid["energy_c"],
                                             settings["energy_flow"], f"{checkpoint_dir}/energy_flow", resume, seed,
                                             progress, "EPL flow")}
    results["autoencoder"] = _autoencoder_training(model, train["voxels"], train["labels"], valid["voxels"],
                                                   valid["labels"], settings["autoencoder"],
                                                   f"{checkpoint_dir}/autoencoder", resume, seed, progress)
    model.voxel_range.assign([float(train["voxels"].min()), float(train["voxels"].max())])
    latents = encoder_means(model, train["voxels"], train["labels"])
    model.latent_scale.assign(float(np.abs(latents).max()) or 1.0)
    scale = model.latent_scale.numpy()
    val_latents = encoder_means(model, valid["voxels"], valid["labels"]) / scale
    results["latent_flow"] = _flow_training(model.latent_flow, latents / scale, train["labels"], val_latents,
                                            valid["labels"], settings["latent_flow"], f"{checkpoint_dir}/latent_flow",
                                            resume, seed, progress, "DE flow")
    return results
