"""Experiments, sweeps, ablations, config validation and the command line (`amr-train`)."""
