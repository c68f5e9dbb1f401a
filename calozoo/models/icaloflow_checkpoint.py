"""iCaloFlow DS2/DS3 models from the reference PyTorch code's checkpoints (state_dicts as numpy arrays).

The reference (claudius-krause/inductive-caloflow, `run.py`) saves each flow in its own file, a dict whose
`model_state_dict` is an nflows `Flow`: `ds_{2,3}_flow_1.pt` (Flow-1, a MAF, shared by teacher and student),
`ds_{2,3}_flow_{2,3}.pt` (teacher MAFs) and `ds_{2,3}_flow_{2,3}_student.pt` (student IAFs). Every flow alternates
MADE-RQS blocks with global reverse / random permutations, the one after the last block dropped. The sizes are read
from the tensor shapes; the mapping itself is `calozoo.bijectors.nflows_state_dict`.
"""

from __future__ import annotations

from calozoo.bijectors.nflows_state_dict import NflowsFlowLayout, assign_flow, flow_layout
from calozoo.errors import CheckpointError
from calozoo.models.icaloflow import FLOW_NAMES, ICaloFlow, ICaloFlowConfig

__all__ = ["REFERENCE_REPOSITORY", "REFERENCE_COMMIT", "icaloflow_config_from_checkpoints",
           "icaloflow_from_checkpoints"]

REFERENCE_REPOSITORY = "claudius-krause/inductive-caloflow"
REFERENCE_COMMIT = "328ae2a029b9d47d0dd57a2e908ad262b9ce9795"
_HIDDEN = {"energy_flow": "energy_hidden", "first_layer_flow": "first_layer_hidden", "layer_flow": "layer_hidden"}
LABELS = {"energy_flow": "Flow-1", "first_layer_flow": "Flow-2", "layer_flow": "Flow-3"}  # the reference's names


def _check(name: str, layout: NflowsFlowLayout, shape: dict, dataset) -> None:
    label = LABELS[name]
    if (layout.features, layout.context) != (shape["features"], shape["context"]):
        raise CheckpointError(f"the {label} checkpoint has {layout.features} features and {layout.context} "
                              f"conditions; dataset {dataset}'s {label} needs {shape['features']} and "
                              f"{shape['context']} (is it another flow's file?).")
    if layout.num_permutations != layout.num_blocks - 1:
        raise CheckpointError(f"the {label} checkpoint has {layout.num_blocks} blocks and {layout.num_permutations} "
                              "permutations; iCaloFlow's flows have one permutation fewer than blocks.")


def icaloflow_config_from_checkpoints(base: dict, states: dict) -> tuple[dict, dict]:
    """The iCaloFlow config that fits the three state_dicts `states` (keyed by `FLOW_NAMES`): `base` (the registered
    config) with the sizes read from the tensor shapes.

    Returns:
        (config dict, the inferred entries). Raises CheckpointError where the shapes fit no iCaloFlow of the dataset.
    """
    missing = sorted(set(FLOW_NAMES) - set(states))
    if missing:
        raise CheckpointError(f"iCaloFlow needs the state_dicts of {list(FLOW_NAMES)}; missing {missing}.")
    layouts = {name: flow_layout(states[name]) for name in FLOW_NAMES}
    shapes = ICaloFlowConfig.from_dict(base).flow_shapes()  # features and conditions depend on the dataset only
    for name in FLOW_NAMES:
        _check(name, layouts[name], shapes[name], base.get("dataset", ICaloFlowConfig.dataset))
    if layouts["energy_flow"].kind != "maf":
        raise CheckpointError("the Flow-1 checkpoint has inverse-wrapped (IAF) blocks; Flow-1 is a MAF.")
    kinds = {layouts[name].kind for name in FLOW_NAMES[1:]}
    if len(kinds) != 1:
        raise CheckpointError("Flow-2 and Flow-3 must both be teachers (MAF) or both students (IAF).")
    for key in ("num_blocks", "num_bins"):
        values = {getattr(layout, key) for layout in layouts.values()}
        if len(values) != 1:
            raise CheckpointError(f"the three flows differ in {key} ({sorted(values)}); calozoo's iCaloFlow uses one.")
    inferred = {"role": "teacher" if kinds.pop() == "maf" else "student",
                "num_blocks": layouts["layer_flow"].num_blocks, "num_bins": layouts["layer_flow"].num_bins}
    for name in FLOW_NAMES:
        inferred[_HIDDEN[name]] = layouts[name].hidden
        inferred[f"{name.removesuffix('_flow')}_made_hidden_blocks"] = layouts[name].made_hidden_blocks
    return {**base, **inferred}, inferred


def icaloflow_from_checkpoints(config, states: dict) -> ICaloFlow:
    """An ICaloFlow (`ICaloFlowConfig` or dict) with its three flows copied from the reference state_dicts."""
    config = ICaloFlowConfig.from_dict(config) if isinstance(config, dict) else config
    model = ICaloFlow(config)
    for name in FLOW_NAMES:
        assign_flow(getattr(model, name), states[name])
    return model
