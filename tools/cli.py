"""The `calozoo` command: a click group; each subcommand lives in its own module of tools/."""
import os

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported by a subcommand


@click.group()
@click.version_option(package_name="calozoo")
def main():
    """calozoo: normalizing-flow calorimeter shower generators."""


from calozoo_tools.data import data_group  # noqa: E402
from calozoo_tools.evaluate import evaluate_command  # noqa: E402
from calozoo_tools.evaluate_calogan import evaluate_calogan_command  # noqa: E402
from calozoo_tools.export import export_command  # noqa: E402
from calozoo_tools.generate import generate_command  # noqa: E402
from calozoo_tools.intrinsic_dim import intrinsic_dim_command  # noqa: E402
from calozoo_tools.models import card_command, info_command, list_command  # noqa: E402
from calozoo_tools.synthesize import synthesize_command  # noqa: E402
from calozoo_tools.timing import time_command  # noqa: E402
from calozoo_tools.train import train_command  # noqa: E402

for _command in (list_command, info_command, card_command, data_group, synthesize_command, train_command,
                 generate_command, evaluate_command, evaluate_calogan_command, time_command, export_command,
                 intrinsic_dim_command):
    main.add_command(_command)
