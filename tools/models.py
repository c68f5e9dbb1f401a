"""`calozoo list`, `calozoo info` and `calozoo card`: what the zoo holds, and where each version comes from."""

import json

import click

from calozoo_tools._errors import reports_errors

# Config entries that change precision or numerics but not the size of a model.
_NOT_SIZE = {"dtype", "renormalize_layers"}


def size_changes(paper: dict, stored: dict) -> list[str]:
    """The config entries of an artifact that make it smaller or larger than the paper configuration."""
    return sorted(k for k, v in stored.items() if k not in _NOT_SIZE and paper.get(k) != v)


def size_label(paper: dict, stored: dict) -> str:
    """'paper size' or 'compact' (an artifact whose architecture differs from the paper's)."""
    return "compact" if size_changes(paper, stored) else "paper size"


def _versions_text(versions) -> str:
    by_origin = {}
    for found in versions:
        by_origin.setdefault(found.origin, []).append(f"v{found.version}")
    return "; ".join(f"{origin} {','.join(v)}" for origin, v in sorted(by_origin.items())) or "-"


@click.command("list")
@click.argument("pattern", default="*")
@reports_errors
def list_command(pattern):
    """Registered models matching PATTERN (fnmatch, e.g. 'caloflow-ds1-*'): versions by origin (shipped / user),
    the size of the version `load(NAME)` picks (compact or paper size) and the paper model it implements."""
    import calozoo as zoo
    from calozoo.artifacts import read_artifact_config
    from calozoo.errors import MissingWeightsError
    from calozoo.registry import artifact_versions_of, resolve_artifact

    names = zoo.list_models(pattern)
    if not names:
        raise click.ClickException(f"No model matches '{pattern}'. Run `calozoo list` to see all models.")
    click.echo(f"{'NAME':34s} {'VERSIONS':22s} {'SIZE':10s}  PAPER MODEL (the paper configuration's description)")
    for name in names:
        entry = zoo.get_entry(name)
        try:
            stored = read_artifact_config(resolve_artifact(name).path)["config"]
            size = size_label(entry.config, stored)
        except MissingWeightsError:
            size = "no weights"
        click.echo(f"{name:34s} {_versions_text(artifact_versions_of(name)):22s} {size:10s}  {entry.description}")


def _echo_version(entry, found, default) -> None:
    from calozoo.artifacts import read_artifact_config

    metadata_file = found.path / "metadata.json"
    metadata = json.loads(metadata_file.read_text()) if metadata_file.is_file() else {}
    stored = read_artifact_config(found.path)["config"]
    changes = size_changes(entry.config, stored)
    mark = "  <- loaded by `load(NAME)` / `generate NAME`" if default else ""
    click.echo(f"v{found.version} ({found.origin}): {found.path}{mark}")
    size = f"compact ({', '.join(changes)} differ from the paper)" if changes else "paper size"
    click.echo(f"  size: {size}; parameters: {metadata.get('num_params')}")
    click.echo(f"  configuration: {json.dumps(stored)}")
    click.echo(f"  trained on: {metadata.get('training_data', {}).get('description')} "
               f"({metadata.get('training_data', {}).get('file')})")
    click.echo(f"  model card: {found.path / 'MODEL_CARD.md'}")


@click.command("info")
@click.argument("name")
@reports_errors
def info_command(name):
    """The paper configuration of NAME and every stored version (shipped / user, with its path and the
    configuration it was really trained with)."""
    import calozoo as zoo
    from calozoo.errors import MissingWeightsError
    from calozoo.registry import artifact_versions_of, resolve_artifact

    entry = zoo.get_entry(name)
    click.echo(f"{name}  (family {entry.family})\n{entry.description}")
    for key, value in entry.extra.items():
        click.echo(f"{key}: {json.dumps(value)}")
    click.echo(f"paper configuration: {json.dumps(entry.config)}")
    for variant in entry.variants.values():
        click.echo(f"variant '{variant.name}' (`calozoo train {name} --variant {variant.name} --data FILE`): "
                   f"{variant.description}")
        click.echo(f"  configuration changes: {json.dumps(variant.config)}")
    versions = artifact_versions_of(name)
    if not versions:
        try:
            resolve_artifact(name)
        except MissingWeightsError as error:
            click.echo(str(error))
        return
    default = resolve_artifact(name)
    for found in versions:
        _echo_version(entry, found, found == default)


@click.command("card")
@click.argument("name")
@click.option("--data", type=click.Path(dir_okay=False), default=None,
              help="The training file, if it moved since training (the held-out rows are taken from it).")
@click.option("--version", type=int, default=None, help="Artifact version (default: as `load(NAME)` picks).")
@reports_errors
def card_command(name, data, version):
    """Recompute the held-out metrics of NAME's artifact (same file, same split) and rewrite its model card."""
    import calozoo as zoo
    from calozoo.workflow.recipe import refresh_model_card

    directory = zoo.find_artifact(name, version)
    metrics = refresh_model_card(directory, data)
    summary = metrics.get("separation_summary", {})
    click.echo(f"{directory / 'MODEL_CARD.md'}: " + ", ".join(f"{k} {v:.4f}" for k, v in sorted(summary.items())))
