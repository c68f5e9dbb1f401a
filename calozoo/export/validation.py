"""Checks that an exported SavedModel is what TF Serving needs, without a model server.

TF Serving runs a SavedModel as a TF1 graph in a session, feeding and fetching the tensor names of a
SignatureDef; it can only run ops compiled into its binary. These helpers do exactly those steps locally.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

__all__ = ["read_saved_model", "op_types", "non_core_ops", "signature_defs", "run_in_session", "SessionRunner"]

SERVE_TAG = "serve"


def read_saved_model(path: str | Path) -> saved_model_pb2.SavedModel:
    """The parsed `saved_model.pb` of a SavedModel directory."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(path) / "saved_model.pb").read_bytes())
    return proto


def op_types(path: str | Path) -> set[str]:
    """Every op type in every meta graph, including the bodies of library functions.

    Calls of library functions (node op = a function name) are left out: their bodies are walked instead.
    """
    found = set()
    for meta_graph in read_saved_model(path).meta_graphs:
        library = meta_graph.graph_def.library
        function_names = {f.signature.name for f in library.function}
        nodes = list(meta_graph.graph_def.node)
        for function in library.function:
            nodes.extend(function.node_def)
        found.update(node.op for node in nodes if node.op not in function_names)
    return found


def non_core_ops(path: str | Path) -> set[str]:
    """Op types of the SavedModel that are not core TensorFlow ops (not in `tf.raw_ops`); empty is good."""
    core = set(dir(tf.raw_ops))
    return {op for op in op_types(path) if op not in core}


def signature_defs(path: str | Path, tag: str = SERVE_TAG) -> dict:
    """SignatureDefs of the meta graph with `tag`, by key."""
    for meta_graph in read_saved_model(path).meta_graphs:
        if tag in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    raise ValueError(f"{path} has no meta graph tagged {tag!r}; TF Serving loads the tag 'serve'.")


class SessionRunner:
    """A SavedModel loaded as TF Serving loads it: a TF1 graph in a session, run through SignatureDef names.

    Example:
        >>> with SessionRunner("served/tiny/1") as runner:                       # doctest: +SKIP
        ...     runner.run("serving_default", {"incident_energies": [[1024.0]]})["showers"].shape
        (1, 368)
    """

    def __init__(self, path: str | Path, tag: str = SERVE_TAG):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            meta_graph = tf.compat.v1.saved_model.loader.load(self.session, [tag], str(path))
        self.signatures = dict(meta_graph.signature_def)

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        """Feeds `inputs` (by signature input key) and returns every output (by output key)."""
        if signature not in self.signatures:
            raise KeyError(f"No signature {signature!r}; this SavedModel has {sorted(self.signatures)}.")
        definition = self.signatures[signature]
        unknown = sorted(set(inputs) - set(definition.inputs))
        if unknown:
            raise KeyError(f"Signature {signature!r} has inputs {sorted(definition.inputs)}; got unknown {unknown}.")
        feeds = {definition.inputs[key].name: value for key, value in inputs.items()}
        fetches = {key: tensor.name for key, tensor in definition.outputs.items()}
        return self.session.run(fetches, feed_dict=feeds)

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "SessionRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_in_session(path: str | Path, signature: str, inputs: dict) -> dict[str, np.ndarray]:
    """One `SessionRunner(path).run(signature, inputs)` call, closing the session afterwards."""
    with SessionRunner(path) as runner:
        return runner.run(signature, inputs)
