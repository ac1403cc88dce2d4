"""vedfin: the command line and shared plumbing of the VedFin analytics platform."""

__version__ = "0.1.0"
