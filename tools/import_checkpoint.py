"""`calozoo import`: a checkpoint of the reference PyTorch code as a calozoo artifact in the user store."""

import click

from calozoo_tools._errors import reports_errors
from calozoo_tools.train import _overrides


@click.command("import")
@click.argument("name")
@click.argument("checkpoint", type=click.Path())
@click.option("--energy-flow", type=click.Path(dir_okay=False), default=None,
              help="The energy flow the reference saves apart: CaloFlow's Flow-I (DS1 rec_energy_flow/gamma.pt "
                   "or piplus.pt, CaloGAN saved_checkpoints/Flow_I/eplus.pt), iCaloFlow's Flow-1 (ds_2_flow_1.pt; "
                   "the teacher's, also for a student), CaloMan's EPL flow (checkpoints/epl_nf_best_valid.pt), "
                   "L2LFlow's energy flow (ENERGY_DIR/flows/flow.pt).")
@click.option("--first-layer-flow", type=click.Path(dir_okay=False), default=None,
              help="iCaloFlow only: the Flow-2 checkpoint (ds_2_flow_2.pt, or ds_2_flow_2_student.pt).")
@click.option("--latent-flow", type=click.Path(dir_okay=False), default=None,
              help="CaloMan only: the DE flow on the latent space (checkpoints/de_nf_best_valid.pt).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A config entry the checkpoint cannot tell (tail_bound, u0_factor, ...); sizes come from it.")
@click.option("--output", "output_root", type=click.Path(file_okay=False), default=None,
              help="Artifact root (default: the user store, as for `calozoo train`).")
@reports_errors
def import_command(name, checkpoint, energy_flow, first_layer_flow, latent_flow, settings, output_root):
    """Import the reference code's checkpoints as model NAME; writes NAME/vN to the user store (load it with
    NAME@user). CaloFlow DS1: CHECKPOINT is Flow-II (model_checkpoint.pt, weight_checkpoint.pt, student.pt) and
    --energy-flow Flow-I; CaloFlow CaloGAN the same (saved_checkpoints/Flow_II/eplus.pt, eplus_student.pt).
    iCaloFlow: CHECKPOINT is Flow-3 (ds_2_flow_3.pt, ds_2_flow_3_student.pt), --energy-flow Flow-1 and
    --first-layer-flow Flow-2. CaloMan: CHECKPOINT is the GAE (checkpoints/gae_vae_best_valid.pt), --energy-flow
    the EPL flow and --latent-flow the DE flow. CaloPointFlow II: CHECKPOINT is the Lightning .ckpt of its training
    (read without PyTorch). ConvL2LFlow: CHECKPOINT is the causal result folder (CAUSAL_DIR of the reference's
    generator.py: flows/flowXX_final.pt, trafo.pt) and --energy-flow ENERGY_DIR/flows/flow.pt. Each file may be a
    .npz of the state_dict instead; reading .pt files needs PyTorch: pip install 'calozoo[peers]'."""
    from calozoo.workflow.import_checkpoint import import_checkpoint

    directory = import_checkpoint(name, checkpoint, energy_flow, overrides=_overrides(settings),
                                  output_root=output_root, first_layer_flow=first_layer_flow,
                                  latent_flow=latent_flow)
    click.echo(f"wrote {directory}")
