"""Experiments, sweeps, ablations and config validation."""
