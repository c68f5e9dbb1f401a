"""Tests of calozoo.data and the `calozoo data` command."""
