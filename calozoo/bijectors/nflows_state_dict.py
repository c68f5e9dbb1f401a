"""nflows state_dicts (a PyTorch checkpoint's tensors as numpy arrays) onto calozoo's MADE and autoregressive flows.

The mapping, checked against the reference code by tests/reference/:

- nflows' `MaskedLinear` keeps its raw weight (out, in) and its mask as separate tensors and multiplies them in
  `forward`; calozoo keeps the masked kernel (in, out). So kernel = (weight * mask)^T: `initial_layer`,
  `blocks.{j}.linear` and `final_layer`. The stored masks must equal calozoo's (nflows' sequential degrees).
- `context_layer`: kernel = weight^T, unmasked.
- The MADE output is feature-major on both sides, [K widths, K heights, K-1 slopes] per feature, unscaled.
- A `Permutation`'s `_permutation` is the permutation towards the base; calozoo also stores its inverse (argsort).
- A student block is nflows' `InverseTransform` around the autoregressive transform: its keys carry an extra
  `_transform.` before `autoregressive_net`.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

from calozoo.bijectors.made import MADE
from calozoo.errors import CheckpointError

__all__ = ["FLOW_PREFIX", "NflowsFlowLayout", "flow_layout", "made_arrays", "assign_made", "assign_flow"]

FLOW_PREFIX = "_transform._transforms"
_IGNORED = re.compile(r"_distribution\._log_z")  # nflows' StandardNormal constant, not a weight
# `degrees` (MaskedLinear's out degrees, a buffer of nflows 0.14) are implied by the masks, which are checked.
_MADE_KEY = re.compile(r"(initial_layer|context_layer|final_layer|blocks\.(\d+)\.linear)\.(weight|bias|mask|degrees)")


@dataclasses.dataclass(frozen=True)
class NflowsFlowLayout:
    """What a state_dict says about a flow of nflows MADE-RQS blocks and permutations, in CompositeTransform order.

    `steps` holds ("block", MADE key prefix) or ("permutation", key) per transform; `kind` is "maf" for plain
    autoregressive transforms (teacher, Flow-I) and "iaf" for `InverseTransform`-wrapped ones (student).
    """

    steps: tuple
    kind: str
    features: int
    context: int
    hidden: int
    made_hidden_blocks: int
    num_bins: int

    @property
    def num_blocks(self) -> int:
        """Autoregressive blocks in the flow."""
        return sum(1 for step, _ in self.steps if step == "block")

    @property
    def num_permutations(self) -> int:
        """Permutation layers in the flow."""
        return sum(1 for step, _ in self.steps if step == "permutation")

    def shapes(self) -> dict:
        """The sizes read from the tensor shapes, for messages and model cards."""
        return {"kind": self.kind, "features": self.features, "context": self.context, "hidden": self.hidden,
                "made_hidden_blocks": self.made_hidden_blocks, "num_bins": self.num_bins,
                "blocks": self.num_blocks, "permutations": self.num_permutations}


def _classify(index: int, keys: list[str], prefix: str) -> tuple[str, str, str]:
    """(step, key prefix, kind) of transform `index` from its keys."""
    head = f"{prefix}.{index}."
    rests = [k[len(head):] for k in keys]
    if rests == ["_permutation"]:
        return "permutation", f"{head}_permutation", ""
    for wrapper, kind in (("", "maf"), ("_transform.", "iaf")):
        net = f"{wrapper}autoregressive_net."
        if all(r.startswith(net) for r in rests):
            return "block", f"{head}{net[:-1]}", kind
    raise CheckpointError(f"transform {head[:-1]} is neither an nflows MADE block nor a permutation (keys "
                          f"{sorted(rests)[:3]}); only MAF/IAF-RQS blocks with permutations can be imported.")


def _transform_keys(state_dict: dict, prefix: str) -> dict[int, list[str]]:
    pattern = re.compile(rf"{re.escape(prefix)}\.(\d+)\.")
    grouped, stray = {}, []
    for key in state_dict:
        match = pattern.match(key)
        if match:
            grouped.setdefault(int(match.group(1)), []).append(key)
        elif not _IGNORED.fullmatch(key):
            stray.append(key)
    if not grouped:
        raise CheckpointError(f"no nflows transforms under '{prefix}.N' (keys like {sorted(state_dict)[:3]}); "
                              "expected the model_state_dict of a reference CaloFlow flow.")
    if stray:
        raise CheckpointError(f"unexpected keys outside the flow's transforms: {sorted(stray)[:3]}.")
    if sorted(grouped) != list(range(len(grouped))):
        raise CheckpointError(f"the transforms under '{prefix}' are not numbered 0..{len(grouped) - 1}.")
    return grouped


def _made_shapes(state_dict: dict, made_prefix: str) -> tuple[int, int, int, int, int]:
    """(features, context, hidden, hidden blocks, parameters per feature) of one MADE, checking its keys."""
    rests = {k[len(made_prefix) + 1:] for k in state_dict if k.startswith(made_prefix + ".")}
    unknown = sorted(r for r in rests if not _MADE_KEY.fullmatch(r))
    if unknown:
        raise CheckpointError(f"{made_prefix} has keys of MADE options calozoo does not implement (residual "
                              f"blocks, batch norm): {unknown[:3]}.")
    blocks = sorted({int(m.group(2)) for r in rests if (m := _MADE_KEY.fullmatch(r)) and m.group(2) is not None})
    needed = {f"{layer}.{part}" for layer in ["initial_layer", "final_layer"] + [f"blocks.{j}.linear" for j in blocks]
              for part in ("weight", "bias", "mask")}
    if needed - rests or blocks != list(range(len(blocks))):
        raise CheckpointError(f"{made_prefix} lacks {sorted(needed - rests)[:3] or 'consecutive blocks'}.")
    hidden, features = state_dict[f"{made_prefix}.initial_layer.weight"].shape
    context = state_dict[f"{made_prefix}.context_layer.weight"].shape[1] if "context_layer.weight" in rests else 0
    outputs = state_dict[f"{made_prefix}.final_layer.weight"].shape[0]
    if outputs % features:
        raise CheckpointError(f"{made_prefix}.final_layer has {outputs} outputs, not a multiple of its {features} "
                              "features.")
    return features, context, hidden, len(blocks), outputs // features


def flow_layout(state_dict: dict, prefix: str = FLOW_PREFIX) -> NflowsFlowLayout:
    """The structure of an nflows flow from its state_dict: blocks, permutations and sizes (all blocks alike)."""
    grouped = _transform_keys(state_dict, prefix)
    classified = [_classify(i, grouped[i], prefix) for i in range(len(grouped))]
    steps = tuple((step, key) for step, key, _ in classified)
    kinds = {kind for step, _, kind in classified if step == "block"}
    if len(kinds) != 1:
        raise CheckpointError(f"the flow under '{prefix}' mixes MAF and inverse-wrapped (IAF) blocks or has none.")
    shapes = {_made_shapes(state_dict, key) for step, key in steps if step == "block"}
    if len(shapes) != 1:
        raise CheckpointError(f"the MADE blocks under '{prefix}' differ in size: {sorted(shapes)}.")
    features, context, hidden, made_blocks, per_feature = shapes.pop()
    if per_feature % 3 != 2:
        raise CheckpointError(f"{per_feature} MADE outputs per feature fit no rational-quadratic spline (3K-1).")
    return NflowsFlowLayout(steps, kinds.pop(), features, context, hidden, made_blocks, (per_feature + 1) // 3)


def _masked_kernel(state_dict: dict, key: str, expected_mask: np.ndarray) -> np.ndarray:
    """(weight * mask)^T of an nflows MaskedLinear, after checking that its mask is calozoo's."""
    weight = np.asarray(state_dict[f"{key}.weight"], np.float64)
    mask = np.asarray(state_dict[f"{key}.mask"], np.float64)
    if mask.T.shape != expected_mask.shape or not np.array_equal(mask.T, expected_mask):
        raise CheckpointError(f"{key}.mask is not the mask of nflows' sequential degrees that calozoo builds "
                              "(was the MADE made with random_mask=True, or for other sizes?).")
    return (weight * mask).T


def made_arrays(made: MADE, state_dict: dict, prefix: str) -> dict[str, np.ndarray]:
    """The values of every variable of `made` (by attribute name) from the nflows MADE under `prefix`."""
    values = {"in_kernel": _masked_kernel(state_dict, f"{prefix}.initial_layer", made.in_kernel.mask.numpy()),
              "in_bias": state_dict[f"{prefix}.initial_layer.bias"],
              "out_kernel": _masked_kernel(state_dict, f"{prefix}.final_layer", made.out_kernel.mask.numpy()),
              "out_bias": state_dict[f"{prefix}.final_layer.bias"]}
    for j, kernel in enumerate(made.hidden_kernels):
        values[f"hidden_kernels/{j}"] = _masked_kernel(state_dict, f"{prefix}.blocks.{j}.linear", kernel.mask.numpy())
        values[f"hidden_biases/{j}"] = state_dict[f"{prefix}.blocks.{j}.linear.bias"]
    if made.context:
        values["ctx_kernel"] = np.asarray(state_dict[f"{prefix}.context_layer.weight"]).T
        values["ctx_bias"] = state_dict[f"{prefix}.context_layer.bias"]
    return {k: np.asarray(v, np.float64) for k, v in values.items()}


def _made_variables(made: MADE) -> dict:
    found = {"in_kernel": made.in_kernel, "in_bias": made.in_bias, "out_kernel": made.out_kernel,
             "out_bias": made.out_bias}
    for j, (kernel, bias) in enumerate(zip(made.hidden_kernels, made.hidden_biases)):
        found[f"hidden_kernels/{j}"], found[f"hidden_biases/{j}"] = kernel, bias
    if made.context:
        found["ctx_kernel"], found["ctx_bias"] = made.ctx_kernel, made.ctx_bias
    return found


def assign_made(made: MADE, state_dict: dict, prefix: str) -> None:
    """Copies the nflows MADE under `prefix` into `made` (shapes and masks checked)."""
    values = made_arrays(made, state_dict, prefix)
    for name, variable in _made_variables(made).items():
        if tuple(values[name].shape) != tuple(variable.shape):
            raise CheckpointError(f"{prefix}: {name} has shape {values[name].shape}; calozoo's MADE expects "
                                  f"{tuple(variable.shape)}.")
        variable.assign(values[name].astype(variable.dtype.as_numpy_dtype))


def _permutation(state_dict: dict, key: str, features: int) -> np.ndarray:
    permutation = np.asarray(state_dict[key]).astype(np.int64)
    if sorted(permutation.tolist()) != list(range(features)):
        raise CheckpointError(f"{key} is not a permutation of 0..{features - 1}.")
    return permutation


def _alternating(blocks: int, permutations: int) -> list[str]:
    """block, permutation, block, ... with `permutations` permutations (one after each of the first blocks)."""
    steps = []
    for k in range(blocks):
        steps += ["block", "permutation"] if k < permutations else ["block"]
    return steps


def assign_flow(flow, state_dict: dict, prefix: str = FLOW_PREFIX) -> NflowsFlowLayout:
    """Copies an nflows flow (MAF or inverse-wrapped IAF blocks, permutations) into an `AutoregressiveRQSFlow`.

    Returns the layout read from the state_dict. Raises CheckpointError where the two do not fit.
    """
    layout = flow_layout(state_dict, prefix)
    if layout.kind != flow.kind:
        raise CheckpointError(f"the checkpoint's flow has {layout.kind.upper()} blocks; this model's has "
                              f"{flow.kind.upper()} blocks (teacher = MAF, student = IAF).")
    blocks = [key for step, key in layout.steps if step == "block"]
    permutations = [key for step, key in layout.steps if step == "permutation"]
    if [step for step, _ in layout.steps] != _alternating(len(flow.mades), len(flow.permutations)):
        raise CheckpointError(f"the checkpoint's flow has {layout.num_blocks} blocks and {layout.num_permutations} "
                              f"permutations; this model alternates {len(flow.mades)} blocks with "
                              f"{len(flow.permutations)} permutations.")
    for made, key in zip(flow.mades, blocks):
        assign_made(made, state_dict, key)
    for permutation, key in zip(flow.permutations, permutations):
        values = _permutation(state_dict, key, flow.features)
        permutation.permutation.assign(values)
        permutation.inverse_permutation.assign(np.argsort(values))
    return layout
