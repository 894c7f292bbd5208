"""AMR inside your own jitted training loop: the replay selection the benchmarks evaluate.

    python examples/own_loop.py

A tiny flax classifier learns three tasks in a row (Gaussian blobs whose labels move);
every finished task's rows become arms of `amr.replay.policies.amr`, whose defaults are the
trainer's (reward: loss increase over each row's own loss when it was trained on as new data,
Boltzmann bandit over z-scored EMA estimates). Every jitted chunk of S steps does what
`amr.train.chunk` does:

  1. presample the chunk's replay ids int32[S, R] (and their arms) from the replay state;
  2. per step, gather the replay rows with `memory.gather` (invalid ids are masked, never
     wrapped to the last row), build the mixed batch [new rows; replay rows] and compute
     per-example losses in the forward pass that also gives the gradient, i.e. BEFORE the
     update: these pre-update losses are what the bandit must see;
  3. after the scan: `record_new` the new rows' losses (their per-sample references),
     `observe` the replayed rows' losses (the bandit's rewards), then `record_new(...,
     replayed=True)` (a no-op for the default 'sample' reference, used by 'visit').

Everything is a pure function of explicit state, so the chunk compiles once for all tasks.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from amr.replay import memory as memory_lib
from amr.replay import policies

S, B, R = 8, 28, 4  # steps per chunk, new rows and replay rows per step (after the first task)
ROWS_PER_TASK, DIM, CLASSES = 512, 8, 4


class MLP(nn.Module):
    @nn.compact
    def __call__(self, x_BxD):
        return nn.Dense(CLASSES)(nn.relu(nn.Dense(32)(x_BxD)))


MODEL = MLP()


def per_example_losses(params, x_BxD, y_B):
    """f32[B] cross-entropy of every row (the bandit needs one loss per replayed row)."""
    logits_BxC = MODEL.apply(params, x_BxD)
    return optax.softmax_cross_entropy_with_integer_labels(logits_BxC, y_B)


def make_tasks(seed: int = 0, num_tasks: int = 3):
    """(x f32[T*N, D], y i32[T*N]): task t's rows are ids [t*N, (t+1)*N) of one store."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for t in range(num_tasks):
        centres_CxD = rng.normal(size=(CLASSES, DIM)) * 3
        y_N = rng.integers(0, CLASSES, ROWS_PER_TASK)
        xs.append(centres_CxD[y_N] + rng.normal(size=(ROWS_PER_TASK, DIM)))
        ys.append((y_N + t) % CLASSES)  # labels move: later tasks interfere with earlier ones
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int32)


@functools.partial(jax.jit, static_argnames=("policy", "tx", "replay_batch"))
def train_chunk(
    params, opt_state, replay, key, new_x_SxBxD, new_y_SxB, new_ids_SxB, store_x, store_y, *, policy, tx, replay_batch
):
    """S steps on B new rows plus `replay_batch` replayed rows each; returns the new state and f32[S] losses."""
    S = new_ids_SxB.shape[0]
    ids_SxR, arms_SxR = policy.presample_with_arms(replay, key, S, replay_batch)  # 1. the chunk's replay ids

    def step(carry, xs):
        params, opt_state = carry
        x_new_BxD, y_new_B, ids_R = xs
        x_rep_RxD, valid_R = memory_lib.gather(store_x, ids_R)  # 2. replay rows, invalid ids masked
        y_rep_R, _ = memory_lib.gather(store_y, ids_R)
        x_BxD = jnp.concatenate([x_new_BxD, x_rep_RxD])
        y_B = jnp.concatenate([y_new_B, y_rep_R])
        weight_B = jnp.concatenate([jnp.ones(y_new_B.shape), valid_R.astype(jnp.float32)])

        def loss_fn(p):
            losses_B = per_example_losses(p, x_BxD, y_B)  # pre-update: the same forward as the gradient
            return (losses_B * weight_B).sum() / weight_B.sum(), losses_B

        (loss, losses_B), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        n_new = y_new_B.shape[0]
        rep_losses_R = jnp.where(valid_R, losses_B[n_new:], jnp.nan)  # NaN: ignored by the bandit
        return (params, opt_state), (loss, losses_B[:n_new], rep_losses_R)

    xs = (new_x_SxBxD, new_y_SxB, ids_SxR)
    (params, opt_state), (loss_S, new_losses_SxB, rep_losses_SxR) = jax.lax.scan(step, (params, opt_state), xs)
    replay = policy.record_new(replay, new_ids_SxB, new_losses_SxB)  # 3. feedback, after the scan
    replay = policy.observe(replay, ids_SxR, arms_SxR, rep_losses_SxR)
    replay = policy.record_new(replay, ids_SxR, rep_losses_SxR, replayed=True)
    return params, opt_state, replay, loss_S


def main(num_tasks: int = 3, chunks_per_task: int = 8, seed: int = 0, verbose: bool = True):
    """Trains on `num_tasks` tasks in a row; returns (params, replay state, last-chunk mean loss per task)."""
    store_x, store_y = make_tasks(seed, num_tasks)
    policy = policies.amr(max_arms=num_tasks, capacity=len(store_y))  # the trainer's defaults
    tx = optax.adam(3e-3)
    key = jax.random.key(seed)
    params = MODEL.init(jax.random.fold_in(key, 0), store_x[:1])
    opt_state, replay = tx.init(params), policy.init()
    rng = np.random.default_rng(seed)
    last_losses = []
    for t in range(num_tasks):
        first = t * ROWS_PER_TASK
        for c in range(chunks_per_task):
            new_ids_SxB = (first + rng.integers(0, ROWS_PER_TASK, (S, B))).astype(np.int32)
            params, opt_state, replay, loss_S = train_chunk(
                params,
                opt_state,
                replay,
                jax.random.fold_in(key, 1 + t * chunks_per_task + c),
                store_x[new_ids_SxB],
                store_y[new_ids_SxB],
                new_ids_SxB,
                store_x,
                store_y,
                policy=policy,
                tx=tx,
                replay_batch=R if t else 0,  # nothing to replay during the first task
            )
        last_losses.append(float(np.mean(loss_S)))
        # the finished task's rows become an arm (one per task here; k-means clusters work too)
        replay = policy.add_task(replay, first + np.arange(ROWS_PER_TASK), np.zeros(ROWS_PER_TASK, np.int32), t)
        if verbose:
            probs = np.round(np.asarray(policy.arm_probs(replay)), 3)
            print(f"task {t}: last-chunk loss {last_losses[-1]:.3f}; arm probabilities {probs}")
    return params, replay, last_losses


if __name__ == "__main__":
    main()
