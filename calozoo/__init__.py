"""calozoo: normalizing-flow calorimeter shower generators on TensorFlow Probability.

    >>> import calozoo as zoo
    >>> gen = zoo.load("caloflow-ds1-photon-student")
    >>> showers = gen.generate([65536.0] * 10, seed=1)   # MeV in, MeV out, shape (10, 368)

`import calozoo` is cheap: TensorFlow and the model families are imported on first use of the API below.
"""

from calozoo._version import __version__

__all__ = ["list_models", "load", "create", "get_entry", "find_artifact", "__version__"]

_LAZY = {"list_models", "load", "create", "get_entry", "find_artifact"}


def __getattr__(name):
    """The registry functions, imported (with TensorFlow and the families) on first access."""
    if name in _LAZY:
        from calozoo import registry

        return getattr(registry, name)
    raise AttributeError(f"module 'calozoo' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | _LAZY)
