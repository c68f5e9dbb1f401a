"""`calozoo synthesize`: a file of SYNTHETIC showers (calozoo.data.synthetic) for any of the four geometries."""

import click

from calozoo_tools._errors import reports_errors


@click.command("synthesize")
@click.argument("dataset", type=click.Choice(["1-photons", "1-pions", "2", "3"]))
@click.option("-n", "n", required=True, type=click.IntRange(min=1), help="Number of showers.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--seed", default=0, show_default=True, help="The same seed gives the same file.")
@reports_errors
def synthesize_command(dataset, n, output, seed):
    """Write N synthetic showers of DATASET's geometry (labelled synthetic in the file's attributes)."""
    from tqdm.auto import tqdm

    from calozoo.data.files import ShowerWriter
    from calozoo.data.geometry import load_geometry
    from calozoo.data.incident_energies import sample_incident_energies
    from calozoo.data.synthetic import synthesize_showers

    energies = sample_incident_energies(dataset, n, seed)
    attrs = {"synthetic": True, "description": "SYNTHETIC showers from calozoo.data.synthetic, not GEANT4",
             "dataset": dataset, "seed": seed}
    chunk = 5000
    with ShowerWriter(output, load_geometry(dataset).n_voxels, attrs) as writer, \
            tqdm(total=n, unit="shower", desc=f"synthetic {dataset}") as bar:
        for index, start in enumerate(range(0, n, chunk)):
            block = energies[start : start + chunk]
            writer.append(block, synthesize_showers(dataset, block, seed=seed * 100_003 + index + 1))
            bar.update(len(block))
    click.echo(f"wrote {n} synthetic showers to {output}")
