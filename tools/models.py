"""`calozoo list` and `calozoo info`: what the zoo holds."""

import json

import click

from calozoo_tools._errors import reports_errors


@click.command("list")
@click.argument("pattern", default="*")
def list_command(pattern):
    """Registered models matching PATTERN (fnmatch, e.g. 'caloflow-ds1-*'), with their shipped versions."""
    import calozoo as zoo
    from calozoo.errors import MissingWeightsError

    names = zoo.list_models(pattern)
    if not names:
        raise click.ClickException(f"No model matches '{pattern}'. Run `calozoo list` to see all models.")
    for name in names:
        try:
            shipped = zoo.find_artifact(name).name
        except MissingWeightsError:
            shipped = "-"
        click.echo(f"{name:36s} {shipped:4s} {zoo.get_entry(name).description}")


@click.command("info")
@click.argument("name")
@reports_errors
def info_command(name):
    """The paper configuration of NAME, its parameter count and, if shipped, its artifact and model card."""
    import calozoo as zoo
    from calozoo.errors import MissingWeightsError

    entry = zoo.get_entry(name)
    click.echo(f"{name}  (family {entry.family})\n{entry.description}")
    for key, value in entry.extra.items():
        click.echo(f"{key}: {json.dumps(value)}")
    click.echo(f"paper configuration: {json.dumps(entry.config)}")
    try:
        directory = zoo.find_artifact(name)
    except MissingWeightsError as error:
        click.echo(str(error))
        return
    metadata = json.loads((directory / "metadata.json").read_text())
    click.echo(f"shipped artifact: {directory}")
    click.echo(f"  shipped configuration: {json.dumps(metadata.get('config', {}))}")
    click.echo(f"  parameters: {metadata.get('num_params')}, trained on: {metadata.get('training_data', {}).get('description')}")
    click.echo(f"  model card: {directory / 'MODEL_CARD.md'}")


@click.command("card")
@click.argument("name")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="The training file, if it moved since training (the held-out rows are taken from it).")
@click.option("--version", type=int, default=None, help="Artifact version (default: newest).")
@reports_errors
def card_command(name, data, version):
    """Recompute the held-out metrics of NAME's artifact (same file, same split) and rewrite its model card."""
    import calozoo as zoo
    from calozoo.training.recipe import refresh_model_card

    directory = zoo.find_artifact(name, version)
    metrics = refresh_model_card(directory, data)
    summary = metrics.get("separation_summary", {})
    click.echo(f"{directory / 'MODEL_CARD.md'}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(summary.items())))
