"""Synthetic data for the raw schema ``app`` of the VedFin learning platform."""
