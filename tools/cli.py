"""The `calozoo` command: a click group; each subcommand lives in its own module of tools/."""
import click


@click.group()
@click.version_option(package_name="calozoo")
def main():
    """calozoo: normalizing-flow calorimeter shower generators."""
