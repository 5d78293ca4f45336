"""exhunt: is this Exchange server vulnerable, has it been compromised, and what must we do now."""

__version__ = "0.1.0"

__all__ = ["__version__"]
