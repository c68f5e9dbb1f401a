"""The package version (kept apart from calozoo/__init__ so low layers can read it without the registry)."""

__version__ = "0.1.0"
