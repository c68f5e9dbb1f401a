"""Tests of the calozoo command line (tools/)."""
