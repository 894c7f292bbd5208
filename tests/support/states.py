"""A TrainState at step 0 for chunk-level tests."""

import jax
import jax.numpy as jnp

from amr.train.state import TrainState


def train_state(params, tx, replay, task: int = 0, **fields) -> TrainState:
    """`params` with a fresh `tx` state, `replay`, rng key 3, step 0, task `task`, nothing skipped; `fields`
    (methods, embeddings, share) as given."""
    return TrainState(
        params=params,
        opt_state=tx.init(params),
        replay=replay,
        rng=jax.random.key(3),
        step=jnp.zeros((), jnp.int32),
        task=jnp.full((), task, jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
        **fields,
    )
