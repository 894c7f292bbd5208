"""The replay library: which past data fills the replay slots (jax, flax and numpy only)."""
