"""Model families; importing this module registers every family with the registry."""

from calozoo.models.base import ShowerGenerator
from calozoo.models.caloflow import CaloFlow, CaloFlowConfig
from calozoo.registry import register_family


def _build_caloflow(config: dict) -> CaloFlow:
    return CaloFlow(CaloFlowConfig.from_dict(config))


def _train_caloflow(*args, **kwargs):
    from calozoo.training.caloflow import train_caloflow

    return train_caloflow(*args, **kwargs)


register_family("caloflow", build=_build_caloflow, train=_train_caloflow)

__all__ = ["ShowerGenerator", "CaloFlow", "CaloFlowConfig"]
