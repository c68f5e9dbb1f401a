"""Tests of calozoo.bijectors."""
