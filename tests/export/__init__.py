"""Tests of calozoo.export and `calozoo export`."""
