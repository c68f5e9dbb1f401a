"""CaloPointFlow II state_dicts (the reference's PyTorch module, zuko 1.1.0 flows; tensors as numpy arrays) onto
calozoo's CaloPointFlow pieces: the preprocessing statistics, the encoder, the latent flow's couplings and the point
flow's DeepSet couplings. Checked against the reference code by tests/reference/test_calopointflow_reference.py.

The mapping, piece by piece (keys as the reference module saves them):

- A zuko `MLP` (or torch `Sequential` of Linear and activation layers) keeps Linear layers at the even indices
  `{prefix}.{0, 2, 4, ...}` with weight (out, in); calozoo's `MLP` keeps (kernel (in, out), bias) per layer, so
  kernel = weight^T. Only the layer sizes and order matter; both sides put the activation between layers and none
  after the last (the encoder's GELU after its last latent layer is part of `PointEncoder`).
- Encoder: `encoder.point_net` -> `point_net`, `encoder.reduce_net` -> `latent_net`, and the two heads
  `encoder.{mu,logvar}_mapping` side by side -> `heads_kernel` / `heads_bias` ([mu | log sigma^2]).
- A zuko coupling (`GeneralCouplingTransform`, the latent flow's NICE layers): its boolean buffer `mask` marks the
  *identity* features (zuko's x_a), which calozoo's `identity=` takes as indices. The hypernetwork reads [x_a, c]
  and writes, per transformed feature in index order, [K widths, K heights, K - 1 derivatives]: the same layout as
  calozoo's conditioner with `parametrization="zuko"`, so its layers map one to one.
- A DeepSet coupling (the reference's `DeepSetTransform`): `deep_set.point_net` -> `point_net` (phi, before the
  mean over the shower), `deep_set.reduce_net` -> `summary_net` (rho, after it). Its hypernetwork reads
  [x_a, summary, c] while calozoo's conditioner reads [x_a, c, summary], so the columns of the first weight are
  reordered. The reference's `point_net_dims` [p_1, ..., p_n] are calozoo's `set_hidden` (p_1 ... p_{n-1}) and
  `set_width` p_n; its `reduce_net_dims` [r_1, ..., r_m] are `summary_hidden` (r_1 ... r_{m-1}) and
  `summary_dim` r_m.
- Preprocessing (`Normalize` keeps a variance, calozoo a standard deviation, std = sqrt(var)):
  `normalize_e_in` -> `incident_standardizer`; `normalize_nnz` and `normalize_e_sum` -> the two columns of
  `conditional_standardizer`; `min_max_scale_vals` -> `value_min_max`; `normalize_vals` -> `value_standardizer`;
  `dequantize_coords.{cdf,pdf}_{i}` (the left edge and the width of each bin) -> `dequantizer.cdfs[i]`, the
  size + 1 knots [cdf_0, ..., cdf_{n-1}, cdf_{n-1} + pdf_{n-1}].
- The conditional flow (zuko NSF): transform k at `conditional_flow.transform.transforms.{k}` keeps its feature
  `order` and a MaskedMLP `hyper.{0, 2, 4, ...}` with weight (out, in) and boolean `mask` (out, in) on [x, c];
  calozoo's `ZukoMADE` (network "zuko", built with the same order) derives the same masks, which are checked, and
  takes kernel = weight^T unmasked (the mask multiplies in every product, as in zuko).
- Whole-model import (calozoo.models.calopointflow_checkpoint) puts the orders and the couplings' identity features
  into the config (`conditional_orders`, `latent_identity`, `point_identity`).
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf

from calozoo.bijectors.deepset_coupling import DeepSetCoupling
from calozoo.bijectors.rq_coupling import RQSCoupling
from calozoo.bijectors.rq_spline import SplineSettings
from calozoo.errors import CheckpointError

__all__ = ["linear_layers", "assign_mlp", "coupling_prefixes", "assign_encoder", "identity_features",
           "coupling_from_state_dict", "assign_coupling", "deepset_coupling_from_state_dict",
           "assign_deepset_coupling", "assign_preprocessing", "calopointflow_sizes", "assign_zuko_made",
           "assign_conditional_flow", "transform_orders", "coupling_identities"]


def _array(state_dict: dict, key: str) -> np.ndarray:
    if key not in state_dict:
        raise CheckpointError(f"the state_dict has no '{key}' (keys like {sorted(state_dict)[:3]}).")
    return np.asarray(state_dict[key], np.float64)


def linear_layers(state_dict: dict, prefix: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel (in, out), bias) of every Linear layer `{prefix}.{i}.weight/bias` of a Sequential, in order."""
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.weight")
    indices = sorted(int(m.group(1)) for key in state_dict if (m := pattern.fullmatch(key)))
    if not indices:
        raise CheckpointError(f"no Linear layers under '{prefix}' (keys like {sorted(state_dict)[:3]}).")
    layers = [(_array(state_dict, f"{prefix}.{i}.weight").T, _array(state_dict, f"{prefix}.{i}.bias"))
              for i in indices]
    for (kernel, _), (following, _) in zip(layers[:-1], layers[1:]):
        if kernel.shape[1] != following.shape[0]:
            raise CheckpointError(f"the Linear layers under '{prefix}' do not chain: {kernel.shape[1]} outputs "
                                  f"feed {following.shape[0]} inputs.")
    return layers


def assign_mlp(mlp, layers) -> None:
    """Assigns (kernel, bias) pairs to a calozoo `MLP`, checking every shape."""
    if len(layers) != len(mlp.layers):
        raise CheckpointError(f"{mlp.name} has {len(mlp.layers)} layers; the state_dict has {len(layers)}.")
    for (kernel, bias), (kernel_variable, bias_variable) in zip(layers, mlp.layers):
        if kernel.shape != tuple(kernel_variable.shape) or bias.shape != tuple(bias_variable.shape):
            raise CheckpointError(f"{mlp.name}: a layer of shape {kernel.shape} does not fit "
                                  f"{tuple(kernel_variable.shape)}.")
        kernel_variable.assign(kernel)
        bias_variable.assign(bias)


def coupling_prefixes(state_dict: dict, flow: str) -> list[str]:
    """`{flow}.transform.transforms.{k}` for k = 0, 1, ... (the couplings in density order)."""
    pattern = re.compile(rf"{re.escape(flow)}\.transform\.transforms\.(\d+)\.")
    indices = sorted({int(m.group(1)) for key in state_dict if (m := pattern.match(key))})
    if indices != list(range(len(indices))) or not indices:
        raise CheckpointError(f"no couplings numbered 0, 1, ... under '{flow}.transform.transforms'.")
    return [f"{flow}.transform.transforms.{k}" for k in indices]


def assign_encoder(encoder, state_dict: dict, prefix: str = "encoder") -> None:
    """The reference `Encoder` (DeepSets with mu / log-variance heads) onto a calozoo `PointEncoder`."""
    assign_mlp(encoder.point_net, linear_layers(state_dict, f"{prefix}.point_net"))
    assign_mlp(encoder.latent_net, linear_layers(state_dict, f"{prefix}.reduce_net"))
    heads = [(_array(state_dict, f"{prefix}.{h}_mapping.weight").T, _array(state_dict, f"{prefix}.{h}_mapping.bias"))
             for h in ("mu", "logvar")]
    kernel, bias = np.concatenate([heads[0][0], heads[1][0]], 1), np.concatenate([heads[0][1], heads[1][1]])
    if kernel.shape != tuple(encoder.heads_kernel.shape):
        raise CheckpointError(f"the encoder heads {kernel.shape} do not fit {tuple(encoder.heads_kernel.shape)}.")
    encoder.heads_kernel.assign(kernel)
    encoder.heads_bias.assign(bias)


def identity_features(state_dict: dict, prefix: str) -> np.ndarray:
    """The identity features (zuko's x_a, `mask` True) of the coupling at `prefix`, as sorted indices."""
    return np.flatnonzero(np.asarray(state_dict[f"{prefix}.mask"], bool))


def _conditioner_sizes(layers, prefix: str) -> tuple[int, int]:
    """(hidden width, hidden layers) of a hypernetwork whose hidden layers all have one width."""
    widths = {kernel.shape[1] for kernel, _ in layers[:-1]}
    if len(widths) != 1:
        raise CheckpointError(f"{prefix}.hyper has hidden widths {sorted(widths)}; calozoo's conditioner has one.")
    return widths.pop(), len(layers) - 1


def _bins(outputs: int, transformed: int, prefix: str) -> int:
    per_feature, rest = divmod(outputs, transformed)
    if rest or (per_feature + 1) % 3:
        raise CheckpointError(f"{prefix}.hyper has {outputs} outputs, not 3K - 1 per transformed feature.")
    return (per_feature + 1) // 3


def coupling_from_state_dict(state_dict: dict, prefix: str, tail_bound: float = 5.0, slope: float = 1e-4,
                             dtype=tf.float64, name: str | None = None) -> RQSCoupling:
    """A calozoo `RQSCoupling` (zuko spline, MLP conditioner) with the sizes, mask and weights of the zuko coupling
    at `prefix` (one layer of the reference's latent flow)."""
    identity = identity_features(state_dict, prefix)
    features = len(np.asarray(state_dict[f"{prefix}.mask"]))
    layers = linear_layers(state_dict, f"{prefix}.hyper")
    hidden, num_layers = _conditioner_sizes(layers, prefix)
    spline = SplineSettings(_bins(layers[-1][0].shape[1], features - len(identity), prefix), tail_bound, 0.0, 0.0,
                            0.0, parametrization="zuko", slope=slope)
    coupling = RQSCoupling(features, 0, layers[0][0].shape[0] - len(identity), hidden, num_layers, spline, dtype=dtype,
                           name=name, identity=identity, conditioner="mlp")
    assign_coupling(coupling, state_dict, prefix)
    return coupling


def assign_coupling(coupling: RQSCoupling, state_dict: dict, prefix: str) -> None:
    """A zuko coupling's hypernetwork onto a calozoo `RQSCoupling` built with the same identity features."""
    identity = identity_features(state_dict, prefix)
    if not np.array_equal(identity, coupling.identity_index.numpy()):
        raise CheckpointError(f"{prefix} keeps features {identity.tolist()}; the calozoo coupling keeps "
                              f"{coupling.identity_index.numpy().tolist()}.")
    assign_mlp(coupling.net, linear_layers(state_dict, f"{prefix}.hyper"))


def _deepset_layers(state_dict: dict, prefix: str) -> tuple[list, list, list, int, int]:
    """(hyper, phi, rho layers, identity count, context) of a reference DeepSet coupling."""
    hyper = linear_layers(state_dict, f"{prefix}.hyper")
    phi = linear_layers(state_dict, f"{prefix}.deep_set.point_net")
    rho = linear_layers(state_dict, f"{prefix}.deep_set.reduce_net")
    n_identity = len(identity_features(state_dict, prefix))
    context = hyper[0][0].shape[0] - n_identity - rho[-1][0].shape[1]
    if context < 0 or phi[0][0].shape[0] != n_identity or rho[0][0].shape[0] != phi[-1][0].shape[1]:
        raise CheckpointError(f"{prefix} is not a DeepSet coupling of its {n_identity} identity features.")
    return hyper, phi, rho, n_identity, context


def deepset_coupling_from_state_dict(state_dict: dict, prefix: str, tail_bound: float = 5.0, slope: float = 1e-4,
                                     dtype=tf.float64, name: str | None = None) -> DeepSetCoupling:
    """A calozoo `DeepSetCoupling` with the sizes, mask and weights of the reference's `DeepSetTransform` at
    `prefix` (one layer of its point flow)."""
    hyper, phi, rho, n_identity, context = _deepset_layers(state_dict, prefix)
    features = len(np.asarray(state_dict[f"{prefix}.mask"]))
    hidden, num_layers = _conditioner_sizes(hyper, prefix)
    spline = SplineSettings(_bins(hyper[-1][0].shape[1], features - n_identity, prefix), tail_bound, 0.0, 0.0, 0.0,
                            parametrization="zuko", slope=slope)
    coupling = DeepSetCoupling(features, identity_features(state_dict, prefix), context, hidden, num_layers, spline,
                               [k.shape[1] for k, _ in phi[:-1]], phi[-1][0].shape[1],
                               [k.shape[1] for k, _ in rho[:-1]], rho[-1][0].shape[1], dtype=dtype, name=name)
    assign_deepset_coupling(coupling, state_dict, prefix)
    return coupling


def assign_deepset_coupling(coupling: DeepSetCoupling, state_dict: dict, prefix: str) -> None:
    """A reference `DeepSetTransform` onto a calozoo `DeepSetCoupling` built with the same identity features: phi,
    rho, and the hypernetwork with its input columns reordered from [x_a, summary, c] to [x_a, c, summary]."""
    hyper, phi, rho, n_identity, context = _deepset_layers(state_dict, prefix)
    identity = identity_features(state_dict, prefix)
    if not np.array_equal(identity, coupling.identity_index.numpy()) or context != coupling.context:
        raise CheckpointError(f"{prefix} keeps features {identity.tolist()} with context {context}; the calozoo "
                              f"coupling keeps {coupling.identity_index.numpy().tolist()} with {coupling.context}.")
    summary = rho[-1][0].shape[1]
    rows = np.concatenate([np.arange(n_identity), n_identity + summary + np.arange(context),
                           n_identity + np.arange(summary)])
    hyper[0] = (hyper[0][0][rows], hyper[0][1])
    assign_mlp(coupling.point_net, phi)
    assign_mlp(coupling.summary_net, rho)
    assign_mlp(coupling.conditioner, hyper)


def transform_orders(state_dict: dict, flow: str = "conditional_flow") -> list[list[int]]:
    """The feature order of every zuko autoregressive transform of `flow`, in density order."""
    orders = [np.asarray(state_dict.get(f"{prefix}.order", []), np.int64).tolist()
              for prefix in coupling_prefixes(state_dict, flow)]
    for prefix, order in zip(coupling_prefixes(state_dict, flow), orders):
        if sorted(order) != list(range(len(order))) or not order:
            raise CheckpointError(f"{prefix}.order is {order}, not a permutation of the features.")
    return orders


def coupling_identities(state_dict: dict, flow: str) -> list[list[int]]:
    """The identity features of every coupling of `flow` (zuko's `mask`), in density order."""
    return [identity_features(state_dict, prefix).tolist() for prefix in coupling_prefixes(state_dict, flow)]


def assign_zuko_made(made, state_dict: dict, prefix: str) -> None:
    """A zuko `MaskedAutoregressiveTransform` at `prefix` onto a calozoo `ZukoMADE` built with the same order and
    sizes; its masks must be the ones calozoo derives."""
    order = np.asarray(state_dict.get(f"{prefix}.order", []), np.int64)
    if not np.array_equal(order, made.order):
        raise CheckpointError(f"{prefix}.order is {order.tolist()}; the calozoo network has {made.order.tolist()}.")
    layers = linear_layers(state_dict, f"{prefix}.hyper")
    if len(layers) != len(made.net.kernels):
        raise CheckpointError(f"{prefix}.hyper has {len(layers)} layers; the calozoo network has "
                              f"{len(made.net.kernels)}.")
    indices = sorted(int(key.split(".")[-2]) for key in state_dict
                     if key.startswith(f"{prefix}.hyper.") and key.endswith(".weight"))
    for index, (kernel, bias), variable, bias_variable, mask in zip(indices, layers, made.net.kernels,
                                                                     made.net.biases, made.net.masks):
        stored = np.asarray(state_dict[f"{prefix}.hyper.{index}.mask"], bool).T
        if kernel.shape != tuple(variable.shape) or not np.array_equal(stored, mask.numpy() > 0):
            raise CheckpointError(f"{prefix}.hyper.{index}: shape {kernel.shape} or mask differs from zuko's "
                                  f"MaskedMLP of the calozoo network {tuple(variable.shape)}.")
        variable.assign(kernel)
        bias_variable.assign(bias)


def assign_conditional_flow(flow, state_dict: dict, prefix: str = "conditional_flow") -> None:
    """The reference's zuko NSF onto an `AutoregressiveRQSFlow` with network "zuko" (standard normal base)."""
    prefixes = coupling_prefixes(state_dict, prefix)
    if len(prefixes) != len(flow.mades):
        raise CheckpointError(f"{prefix} has {len(prefixes)} transforms; the calozoo flow has {len(flow.mades)}.")
    loc, scale = _array(state_dict, f"{prefix}.base._0"), _array(state_dict, f"{prefix}.base._1")
    if np.any(loc != 0.0) or np.any(scale != 1.0):
        raise CheckpointError(f"{prefix}.base is not a standard normal (loc {loc.tolist()}, scale "
                              f"{scale.tolist()}).")
    for made, transform in zip(flow.mades, prefixes):
        assign_zuko_made(made, state_dict, transform)


def _conditional_sizes(state_dict: dict) -> dict:
    """`CaloPointFlowConfig` sizes of the reference's conditional flow (zuko NSF on 2 features, context 1)."""
    prefixes = coupling_prefixes(state_dict, "conditional_flow")
    hyper = linear_layers(state_dict, f"{prefixes[0]}.hyper")
    hidden, layers = _conditioner_sizes(hyper, prefixes[0])
    if hyper[0][0].shape[0] != 3:
        raise CheckpointError(f"{prefixes[0]}.hyper reads {hyper[0][0].shape[0]} inputs; CaloPointFlow's conditional "
                              "flow reads 2 conditionals and 1 context.")
    return {"conditional_transforms": len(prefixes), "conditional_hidden": hidden, "conditional_layers": layers,
            "conditional_bins": _bins(hyper[-1][0].shape[1], 2, prefixes[0]), "conditional_network": "zuko"}


def assign_preprocessing(model, state_dict: dict) -> None:
    """The reference's frozen statistics onto a calozoo CaloPointFlow (variant II) built for the same grid."""
    def normalize(name):
        return _array(state_dict, f"{name}.mean"), np.sqrt(_array(state_dict, f"{name}.var"))

    mean, std = normalize("normalize_e_in")
    model.incident_standardizer.mean.assign(mean)
    model.incident_standardizer.std.assign(std)
    (nnz_mean, nnz_std), (sum_mean, sum_std) = normalize("normalize_nnz"), normalize("normalize_e_sum")
    model.conditional_standardizer.mean.assign(np.concatenate([nnz_mean, sum_mean]))
    model.conditional_standardizer.std.assign(np.concatenate([nnz_std, sum_std]))
    model.value_min_max.minimum.assign(_array(state_dict, "min_max_scale_vals.min"))
    model.value_min_max.maximum.assign(_array(state_dict, "min_max_scale_vals.max"))
    mean, std = normalize("normalize_vals")
    model.value_standardizer.mean.assign(mean)
    model.value_standardizer.std.assign(std)
    for i, cdf in enumerate(model.dequantizer.cdfs):
        left, width = _array(state_dict, f"dequantize_coords.cdf_{i}"), _array(state_dict, f"dequantize_coords.pdf_{i}")
        if left.shape[0] + 1 != cdf.shape[0]:
            raise CheckpointError(f"dequantize_coords.cdf_{i} has {left.shape[0]} bins; calozoo's grid has "
                                  f"{cdf.shape[0] - 1}.")
        cdf.assign(np.concatenate([left, left[-1:] + width[-1:]]))


def calopointflow_sizes(state_dict: dict, conditional: bool = False) -> dict:
    """The `CaloPointFlowConfig` sizes of the encoder, latent flow and point flow that the state_dict implies, and
    with `conditional` those of the conditional flow (the masks and orders are not read here)."""
    point = linear_layers(state_dict, "encoder.point_net")
    latent = linear_layers(state_dict, "encoder.reduce_net")
    latent_couplings = coupling_prefixes(state_dict, "latent_flow")
    point_couplings = coupling_prefixes(state_dict, "point_flow")
    latent_hyper = linear_layers(state_dict, f"{latent_couplings[0]}.hyper")
    latent_hidden, latent_layers = _conditioner_sizes(latent_hyper, latent_couplings[0])
    hyper, phi, rho, n_identity, _ = _deepset_layers(state_dict, point_couplings[0])
    point_hidden, point_layers = _conditioner_sizes(hyper, point_couplings[0])
    latent_dim = _array(state_dict, "encoder.mu_mapping.weight").shape[0]
    latent_transformed = latent_dim - len(identity_features(state_dict, latent_couplings[0]))
    return {
        **(_conditional_sizes(state_dict) if conditional else {}),
        "latent_dim": latent_dim,
        "encoder_point_hidden": [k.shape[1] for k, _ in point[:-1]], "encoder_width": point[-1][0].shape[1],
        "encoder_latent_hidden": [k.shape[1] for k, _ in latent[:-1]], "encoder_latent_width": latent[-1][0].shape[1],
        "latent_transforms": len(latent_couplings), "latent_hidden": latent_hidden, "latent_layers": latent_layers,
        "latent_bins": _bins(latent_hyper[-1][0].shape[1], latent_transformed, latent_couplings[0]),
        "point_transforms": len(point_couplings), "point_hidden": point_hidden, "point_layers": point_layers,
        "point_bins": _bins(hyper[-1][0].shape[1], 3 - n_identity, point_couplings[0]),
        "set_hidden": [k.shape[1] for k, _ in phi[:-1]], "set_width": phi[-1][0].shape[1],
        "summary_hidden": [k.shape[1] for k, _ in rho[:-1]], "summary_dim": rho[-1][0].shape[1],
    }
