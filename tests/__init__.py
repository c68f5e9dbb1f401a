"""calozoo test suite."""
