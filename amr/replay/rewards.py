"""AMR's per-row rewards, one pure function per (reward, reference) (docs/REWARDS.md).

    reward_fn(reward, reference)(state, arm_ids, f32 losses, losses_after, sample_ids) -> f32 rewards

'loss' is the replayed row's loss; 'loss_increase' (and 'benefit', whose estimator in
`amr.replay.benefit` reads loss increases) its loss minus a reference: the row's own loss when last
trained on ('sample', 'visit'; 'task_end' shifts that loss to the row's task end) or its arm's task-end
loss ('arm'); 'marginal' its loss minus its loss
after the update. A reward is NaN where its reference is unknown (the bandit then ignores it).
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

REWARDS = ("loss", "loss_increase", "marginal", "benefit")
REFERENCES = ("sample", "visit", "arm", "task_end")  # loss_increase's reference; the first is the default
PER_ROW_REFERENCES = ("sample", "visit", "task_end")  # references kept per row (f32[capacity]) by `record_new`
PER_ROW_REWARDS = ("loss_increase", "benefit")  # rewards that are a row's loss over such a reference (row_priority)


def at_or_nan(x_N, ids):
    """x_N[ids], NaN where an id is outside [0, N) (the bandit then ignores the reward).

    (jnp indexing wraps negative ids, even with mode='fill': the mask is explicit.)"""
    inside = (ids >= 0) & (ids < x_N.shape[0])
    return jnp.where(inside, x_N[jnp.where(inside, ids, 0)], jnp.nan)


def _reward_loss(state, arm_ids, losses, losses_after, sample_ids):
    return losses


def _reward_over_sample(state, arm_ids, losses, losses_after, sample_ids):
    if sample_ids is None:
        raise ValueError("sample_ids: the per-sample loss_increase reward needs the observed rows' ids")
    return losses - at_or_nan(state.sample_ref, sample_ids)


def _reward_over_arm(state, arm_ids, losses, losses_after, sample_ids):
    return losses - at_or_nan(state.ref_loss, arm_ids)


def _reward_marginal(state, arm_ids, losses, losses_after, sample_ids):
    if losses_after is None:
        raise ValueError("losses_after: the 'marginal' reward needs the replayed rows' loss after the update")
    return losses - losses_after.astype(jnp.float32)


def reward_fn(reward: str, reference: str) -> Callable:
    """`(state, arm_ids, f32 losses, losses_after, sample_ids) -> f32 rewards` of a reward and reference."""
    if reward in ("loss_increase", "benefit"):  # benefit's estimator reads the loss increases
        return _reward_over_arm if reference == "arm" else _reward_over_sample
    return {"loss": _reward_loss, "marginal": _reward_marginal}[reward]
