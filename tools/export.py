"""`calozoo export`: a shipped model as a versioned SavedModel for TensorFlow Serving."""

import time

import click

from calozoo_tools._errors import reports_errors


@click.command("export")
@click.argument("name")
@click.option("--out", "base_dir", required=True, type=click.Path(file_okay=False),
              help="Model base directory of the server; the SavedModel goes to OUT/NAME/<version>/.")
@click.option("--version", "version", type=int, default=None,
              help="Integer SavedModel version (default: the next free one under OUT/NAME).")
@click.option("--artifact-version", type=int, default=None, help="Which shipped artifact to export (default: newest).")
@click.option("--float64", "use_float64", is_flag=True, help="Compute in float64 (default float32, half the size).")
@click.option("--no-warmup", is_flag=True,
              help="Skip assets.extra/tf_serving_warmup_requests (no tensorflow-serving-api).")
@reports_errors
def export_command(name, base_dir, version, artifact_version, use_float64, no_warmup):
    """Export model NAME (its shipped artifact; NAME@user for your own trained or imported one) to
    OUT/NAME/<version>/ and write OUT/models.config."""
    import calozoo as zoo
    from calozoo.export import export_model
    from calozoo.registry import split_origin

    if version is not None and version < 1:
        raise click.BadParameter(f"must be an integer >= 1 (TF Serving needs integer versions); got {version}.",
                                 param_hint="--version")
    model = zoo.load(name, version=artifact_version, dtype="float64" if use_float64 else "float32")
    served = split_origin(name)[0]  # NAME@user (a trained or imported version) is served as NAME
    started = time.perf_counter()
    path = export_model(model, base_dir, served, version=version, warmup=not no_warmup)
    click.echo(f"exported {name} to {path} in {time.perf_counter() - started:.1f} s; "
               f"serve with --model_config_file={path.parents[1].resolve() / 'models.config'}")
