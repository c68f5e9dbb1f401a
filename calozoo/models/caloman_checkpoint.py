"""CaloMan DS1 models from the reference PyTorch code's state_dicts (numpy arrays, reference keys).

The reference (layer6ai-labs/calo-man, `main.py`) saves each of its three steps on its own, as the
`module_state_dict` of a checkpoint in `<run>/checkpoints/`: the EPL flow (`epl_nf_{best_valid,latest}.pt`), the
generalised autoencoder (`gae_vae_*.pt`) and the DE flow (`de_nf_*.pt`). The mapping, checked against the reference
code by tests/reference/test_caloman_reference.py:

- Both flows are a `NormalizingFlow` around nflows' 'simple_nsf': `transform._transforms.{2k}` is an RQS coupling
  layer (its `identity_features` buffer must be calozoo's mask) with a `transform_net` ResidualNet (`initial_layer`,
  `blocks.{j}.linear_layers.{0,1}`, `blocks.{j}.context_layer`, `final_layer`); `transform._transforms.{2k+1}` holds
  `_transforms.0._permutation` (towards the base, as calozoo's) and the LULinear `_transforms.1` (`lower_entries`,
  `upper_entries` in `np.tril_indices` / `np.triu_indices` order as calozoo's, `unconstrained_upper_diag`, `bias`).
  The same tensors appear again under `_nflow._transform.`, and are ignored there.
- The VAE's encoder and decoder are `ParallelMLP`s (`y_layers.{k}.0` the label tower, `x_layers.{k}.0` and the last,
  plain `x_layers.{n}`), or `MLP`s (`net.{2k}`) without labels. Every Linear: kernel = weight^T.
- Each module's `data_min` / `data_max` buffers are the training range: the flows divide their inputs by
  max(|data_min|, |data_max|) (calozoo's `energy_scale`, `latent_scale`); the GAE's are `voxel_range`.
"""

from __future__ import annotations

import re

import numpy as np

from calozoo.data.geometry import load_geometry
from calozoo.errors import CheckpointError
from calozoo.models.caloman import CaloMan, CaloManConfig

__all__ = ["REFERENCE_REPOSITORY", "REFERENCE_COMMIT", "FLOW_PREFIX", "assign_linear", "assign_residual_net",
           "assign_coupling_flow", "assign_mlp", "abs_data_max", "check_flow_state", "check_autoencoder_state",
           "caloman_config_from_state_dicts", "caloman_from_state_dicts"]

REFERENCE_REPOSITORY = "layer6ai-labs/calo-man"
REFERENCE_COMMIT = "5547f23b28dde265b4ecfcace334629fd643f2aa"
FLOW_PREFIX = "transform._transforms"


def _array(state: dict, key: str) -> np.ndarray:
    if key not in state:
        raise CheckpointError(f"the state_dict has no '{key}' (is it a CaloMan module of this model's sizes?).")
    return np.asarray(state[key], np.float64)


def _assign(variable, value: np.ndarray, key: str) -> None:
    if tuple(value.shape) != tuple(variable.shape):
        raise CheckpointError(f"{key} has shape {value.shape}; calozoo expects {tuple(variable.shape)}.")
    variable.assign(value.astype(variable.dtype.as_numpy_dtype))


def assign_linear(layer, state: dict, prefix: str) -> None:
    """A torch `nn.Linear` (`prefix.weight` (out, in), `prefix.bias`) into a calozoo (kernel (in, out), bias) pair."""
    kernel, bias = layer
    _assign(kernel, _array(state, f"{prefix}.weight").T, f"{prefix}.weight")
    _assign(bias, _array(state, f"{prefix}.bias"), f"{prefix}.bias")


def assign_residual_net(net, state: dict, prefix: str) -> None:
    """An nflows ResidualNet (no batch norm) into a calozoo `ResidualNet`."""
    assign_linear(net.initial, state, f"{prefix}.initial_layer")
    for j, block in enumerate(net.blocks):
        assign_linear(block["first"], state, f"{prefix}.blocks.{j}.linear_layers.0")
        assign_linear(block["second"], state, f"{prefix}.blocks.{j}.linear_layers.1")
        if "gate" in block:
            assign_linear(block["gate"], state, f"{prefix}.blocks.{j}.context_layer")
    assign_linear(net.final, state, f"{prefix}.final_layer")


def _flow_steps(state: dict, prefix: str) -> int:
    """The number of transforms directly under `prefix` (coupling layers and permutation+LU pairs)."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.")
    return len({int(m.group(1)) for key in state if (m := pattern.match(key))})


def assign_coupling_flow(flow, state: dict, prefix: str = FLOW_PREFIX) -> None:
    """An nflows 'simple_nsf' (coupling, [permutation, LULinear]) x L into a calozoo `CouplingRQSFlow`."""
    steps = _flow_steps(state, prefix)
    if steps != 2 * len(flow.couplings):
        raise CheckpointError(f"the flow under '{prefix}' has {steps} transforms; this model's has "
                              f"{2 * len(flow.couplings)} (coupling, permutation + LU per layer).")
    for k, (coupling, permutation, linear) in enumerate(zip(flow.couplings, flow.permutations, flow.linears)):
        layer, mixing = f"{prefix}.{2 * k}", f"{prefix}.{2 * k + 1}._transforms"
        identity = np.asarray(_array(state, f"{layer}.identity_features"), np.int64)
        if not np.array_equal(identity, coupling.identity_index.numpy()):
            raise CheckpointError(f"{layer} keeps features {identity.tolist()} unchanged; calozoo's layer {k} keeps "
                                  f"{coupling.identity_index.numpy().tolist()} (alternating masks, even first).")
        assign_residual_net(coupling.net, state, f"{layer}.transform_net")
        order = np.asarray(_array(state, f"{mixing}.0._permutation"), np.int64)
        if sorted(order.tolist()) != list(range(flow.features)):
            raise CheckpointError(f"{mixing}.0._permutation is not a permutation of 0..{flow.features - 1}.")
        permutation.permutation.assign(order)
        permutation.inverse_permutation.assign(np.argsort(order))
        for name in ("lower_entries", "upper_entries", "unconstrained_upper_diag", "bias"):
            _assign(getattr(linear, name), _array(state, f"{mixing}.1.{name}"), f"{mixing}.1.{name}")


def assign_mlp(network, state: dict, prefix: str) -> None:
    """A reference `ParallelMLP` (or `MLP`) into calozoo's `ParallelMLP` (or `MLP`)."""
    if hasattr(network, "label_layers"):
        for k, layer in enumerate(network.label_layers):
            assign_linear(layer, state, f"{prefix}.y_layers.{k}.0")
        last = len(network.x_layers) - 1
        for k, layer in enumerate(network.x_layers):
            assign_linear(layer, state, f"{prefix}.x_layers.{k}" + ("" if k == last else ".0"))
    else:
        for k, layer in enumerate(network.layers):
            assign_linear(layer, state, f"{prefix}.net.{2 * k}")


def abs_data_max(state: dict) -> float:
    """max(|data_min|, |data_max|): the reference's `scale_data` divisor of a module."""
    return float(max(abs(_array(state, "data_min")), abs(_array(state, "data_max"))))


def _flow_sizes(state: dict, name: str) -> dict:
    """{hidden, layers, blocks, num_bins} of a reference 'simple_nsf' state_dict."""
    layers = _flow_steps(state, FLOW_PREFIX) // 2
    net = f"{FLOW_PREFIX}.0.transform_net"
    hidden = _array(state, f"{net}.initial_layer.weight").shape[0]
    blocks = len({int(m.group(1)) for key in state if (m := re.match(rf"{re.escape(net)}\.blocks\.(\d+)\.", key))})
    outputs = _array(state, f"{net}.final_layer.weight").shape[0]
    transformed = len(_array(state, f"{FLOW_PREFIX}.0.transform_features"))
    if layers < 1 or outputs % transformed or (outputs // transformed) % 3 != 2:
        raise CheckpointError(f"the {name} state_dict is not an nflows 'simple_nsf' with linear-tail RQS couplings.")
    return {f"{name}_hidden": hidden, f"{name}_layers": layers, f"{name}_blocks": blocks,
            "num_bins": (outputs // transformed + 1) // 3}


def _layer_shapes(state: dict, part: str, use_labels: bool) -> list[tuple]:
    """(out, in) of the x tower's Linear layers of the encoder or decoder, in order."""
    pattern = rf"{part}\.x_layers\.(\d+)\.(?:0\.)?weight" if use_labels else rf"{part}\.net\.(\d+)\.weight"
    found = {}
    for key, value in state.items():
        match = re.fullmatch(pattern, key)
        if match:
            found[int(match.group(1))] = np.shape(value)
    return [found[index] for index in sorted(found)]


def _gae_sizes(state: dict) -> dict:
    """{gae, latent_dim, encoder_hidden, decoder_hidden, use_labels} of a reference VAE / AE state_dict."""
    use_labels = any(key.startswith("encoder.y_layers.") for key in state)
    encoder, decoder = _layer_shapes(state, "encoder", use_labels), _layer_shapes(state, "decoder", use_labels)
    if len(encoder) < 2 or len(decoder) < 2:
        raise CheckpointError("the GAE state_dict has no reference MLP / ParallelMLP encoder and decoder with hidden "
                              "layers.")
    latent = decoder[0][1] // (2 if use_labels else 1)
    return {"gae": "vae" if encoder[-1][0] == 2 * latent else "ae", "latent_dim": int(latent),
            "encoder_hidden": [int(out) for out, _ in encoder[:-1]],
            "decoder_hidden": [int(out) for out, _ in decoder[:-1]], "use_labels": use_labels}


def check_flow_state(state: dict) -> dict:
    """The sizes of a reference EPL or DE flow state_dict; CheckpointError if it is none."""
    _array(state, "data_max")
    return _flow_sizes(state, "flow")


def check_autoencoder_state(state: dict) -> dict:
    """The sizes of a reference VAE / AE state_dict; CheckpointError if it is none."""
    _array(state, "data_max")
    return _gae_sizes(state)


def caloman_config_from_state_dicts(base: dict, epl_state: dict, gae_state: dict, de_state: dict) -> tuple[dict, dict]:
    """The CaloMan config that fits the three state_dicts: `base` with the sizes read from the tensor shapes.

    Returns:
        (config dict, the inferred entries). Raises CheckpointError where the shapes fit no CaloMan of the dataset.
    """
    epl, de = _flow_sizes(epl_state, "epl"), _flow_sizes(de_state, "de")
    if epl["num_bins"] != de["num_bins"]:
        raise CheckpointError(f"the EPL flow has {epl['num_bins']}-bin splines and the DE flow {de['num_bins']}-bin "
                              "ones; calozoo's CaloMan uses one bin count for both.")
    inferred = {**epl, **de, **_gae_sizes(gae_state)}
    config = {**base, **inferred}
    geometry = load_geometry(config.get("dataset", CaloManConfig.dataset))
    features = len(_array(epl_state, f"{FLOW_PREFIX}.0.identity_features")) + len(
        _array(epl_state, f"{FLOW_PREFIX}.0.transform_features"))
    if features != geometry.n_layers:
        raise CheckpointError(f"the EPL flow models {features} layer energies; dataset {config.get('dataset')} has "
                              f"{geometry.n_layers} layers.")
    return config, inferred


def caloman_from_state_dicts(config: dict, epl_state: dict, gae_state: dict, de_state: dict) -> CaloMan:
    """A CaloMan with the reference weights and scaling buffers (`config` from `caloman_config_from_state_dicts`)."""
    model = CaloMan(CaloManConfig.from_dict(config))
    assign_coupling_flow(model.energy_flow, epl_state)
    assign_coupling_flow(model.latent_flow, de_state)
    assign_mlp(model.autoencoder.encoder, gae_state, "encoder")
    assign_mlp(model.autoencoder.decoder, gae_state, "decoder")
    model.energy_scale.assign(abs_data_max(epl_state))
    model.latent_scale.assign(abs_data_max(de_state))
    model.voxel_range.assign([float(_array(gae_state, "data_min")), float(_array(gae_state, "data_max"))])
    return model
