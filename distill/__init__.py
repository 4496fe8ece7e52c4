"""distill: distil a reasoning teacher into small dense students."""

__version__ = "0.1.0"
