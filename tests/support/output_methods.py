"""Inputs shared by the output-method tests (test_output_methods.py, test_output_methods_math.py): random
byte tokens for their tiny byte_lm, random 8x8 images for their tiny vit_mae (both: tests/conftest.py),
and one key per row."""

import jax
import jax.numpy as jnp
import numpy as np


def random_tokens(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 8)).astype(np.int32)


def random_images(n, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 1)).astype(np.float32)


def row_keys(n, seed=5):
    return jax.vmap(lambda i: jax.random.fold_in(jax.random.key(seed), i))(jnp.arange(n))
