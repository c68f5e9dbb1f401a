"""Plain neural networks (tf.Module) that the model families build on."""

from calozoo.networks.mlp import MLP, ParallelMLP, mlp_num_params, parallel_mlp_num_params

__all__ = ["MLP", "ParallelMLP", "mlp_num_params", "parallel_mlp_num_params"]
