"""The `calozoo` command: a click group; each subcommand lives in its own module of tools/."""
import click


@click.group()
@click.version_option(package_name="calozoo")
def main():
    """calozoo: normalizing-flow calorimeter shower generators."""

from calozoo_tools.models import info_command as _info, list_command as _list  # noqa: E402
from calozoo_tools.generate import generate_command as _generate  # noqa: E402
from calozoo_tools.evaluate import evaluate_command as _evaluate  # noqa: E402

main.add_command(_list)
main.add_command(_info)
main.add_command(_generate)
main.add_command(_evaluate)
