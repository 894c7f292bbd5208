"""amr: adaptive memory replay for continual pre-training (JAX/Flax)."""
