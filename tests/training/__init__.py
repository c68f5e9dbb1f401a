"""Tests of calozoo.training."""
