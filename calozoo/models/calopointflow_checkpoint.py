"""CaloPointFlow II (DS2/DS3) models from the reference code's Lightning checkpoints (state_dicts as numpy arrays).

The reference (simonschnake/CaloPointFlow, `train.py`) trains its `CaloPointFlow` LightningModule with a
ModelCheckpoint callback: `<log_dir>/lightning_logs/version_*/checkpoints/{epoch}-{val_loss}.ckpt` and `last.ckpt`,
each a dict whose `state_dict` holds the module's weights and buffers: the conditional flow (zuko NSF), the encoder,
the latent and point flows with their random masks and orders, the DS coordinate table `coords`, and the
preprocessing statistics that its freezables measured in epoch 0 and froze (`normalize_*` mean / var,
`min_max_scale_vals`, `dequantize_coords` pdf / cdf, each with its `_frozen` flag). Its `generate.py` loads exactly
this `state_dict`. The sizes, masks and orders are read from the tensors; the mapping itself is
`calozoo.bijectors.zuko_state_dict`.
"""

from __future__ import annotations

import numpy as np

from calozoo.bijectors.zuko_state_dict import (
    assign_conditional_flow,
    assign_coupling,
    assign_deepset_coupling,
    assign_encoder,
    assign_preprocessing,
    calopointflow_sizes,
    coupling_identities,
    coupling_prefixes,
    transform_orders,
)
from calozoo.data.point_clouds import grid_shape
from calozoo.errors import CheckpointError
from calozoo.models.calopointflow import CaloPointFlow, CaloPointFlowConfig

__all__ = ["REFERENCE_REPOSITORY", "REFERENCE_COMMIT", "STATISTICS", "check_hyperparameters",
           "calopointflow_config_from_checkpoint", "calopointflow_from_checkpoint"]

REFERENCE_REPOSITORY = "simonschnake/CaloPointFlow"
REFERENCE_COMMIT = "6fca03b65b3f7f92debc29438a61a580035107fc"
# the freezables whose statistics calozoo's preprocessing takes (min_max_scale_nnz is registered but never used)
STATISTICS = ("dequantize_coords", "min_max_scale_vals", "normalize_vals", "normalize_nnz", "normalize_e_sum",
              "normalize_e_in")


def check_hyperparameters(hyper_parameters: dict) -> None:
    """CheckpointError where the reference's hyperparameters (a Lightning checkpoint's, as plain dicts) ask for what
    calozoo's CaloPointFlow does not do: model I or another point form, or `shift_min_energy` (the reference then
    subtracts 0.5e-3 / 0.033 MeV from every hit before training and adds it back to every generated hit)."""
    model_ii = {"point_dim": 3, "deepset_flow": True, "cdf_dequantization": True}
    found = {key: hyper_parameters.get(key, value) for key, value in model_ii.items()}
    if found != model_ii:
        raise CheckpointError(f"its hyperparameters {found} are not CaloPointFlow II's {model_ii}; calozoo imports "
                              "model II only.")
    if hyper_parameters.get("shift_min_energy"):
        raise CheckpointError("it was trained with shift_min_energy: true (every hit shifted by 0.5e-3 / 0.033 MeV), "
                              "which calozoo's CaloPointFlow does not implement.")


def _check_model_ii(state: dict, dataset: str) -> None:
    """CheckpointError unless the state_dict is a CaloPointFlow II of `dataset` with frozen statistics."""
    grid = grid_shape(dataset)
    coords = np.asarray(state.get("coords", np.zeros((0, 3))))
    expected = np.stack(np.unravel_index(np.arange(grid.n_voxels), (grid.n_z, grid.n_alpha, grid.n_r)), -1)
    if coords.shape != expected.shape or not np.array_equal(coords, expected):
        raise CheckpointError(f"the checkpoint's coordinate table has {len(coords)} voxels, not the {grid.n_voxels} "
                              f"of dataset {dataset} (is it another dataset's model?).")
    if "dequantize_coords.cdf_1" not in state or "point_flow.transform.transforms.0.deep_set.point_net.0.weight" \
            not in state or "dequantize_coords.cdf_2" in state:
        raise CheckpointError("the checkpoint is not a CaloPointFlow II (CDF dequantisation of (z, r) and a "
                              "DeepSetFlow point flow); calozoo imports model II only.")
    unfrozen = [name for name in STATISTICS if not bool(np.asarray(state.get(f"{name}._frozen", False)))]
    if unfrozen:
        raise CheckpointError(f"the preprocessing statistics {unfrozen} are not frozen: the checkpoint was saved "
                              "before the end of epoch 0, so its statistics are not the ones the model trained with.")


def calopointflow_config_from_checkpoint(base: dict, states: dict) -> tuple[dict, dict]:
    """The CaloPointFlow config that fits the state_dict `states["model"]`: `base` (the registered config) with the
    sizes, the conditional flow's orders and the couplings' identity features read from the tensors.

    Returns:
        (config dict, the inferred entries). Raises CheckpointError where the state_dict is no CaloPointFlow II of
        the dataset.
    """
    state = states["model"]
    dataset = base.get("dataset", CaloPointFlowConfig.dataset)
    _check_model_ii(state, dataset)
    inferred = {**calopointflow_sizes(state, conditional=True), "variant": "II",
                "conditional_orders": transform_orders(state),
                "latent_identity": coupling_identities(state, "latent_flow"),
                "point_identity": coupling_identities(state, "point_flow")}
    config = {**base, **inferred}
    CaloPointFlowConfig.from_dict(config)  # every size checked before anything is built
    return config, inferred


def calopointflow_from_checkpoint(config, states: dict) -> CaloPointFlow:
    """A CaloPointFlow (`CaloPointFlowConfig` or dict) with every weight and statistic copied from the reference
    state_dict `states["model"]`."""
    state = states["model"]
    config = CaloPointFlowConfig.from_dict(config) if isinstance(config, dict) else config
    model = CaloPointFlow(config)
    assign_preprocessing(model, state)
    assign_conditional_flow(model.conditional_flow, state)
    assign_encoder(model.encoder, state)
    for coupling, prefix in zip(model.latent_flow, coupling_prefixes(state, "latent_flow")):
        assign_coupling(coupling, state, prefix)
    for coupling, prefix in zip(model.point_flow, coupling_prefixes(state, "point_flow")):
        assign_deepset_coupling(coupling, state, prefix)
    return model
