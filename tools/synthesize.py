"""`calozoo synthesize`: a file of SYNTHETIC showers (calozoo.data.synthetic) for any calozoo geometry
(CaloChallenge files for datasets 1-3, CaloGAN files for calogan-*)."""

import click

from calozoo_tools._errors import overwrite_option, refuse_existing, reports_errors


@click.command("synthesize")
@click.argument("dataset", type=click.Choice(["1-photons", "1-pions", "2", "3", "calogan-eplus", "calogan-gamma",
                                              "calogan-piplus"]))
@click.option("-n", "n", required=True, type=click.IntRange(min=1), help="Number of showers.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output HDF5 file.")
@click.option("--seed", default=0, show_default=True, help="The same seed gives the same file.")
@overwrite_option
@reports_errors
def synthesize_command(dataset, n, output, seed, overwrite):
    """Write N synthetic showers of DATASET's geometry (labelled synthetic in the file's attributes)."""
    refuse_existing(output, overwrite=overwrite)
    from tqdm.auto import tqdm

    from calozoo.data.files import ShowerWriter
    from calozoo.data.geometry import load_geometry
    from calozoo.data.incident_energies import sample_incident_energies
    from calozoo.data.synthetic import synthesize_showers

    energies = sample_incident_energies(dataset, n, seed)
    attrs = {"synthetic": True, "description": "SYNTHETIC showers from calozoo.data.synthetic, not GEANT4",
             "dataset": dataset, "seed": seed}
    chunk = 5000
    if dataset.startswith("calogan"):
        _write_calogan(dataset, energies, output, seed, attrs, chunk)
        click.echo(f"wrote {n} synthetic showers to {output} (CaloGAN format: energy in GeV, layers in MeV)")
        return
    with ShowerWriter(output, load_geometry(dataset).n_voxels, attrs) as writer, \
            tqdm(total=n, unit="shower", desc=f"synthetic {dataset}") as bar:
        for index, start in enumerate(range(0, n, chunk)):
            block = energies[start : start + chunk]
            writer.append(block, synthesize_showers(dataset, block, seed=seed * 100_003 + index + 1))
            bar.update(len(block))
    click.echo(f"wrote {n} synthetic showers to {output}")


def _write_calogan(dataset, energies, output, seed, attrs, chunk):
    """A CaloGAN-format file (written whole and atomically), chunked and seeded like the CaloChallenge files."""
    import numpy as np

    from calozoo.data.calogan import write_calogan
    from calozoo.data.synthetic import synthesize_showers

    showers = [synthesize_showers(dataset, energies[start : start + chunk], seed=seed * 100_003 + index + 1)
               for index, start in enumerate(range(0, len(energies), chunk))]
    write_calogan(output, energies, np.concatenate(showers), attrs=attrs)
