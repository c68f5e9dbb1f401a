"""Model families. `BUILDERS` maps each family's name to the function that builds a model from a config dict; the
registry (calozoo.registry) combines it with the trainers of calozoo.training."""

from calozoo.models.base import ShowerGenerator
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.models.caloman import CaloMan, CaloManConfig
from calozoo.models.calopointflow import CaloPointFlow, CaloPointFlowConfig
from calozoo.models.icaloflow import ICaloFlow, ICaloFlowConfig
from calozoo.models.l2lflow import L2LFlow, L2LFlowConfig

_CLASSES = {"caloflow": (CaloFlow, CaloFlowConfig), "icaloflow": (ICaloFlow, ICaloFlowConfig),
            "caloman": (CaloMan, CaloManConfig), "l2lflow": (L2LFlow, L2LFlowConfig),
            "calopointflow": (CaloPointFlow, CaloPointFlowConfig)}


def _builder(model_class, config_class):
    def build(config: dict) -> ShowerGenerator:
        return model_class(config_class.from_dict(config))

    build.__doc__ = f"A {model_class.__name__} from a config dict."
    return build


BUILDERS = {family: _builder(*classes) for family, classes in _CLASSES.items()}

__all__ = ["BUILDERS", "ShowerGenerator", "CaloFlow", "CaloFlowConfig", "ICaloFlow", "ICaloFlowConfig", "CaloMan",
           "CaloManConfig", "L2LFlow", "L2LFlowConfig", "CaloPointFlow", "CaloPointFlowConfig"]
