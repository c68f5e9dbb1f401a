"""Model families; importing this module registers every family with the registry."""

from calozoo.models.base import ShowerGenerator
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.models.caloman import CaloMan, CaloManConfig
from calozoo.models.calopointflow import CaloPointFlow, CaloPointFlowConfig
from calozoo.models.icaloflow import ICaloFlow, ICaloFlowConfig
from calozoo.models.l2lflow import L2LFlow, L2LFlowConfig
from calozoo.registry import register_family


def _build_caloflow(config: dict) -> CaloFlow:
    return CaloFlow(CaloFlowConfig.from_dict(config))


def _train_caloflow(*args, **kwargs):
    from calozoo.training.caloflow import train_caloflow

    return train_caloflow(*args, **kwargs)


def _build_icaloflow(config: dict) -> ICaloFlow:
    return ICaloFlow(ICaloFlowConfig.from_dict(config))


def _train_icaloflow(*args, **kwargs):
    from calozoo.training.icaloflow import train_icaloflow

    return train_icaloflow(*args, **kwargs)


def _build_caloman(config: dict) -> CaloMan:
    return CaloMan(CaloManConfig.from_dict(config))


def _train_caloman(*args, **kwargs):
    from calozoo.training.caloman import train_caloman

    return train_caloman(*args, **kwargs)


def _build_l2lflow(config: dict) -> L2LFlow:
    return L2LFlow(L2LFlowConfig.from_dict(config))


def _train_l2lflow(*args, **kwargs):
    from calozoo.training.l2lflow import train_l2lflow

    return train_l2lflow(*args, **kwargs)


def _build_calopointflow(config: dict) -> CaloPointFlow:
    return CaloPointFlow(CaloPointFlowConfig.from_dict(config))


def _train_calopointflow(*args, **kwargs):
    from calozoo.training.calopointflow import train_calopointflow

    return train_calopointflow(*args, **kwargs)


register_family("caloflow", build=_build_caloflow, train=_train_caloflow)
register_family("icaloflow", build=_build_icaloflow, train=_train_icaloflow)
register_family("caloman", build=_build_caloman, train=_train_caloman)
register_family("l2lflow", build=_build_l2lflow, train=_train_l2lflow)
register_family("calopointflow", build=_build_calopointflow, train=_train_calopointflow)

__all__ = ["ShowerGenerator", "CaloFlow", "CaloFlowConfig", "ICaloFlow", "ICaloFlowConfig", "CaloMan",
           "CaloManConfig", "L2LFlow", "L2LFlowConfig", "CaloPointFlow", "CaloPointFlowConfig"]
