"""Checkpoints, the workdir lock, the metrics log and fault points."""
