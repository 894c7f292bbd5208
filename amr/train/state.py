"""TrainState and the optimizer with per-task learning-rate schedules."""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax

from amr.replay import policies as replay_lib

SCHEDULES = ("constant", "rewarm_redecay")
OPTIMIZERS = ("adamw", "sgd", "adafactor")


@flax.struct.dataclass
class TrainState:
    params: any
    opt_state: any
    replay: replay_lib.ReplayState
    rng: jax.Array  # typed key; step keys are fold_in(rng, step)
    step: jax.Array  # i32[] global step
    task: jax.Array  # i32[] index of the task being trained
    skipped: jax.Array  # i32[] steps skipped for non-finite loss or gradients
    # amr.methods: each configured method's state by name ({} without methods: no leaves, same checkpoints)
    methods: dict = flax.struct.field(default_factory=dict)
    # replay.embeddings="free": the current task's rows' embeddings from their training passes
    # (`amr.train.free_embeddings.EmbeddingBuffer`); None otherwise (no leaves: the state is unchanged)
    embeddings: Any = None
    share: Any = None  # the replay-share rule's state (amr.replay.share; None for 'fixed' and 'schedule')


def per_task_schedule(optim: ml_collections.ConfigDict, steps_per_task: int) -> optax.Schedule:
    """Learning rate as a function of the optimizer's step count.

    `constant`: warm up once, then stay at `learning_rate`.
    `rewarm_redecay`: every task re-warms linearly for `warmup_steps` and re-decays
    (cosine) to `min_lr_ratio * learning_rate` by the task's end (Ibrahim et al. 2024).
    """
    peak, warmup = float(optim.learning_rate), int(optim.warmup_steps)
    if optim.schedule == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, max(warmup, 1)), optax.constant_schedule(peak)], [max(warmup, 1)]
        )
    floor = peak * float(optim.min_lr_ratio)

    def schedule(count):
        t = jnp.mod(count, steps_per_task).astype(jnp.float32)
        warm = peak * (t + 1.0) / max(warmup, 1)
        frac = jnp.clip((t - warmup) / max(steps_per_task - warmup, 1), 0.0, 1.0)
        decay = floor + 0.5 * (peak - floor) * (1.0 + jnp.cos(jnp.pi * frac))
        return jnp.where(t < warmup, warm, decay)

    return schedule


def make_optimizer(optim: ml_collections.ConfigDict, steps_per_task: int) -> optax.GradientTransformation:
    lr = per_task_schedule(optim, steps_per_task)
    if optim.name == "adamw":
        tx = optax.adamw(lr, b1=optim.b1, b2=optim.b2, weight_decay=optim.weight_decay)
    elif optim.name == "sgd":
        tx = optax.sgd(lr, momentum=optim.b1 or None)
    else:
        tx = optax.adafactor(lr)
    if optim.grad_clip > 0:
        tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip), tx)
    return tx
