"""Workflows that combine the layers below: training recipes that write artifacts and model cards, the CaloGAN
evaluation of trained artifacts, generation timing runs. The command line (calozoo_tools) sits on top of it."""
