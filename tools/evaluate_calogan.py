"""`calozoo evaluate-calogan`: the CaloFlow classifier paper's table for the trained CaloGAN teacher and student
artifacts, measured on the held-out rows of their training files."""

import click

from calozoo_tools._errors import reports_errors

_PARTICLES = ("eplus", "gamma", "piplus")


def _data_files(items) -> dict:
    files = {}
    for item in items:
        particle, sep, path = item.partition("=")
        if not sep or particle not in _PARTICLES:
            raise click.BadParameter(f"expected PARTICLE=FILE with PARTICLE one of {', '.join(_PARTICLES)}; "
                                     f"got '{item}'.", param_hint="--data")
        files[particle] = path
    if not files:
        raise click.BadParameter("give at least one PARTICLE=FILE.", param_hint="--data")
    return files


@click.command("evaluate-calogan")
@click.option("--data", "data", multiple=True, required=True, metavar="PARTICLE=FILE",
              help="The file each particle's artifacts were trained on (eplus, gamma, piplus); repeat per particle.")
@click.option("--roles", default="teacher,student", show_default=True, help="Comma list of teacher, student.")
@click.option("-n", "--showers", "n_showers", default=5000, show_default=True,
              help="Held-out showers per particle (and as many generated) for the classifiers.")
@click.option("--nll-showers", default=1000, show_default=True,
              help="Held-out showers for the test-set NLL (a student's density is sequential, so slow).")
@click.option("--full", is_flag=True, help="The seed's classifier (3 x 512, 150 epochs) instead of the small fast one.")
@click.option("--seed", default=0, show_default=True)
@click.option("-o", "--output-dir", required=True, type=click.Path(file_okay=False),
              help="New (or empty) directory for results.json, report.md and the nearest-neighbour plots.")
@reports_errors
def evaluate_calogan_command(data, roles, n_showers, nll_showers, full, seed, output_dir):
    """Seed classifier AUC / JSD (unnormalised and per-layer normalised voxels), test NLL, memorisation check and
    particle cross-check of caloflow-calogan-PARTICLE-{teacher,student}; prints the tables."""
    from pathlib import Path

    from calozoo.errors import CalozooError
    from calozoo.workflow.calogan_evaluation import evaluate_calogan_models

    chosen = tuple(r.strip() for r in roles.split(",") if r.strip())
    if not chosen or any(r not in ("teacher", "student") for r in chosen):
        raise click.BadParameter(f"a comma list of teacher, student; got '{roles}'.", param_hint="--roles")
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise CalozooError(f"Output directory {out} already exists and is not empty; choose a new -o.")
    files = _data_files(data)
    for path in files.values():
        if not Path(path).is_file():
            raise CalozooError(f"{path}: no such file.")
    result = evaluate_calogan_models(files, chosen, n_showers=n_showers, n_nll=nll_showers, fast=not full, seed=seed,
                                     output_dir=out)
    click.echo(result["markdown"])
    click.echo(f"report: {out}/report.md")
