"""Convolutional L2LFlow models from the reference PyTorch code's checkpoints (state_dicts as numpy arrays).

The reference (FLC-QU-hep/ConvL2LFlow, `src/train.py`) trains one flow per run and saves it with `Flow.save`, a dict
of `hyperparameter` and `weights` (the state_dict): each causal layer flow `i` as `CAUSAL_DIR/flows/flowXX_final.pt`
after its last epoch (`flowXX.pt` is the best-validation one), the energy flow as `ENERGY_DIR/flows/flow.pt` (best
validation; `flow_final.pt` the last epoch). Its `src/generator.py ENERGY_DIR CAUSAL_DIR` loads exactly
`flows/flow.pt` and the 45 `flowXX_final.pt`, and the per-layer voxel maxima of the voxel transform from
`CAUSAL_DIR/trafo.pt` (the `NormLayer` state, `sub_modules.0.layer_max` = maximum + 1e-6, which it computes from the
training file and writes there on its first run). The sizes are read from the tensor shapes; the mapping itself is
`calozoo.bijectors.l2l_state_dict` (layer flows built with the reference's forms, `reference_forms: true`; the
energy flow's first permutation on its input, `energy_input_permutation: true`; the previous layers as context
channels oldest first, `previous_oldest_first: true`, as the reference's `ShowerDataset` and `Generator` stack them).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from calozoo.bijectors.l2l_state_dict import TRANSFORM_PREFIX, assign_conv_layer_flow, assign_permuted_maf
from calozoo.bijectors.nflows_state_dict import flow_layout
from calozoo.errors import CheckpointError
from calozoo.models.l2lflow import L2LFlow, L2LFlowConfig

__all__ = ["REFERENCE_REPOSITORY", "REFERENCE_COMMIT", "NORM_KEY", "causal_files", "check_causal_states",
           "check_energy_state", "l2lflow_config_from_checkpoints", "l2lflow_from_checkpoints"]

REFERENCE_REPOSITORY = "FLC-QU-hep/ConvL2LFlow"
REFERENCE_COMMIT = "f7f92a5e12311313f6f91a0c847cb3afabb3f09e"
NORM_KEY = "sub_modules.0.layer_max"  # trafo.pt: the NormLayer's per-layer maximum + its addition 1e-6 (GeV)
_NORM_ADDITION = 1e-6  # conf/causal.yaml's [NormLayer, 1.e-6]; calozoo adds it to `layer_maxima_gev` itself
_LAYER_FILE = re.compile(r"flow(\d\d)_final\.(pt|npz)")
_UNET = f"{TRANSFORM_PREFIX}.2.transform_net"


def _pick(stem: Path) -> Path | None:
    """`stem`.pt, else `stem`.npz (a state_dict saved by numpy), else None."""
    return next((path for path in (stem.with_suffix(".pt"), stem.with_suffix(".npz")) if path.is_file()), None)


def causal_files(folder) -> dict[str, Path]:
    """The files of a reference causal result folder that its generator reads, by name: `flowXX` ->
    `flows/flowXX_final.pt` for every layer, `trafo` -> `trafo.pt` (each may be a `.npz` of the state_dict)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a folder: give the reference's causal result folder (CAUSAL_DIR of "
                              "its generator.py), which holds flows/flowXX_final.pt and trafo.pt.")
    indices = sorted({int(m.group(1)) for path in (folder / "flows").glob("flow*_final.*")
                      if (m := _LAYER_FILE.fullmatch(path.name))})
    if not indices:
        raise CheckpointError(f"{folder}/flows has no flowXX_final.pt: give the causal result folder of the "
                              "reference's train.py (its layer flows after their last epoch).")
    missing = sorted(set(range(indices[-1] + 1)) - set(indices))
    if missing:
        raise CheckpointError(f"{folder}/flows lacks flow{missing[0]:02d}_final.pt (has every layer been trained?).")
    files = {f"flow{i:02d}": _pick(folder / "flows" / f"flow{i:02d}_final") for i in indices}
    trafo = _pick(folder / "trafo")
    if trafo is None:
        raise CheckpointError(f"{folder} has no trafo.pt, the per-layer voxel maxima that the reference's generator.py "
                              "computes from the training file and writes there on its first run: run it once "
                              "(`python src/generator.py ENERGY_DIR CAUSAL_DIR -n 1`).")
    return {**files, "trafo": trafo}


def check_causal_states(states: dict) -> None:
    """CheckpointError unless `states` (name -> state_dict, as `causal_files` names them) are ConvFlow state_dicts
    and a NormLayer state."""
    for name, state in states.items():
        if name == "trafo":
            if set(state) != {NORM_KEY}:
                raise CheckpointError(f"trafo holds {sorted(state)[:3]}, not the voxel transform's NormLayer state "
                                      f"('{NORM_KEY}' alone).")
        elif f"{TRANSFORM_PREFIX}.1.log_scale" not in state or f"{_UNET}.encoder_blocks.0.1.weight" not in state:
            raise CheckpointError(f"{name}_final is not a ConvL2LFlow `ConvFlow` with ActNorm and a cyclic U-Net "
                                  f"(keys like {sorted(state)[:3]}).")


def check_energy_state(state: dict) -> None:
    """CheckpointError unless `state` is an nflows flow of MADE blocks and permutations (a reference `MAFlow`)."""
    flow_layout(state, TRANSFORM_PREFIX)


def _shape(state: dict, key: str, name: str) -> tuple:
    if key not in state:
        raise CheckpointError(f"{name}_final has no '{key}': not a layer flow of calozoo's L2LFlow form.")
    return tuple(np.shape(state[key]))


def _layer_sizes(flows: list[dict]) -> dict:
    """The layer flows' sizes from the tensor shapes of the last one (the others are checked when assigned)."""
    name, last = f"flow{len(flows) - 1:02d}", flows[-1]
    channels = _shape(last, f"{TRANSFORM_PREFIX}.1.log_scale", name)[0]
    outputs = _shape(last, f"{_UNET}.decoder_blocks.0.5.weight", name)[0]
    if outputs % (channels // 2) or (outputs // (channels // 2) + 1) % 3:
        raise CheckpointError(f"{name}_final's U-Net has {outputs} outputs, not (3 K - 1) per transformed channel.")
    levels = sorted({int(m.group(1)) for key in last if (m := re.match(rf"{re.escape(_UNET)}\.downs\.(\d+)\.", key))})
    squeeze = list(_shape(last, "embedding_net.5.weight", name)[2:])
    if squeeze[0] * squeeze[1] != channels:
        raise CheckpointError(f"{name}_final's embedding squeezes by {squeeze} but its flow has {channels} channels.")
    blocks = 0
    while f"{TRANSFORM_PREFIX}.{3 * blocks + 1}.log_scale" in last:
        blocks += 1
    return {"num_blocks": blocks,
            "hidden": _shape(last, f"{_UNET}.encoder_blocks.0.1.weight", name)[0],
            "down_factors": [list(_shape(last, f"{_UNET}.downs.{level}.weight", name)[2:]) for level in levels],
            "squeeze": squeeze, "embedding_channels": _shape(last, "embedding_net.0.weight", name)[0],
            "previous_layers": _shape(last, "embedding_net.0.weight", name)[1] - 2,
            "num_bins": (outputs // (channels // 2) + 1) // 3}


def _check_layer_order(flows: list[dict], previous: int) -> None:
    """CheckpointError unless layer 0 alone has no context embedding and layer i takes min(previous, i) + 2 context
    channels (a file in the wrong place shows here)."""
    for layer, state in enumerate(flows):
        channels = np.shape(state["embedding_net.0.weight"])[1] if "embedding_net.0.weight" in state else None
        expected = min(previous, layer) + 2 if layer else None
        if channels != expected:
            has = "no context embedding" if channels is None else f"a context embedding of {channels} channels"
            wanted = "none" if expected is None else f"{expected} (min({previous}, {layer}) + 2)"
            raise CheckpointError(f"flow{layer:02d}_final has {has}; layer {layer}'s flow has {wanted} (are the "
                                  "files in layer order?).")


def _energy_sizes(state: dict, n_layers: int) -> dict:
    try:
        layout = flow_layout(state, TRANSFORM_PREFIX)
    except CheckpointError as error:
        raise CheckpointError(f"the energy flow checkpoint: {error}") from None
    if (layout.kind, layout.features, layout.context) != ("maf", n_layers, 1):
        raise CheckpointError(f"the energy flow checkpoint is a {layout.kind.upper()} with {layout.features} features "
                              f"and {layout.context} conditions; L2LFlow's energy flow is a MAF with {n_layers} and 1 "
                              "(is it a layer flow's file?).")
    if layout.steps[0][0] != "permutation" or layout.num_permutations != layout.num_blocks:
        raise CheckpointError("the energy flow checkpoint is not [Permutation, MADE] per block (the reference's "
                              "`permutation: random`).")
    return {"energy_hidden": layout.hidden, "energy_blocks": layout.num_blocks,
            "energy_made_hidden_blocks": layout.made_hidden_blocks, "energy_num_bins": layout.num_bins}


def l2lflow_config_from_checkpoints(base: dict, states: dict) -> tuple[dict, dict]:
    """The L2LFlow config that fits the reference state_dicts `states` (`layer_flows`: `causal_files` names ->
    state_dicts; `energy_flow`): `base` (the registered config) with the sizes read from the tensor shapes and the
    reference's forms (45 causal flows, `reference_forms`, `energy_input_permutation`).

    Returns:
        (config dict, the inferred entries). Raises CheckpointError where the shapes fit no L2LFlow of the dataset.
    """
    n_layers = L2LFlowConfig.from_dict(base).n_layers
    flows = [state for name, state in sorted(states["layer_flows"].items()) if name != "trafo"]
    if len(flows) != n_layers:
        raise CheckpointError(f"the causal folder has {len(flows)} layer flows; dataset {base['dataset']} has "
                              f"{n_layers} layers.")
    sizes = _layer_sizes(flows)
    _check_layer_order(flows, sizes["previous_layers"])
    inferred = {"layer_flows": "causal", "reference_forms": True, "energy_input_permutation": True,
                "previous_oldest_first": True, **sizes,
                **_energy_sizes(states["energy_flow"], n_layers)}
    return {**base, **inferred}, inferred


def l2lflow_from_checkpoints(config, states: dict) -> L2LFlow:
    """An L2LFlow (`L2LFlowConfig` or dict) with its flows and voxel maxima copied from the reference state_dicts."""
    config = L2LFlowConfig.from_dict(config) if isinstance(config, dict) else config
    try:
        model = L2LFlow(config)
    except ValueError as error:
        raise CheckpointError(f"the checkpoints' sizes fit no L2LFlow of dataset {config.dataset}: {error}") from None
    layers = states["layer_flows"]
    for layer, flow in enumerate(model.layer_flows):
        try:
            assign_conv_layer_flow(flow, layers[f"flow{layer:02d}"])
        except CheckpointError as error:
            raise CheckpointError(f"flow{layer:02d}_final: {error}") from None
    assign_permuted_maf(model.energy_flow, states["energy_flow"])
    maxima = np.asarray(layers["trafo"][NORM_KEY], np.float64).reshape(-1)
    if maxima.shape != (model.n_layers,) or not np.all(maxima > _NORM_ADDITION):
        raise CheckpointError(f"trafo's {NORM_KEY} must hold {model.n_layers} positive layer maxima; got shape "
                              f"{np.shape(layers['trafo'][NORM_KEY])}.")
    model.layer_maxima_gev.assign(maxima - _NORM_ADDITION)
    return model
