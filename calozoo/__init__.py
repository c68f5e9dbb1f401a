"""calozoo: normalizing-flow calorimeter shower generators on TensorFlow Probability.

    >>> import calozoo as zoo
    >>> gen = zoo.load("caloflow-ds1-photon-student")
    >>> showers = gen.generate([65536.0] * 10, seed=1)   # MeV in, MeV out, shape (10, 368)
"""

__version__ = "0.1.0"

from calozoo import models as _models  # noqa: E402,F401  (registers the families)
from calozoo.registry import create, find_artifact, get_entry, list_models, load  # noqa: E402

__all__ = ["list_models", "load", "create", "get_entry", "find_artifact", "__version__"]
