"""Training: the loop, schedules, distillation, tf.distribute, and one trainer per family.

`TRAINERS` maps each family's name to its trainer, `train(model, showers, energies, checkpoint_dir, **options)`;
the registry (calozoo.registry) combines it with the builders of calozoo.models.
"""

from calozoo.training.caloflow import train_caloflow
from calozoo.training.caloman import train_caloman
from calozoo.training.calopointflow import train_calopointflow
from calozoo.training.icaloflow import train_icaloflow
from calozoo.training.l2lflow import train_l2lflow

TRAINERS = {"caloflow": train_caloflow, "icaloflow": train_icaloflow, "caloman": train_caloman,
            "l2lflow": train_l2lflow, "calopointflow": train_calopointflow}

__all__ = ["TRAINERS"]
