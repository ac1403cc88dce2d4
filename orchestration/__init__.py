"""The Dagster code location of the VedFin analytics platform."""
