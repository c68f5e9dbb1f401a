"""`calozoo import`: a checkpoint of the reference PyTorch code as a calozoo artifact in the user store."""

import click

from calozoo_tools._errors import reports_errors
from calozoo_tools.train import _overrides


@click.command("import")
@click.argument("name")
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("--energy-flow", required=True, type=click.Path(dir_okay=False),
              help="The Flow-I checkpoint the reference saves apart (rec_energy_flow/gamma.pt or piplus.pt).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A config entry the checkpoint cannot tell (tail_bound, u0_factor, ...); sizes come from it.")
@click.option("--output", "output_root", type=click.Path(file_okay=False), default=None,
              help="Artifact root (default: the user store, as for `calozoo train`).")
@reports_errors
def import_command(name, checkpoint, energy_flow, settings, output_root):
    """Import CHECKPOINT (Flow-II of the reference CaloFlow code: model_checkpoint.pt, weight_checkpoint.pt,
    student.pt; or a .npz of its state_dict) with its Flow-I as model NAME; writes NAME/vN to the user store
    (load it with NAME@user). Reading .pt files needs PyTorch: pip install 'calozoo[peers]'."""
    from calozoo.workflow.import_checkpoint import import_checkpoint

    directory = import_checkpoint(name, checkpoint, energy_flow, overrides=_overrides(settings),
                                  output_root=output_root)
    click.echo(f"wrote {directory}")
