"""Replay policies, optax-style: which past samples fill the replay slots.

Each factory binds its static arguments and returns the same frozen `ReplayPolicy`
record of pure functions over a `ReplayState` (memory index + bandit + reference losses):

        policy = amr(max_arms=64, capacity=100_000)          # or make_replay("amr", ...)
        state = policy.init()
        state = policy.add_task(state, sample_ids, cluster_labels, task_id)   # host side
        ids_SxRC = policy.presample(state, key, num_steps, batch)             # on device
        ids_SxRC, arms_SxRC = policy.presample_with_arms(state, key, num_steps, batch)  # same ids
        chosen = policy.select(candidates, params, new_loss_fn, cand_loss_fn) # MIR; identity otherwise
        state = policy.observe(state, ids, arm_ids, losses, step=step)        # pre-update losses
        state = policy.record_new(state, new_ids, new_losses)                 # 'sample' reference

Factories (`amr.replay.registry.STRATEGIES` lists their config names):
    none()           naive fine-tuning: no replay slots.
    uniform()        uniform over all past samples (the strong baseline, Prabhu et al. 2023).
    task_balanced()  a past task uniformly, then a sample uniformly inside it.
    tilted(tilt)     a fixed allocation over past tasks: task i of n gets mass ∝ exp(tilt·i/(n-1))
                     (tilt < 0 favours the oldest, > 0 the newest, 0 is task_balanced); the sweep's
                     headroom grid (the best fixed allocation, as an over-budget reference).
    amr(...)         a non-stationary bandit over arms (clusters of past data); reward = current
                     loss, loss increase over a reference, loss drop after replay (paid), or the free
                     marginal benefit (how much replaying an arm slows its forgetting, docs/REWARDS.md).
    joint()          like `uniform`; the engine gives it a batch that grows with the tasks seen
                     (joint training, an over-budget reference).
    mir(...)         maximally interfered retrieval (Aljundi et al. 2019): `candidates` uniform ids per
                     slot, `select` keeps those whose loss rises most under a virtual SGD step.

Every factory takes the memory's static shape: `max_arms`, `capacity` and `track_arms`
(False keeps no per-sample arm table, for host-resident rows: arms come from the draw).
Misuse fails loudly: drawing from an empty memory raises outside jit and yields id -1 inside
(which `amr.replay.memory.gather` masks); ids and losses of the wrong dtype or shape raise a
ValueError naming the argument when traced.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from amr.replay import bandit as bandit_lib
from amr.replay import benefit as benefit_lib
from amr.replay import memory as memory_lib  # noqa: F401  (reached as `policies.memory_lib`)
from amr.replay import policy_base as base
from amr.replay import row_priority as row_priority_lib
from amr.replay import sampling
from amr.replay._checks import check_choice, check_int, check_real
from amr.replay.policy_base import Candidates, ReplayPolicy, ReplayState, keep_all  # noqa: F401  (the public types)
from amr.replay.rewards import PER_ROW_REFERENCES, PER_ROW_REWARDS, REFERENCES, REWARDS  # noqa: F401  (REWARDS, REFERENCES: public)
from amr.replay.rewards import reward_fn as reward_fn_of

# ---------------------------------------------------------------- the policies without feedback


def none(*, max_arms: int, capacity: int, track_arms: bool = True) -> base.ReplayPolicy:
    """Naive fine-tuning: no replay slots (presample gives int32[S, 0])."""
    return base.make_policy(
        "none",
        max_arms=max_arms,
        capacity=capacity,
        track_arms=track_arms,
        draws=base.no_draws(),
        arm_probs=lambda state: jnp.zeros(state.memory.sizes.shape, jnp.float32),
    )


def uniform(*, max_arms: int, capacity: int, track_arms: bool = True) -> base.ReplayPolicy:
    """Uniform over all past samples."""
    kw = dict(max_arms=max_arms, capacity=capacity, track_arms=track_arms)
    return base.make_policy("uniform", **kw, draws=base.uniform_draws(1), arm_probs=base.arm_probs_by_size)


def joint(*, max_arms: int, capacity: int, track_arms: bool = True) -> base.ReplayPolicy:
    """Uniform over all past samples; the engine's batch grows with the tasks seen (over budget)."""
    kw = dict(max_arms=max_arms, capacity=capacity, track_arms=track_arms)
    return base.make_policy("joint", **kw, draws=base.uniform_draws(1), arm_probs=base.arm_probs_by_size)


def task_balanced(*, max_arms: int, capacity: int, track_arms: bool = True) -> base.ReplayPolicy:
    """A past task uniformly, then an arm by size inside it, then a sample uniformly inside that."""

    def arms(state, key, shape):
        return sampling.sample_from_probs(key, base.arm_probs_by_task(state.memory), shape)

    kw = dict(max_arms=max_arms, capacity=capacity, track_arms=track_arms)
    return base.make_policy(
        "task_balanced", **kw, draws=base.arm_first_draws(arms), arm_probs=lambda s: base.arm_probs_by_task(s.memory)
    )


def tilted_arm_probs(memory, tilt: float) -> jax.Array:
    """Arm probabilities of a fixed allocation over the present tasks: each task's mass ∝ exp(tilt·x), x its
    position from the oldest (0) to the newest (1) task present, arms by size inside a task."""
    balanced = base.arm_probs_by_task(memory)
    task = jnp.where(memory.sizes > 0, memory.arm_task, -1)
    newest = jnp.maximum(jnp.max(task), 1).astype(jnp.float32)
    weight = jnp.where(task >= 0, jnp.exp(tilt * task.astype(jnp.float32) / newest), 0.0)
    p = balanced * weight
    return p / jnp.maximum(jnp.sum(p), jnp.finfo(jnp.float32).tiny)


def tilted(*, max_arms: int, capacity: int, tilt: float = 0.0, track_arms: bool = True) -> base.ReplayPolicy:
    """A fixed allocation of the replay rows over past tasks (`tilted_arm_probs`); no feedback."""
    tilt = check_real("tilt", tilt, -20.0, 20.0, False)

    def arms(state, key, shape):
        return sampling.sample_from_probs(key, tilted_arm_probs(state.memory, tilt), shape)

    kw = dict(max_arms=max_arms, capacity=capacity, track_arms=track_arms)
    return base.make_policy(
        "tilted", **kw, draws=base.arm_first_draws(arms), arm_probs=lambda s: tilted_arm_probs(s.memory, tilt)
    )


# ---------------------------------------------------------------- MIR


def mir(
    *, max_arms: int, capacity: int, candidates: int = 4, lr: float = 0.1, track_arms: bool = True
) -> base.ReplayPolicy:
    """Maximally interfered retrieval: `candidates` uniform ids per replay slot; `select` keeps
    the slot-count whose loss rises most under a virtual SGD step of learning rate `lr`."""
    C = check_int("candidates", candidates, 2)
    lr = check_real("mir_lr", lr, 0.0, float("inf"), lo_open=True)

    def select(cands: base.Candidates, params, new_loss_fn, cand_loss_fn, axis_name=None) -> base.Candidates:
        """The R = len(ids) / C candidates (sorted positions) whose loss rises most.

        new_loss_fn(params) -> f32[B_local]: per-example losses of this device's new rows;
        cand_loss_fn(params, rows) -> f32[n]: per-example losses of candidate rows.
        With `axis_name` (inside shard_map/pmap) the gradient is averaged and the scores and
        rows gathered over that axis; the rows returned are this device's share."""
        grad = jax.grad(lambda p: new_loss_fn(p).mean())(params)
        if axis_name is not None:
            grad = jax.lax.pmean(grad, axis_name)
        virtual = jax.tree.map(lambda p, g: p - lr * g, params, grad)
        score = cand_loss_fn(virtual, cands.rows) - cand_loss_fn(params, cands.rows)
        score = jnp.where(jnp.isfinite(score), score, -jnp.inf)
        keep_local, rows, start = score.shape[0] // C, cands.rows, 0
        if axis_name is not None:
            score = jax.lax.all_gather(score, axis_name, axis=0, tiled=True)
            rows = jax.tree.map(lambda x: jax.lax.all_gather(x, axis_name, axis=0, tiled=True), rows)
            start = jax.lax.axis_index(axis_name) * keep_local
        _, top = jax.lax.top_k(score, cands.ids.shape[0] // C)
        sel = jnp.sort(top)
        mine = jax.lax.dynamic_slice_in_dim(sel, start, keep_local)
        arms = None if cands.arms is None else cands.arms[sel]
        return base.Candidates(cands.ids[sel], arms, jax.tree.map(lambda x: x[mine], rows))

    kw = dict(max_arms=max_arms, capacity=capacity, track_arms=track_arms)
    return base.make_policy(
        "mir", **kw, draws=base.uniform_draws(C), arm_probs=base.arm_probs_by_size, select=select, candidates=C
    )


# ---------------------------------------------------------------- AMR


def _check_amr(reward: str, reference: str, benefit_alpha: float, benefit_prior: float) -> tuple[float, float]:
    """amr's argument checks (ValueError naming the argument); the checked benefit rate and prior."""
    check_choice("reward", reward, REWARDS)
    check_choice("reference", reference, REFERENCES)
    if reward == "benefit" and reference != "sample":
        raise ValueError(f"reference: the 'benefit' reward reads loss increases over 'sample' only, got {reference!r}")
    alpha = check_real("benefit_alpha", benefit_alpha, 0.0, 1.0, lo_open=True)
    prior = check_real("benefit_prior", benefit_prior, 0.0, float("inf"), lo_open=False)
    return alpha, prior


def _observe_benefit(bandit_fns, alpha, prior, state, arm_ids, increases, losses, step):
    """Benefit moments after this call's rows; one bandit step, on its benefit, per arm that gained a pair."""
    if step is None:
        raise ValueError("step: the 'benefit' reward needs the global step of the observation")
    level_K, replayed_K = benefit_lib.level_and_counts(arm_ids, increases, losses, state.bandit.active)
    new = benefit_lib.observe(state.benefit, level_K, replayed_K, step, alpha)
    benefit_K = benefit_lib.estimate(new, prior, alpha)
    benefit_K = jnp.where(new.pairs > state.benefit.pairs, benefit_K, jnp.nan)  # NaN: no bandit step
    all_arms = jnp.arange(benefit_K.shape[0], dtype=jnp.int32)
    return state.replace(benefit=new, bandit=bandit_fns.observe(state.bandit, all_arms, benefit_K))


def _record_sample_refs(
    records_new: bool, records_replayed: bool, residual: bool, state, sample_ids, losses, replayed: bool = False
):
    """Remembers rows' training losses as their per-sample reference; a no-op otherwise.

    New-task rows are recorded for the 'sample', 'visit' and 'task_end' references; replayed rows
    (`replayed=True`) only for 'visit', whose reward is the loss regained since a row's
    last visit. With `residual` ('task_end') a row keeps its loss minus the mean loss of the rows
    recorded with it (one chunk's new rows): how much harder than its task's level at that time it
    was; `add_task(anchor=...)` adds the task's level at its end (`anchor_sample_refs`). Non-finite
    losses and ids outside [0, capacity) are dropped."""
    sample_ids, losses = base.check_ids_losses("record_new", sample_ids, losses)
    if not (records_replayed if replayed else records_new):
        return state
    losses = losses.reshape(-1).astype(jnp.float32)
    if residual:
        losses = losses - jnp.nanmean(losses)  # all NaN: every row stays NaN and is dropped below
    ids = sample_ids.reshape(-1)
    ids = jnp.where(jnp.isfinite(losses) & (ids >= 0), ids, state.sample_ref.shape[0])  # dropped
    return state.replace(sample_ref=state.sample_ref.at[ids].set(losses, mode="drop"))


def amr(
    *,
    max_arms: int,
    capacity: int,
    reward: str = "loss_increase",
    reference: str = "sample",
    bandit: dict[str, Any] | None = None,
    track_arms: bool = True,
    benefit_alpha: float = 0.2,
    benefit_prior: float = 2.0,
    row_priority: float = 0.0,
) -> base.ReplayPolicy:
    """Adaptive memory replay: a non-stationary bandit (`bandit`: `make_bandit` kwargs) over arms.

    `reward`: 'loss' (the replayed row's loss), 'loss_increase' (its loss minus a reference)
    or 'marginal' (its loss minus its loss after the update: needs `losses_after`).
    `reference` (loss_increase): 'sample' (the trainer's default) compares a replayed row's loss
    with the row's *own* loss when it was last trained on as new data (`record_new`), which
    removes the row-to-row spread in difficulty; 'visit' also resets that reference whenever the
    row is replayed; 'task_end' shifts it to the row's task end: the loss a row had when last trained
    on, minus how much its task's training loss fell after that (free; docs/REWARDS.md), so a task
    whose loss fell steeply while it was trained does not look less forgotten than it is; 'arm'
    compares with its arm's loss at the task end (`add_task(ref_losses)`).
    'benefit' (free, `amr.replay.benefit`): how much one more replayed row per step slows an arm's
    forgetting, the slope of its loss-increase drift ('sample' reference only) on its replay
    intensity, estimated with EMA moments of rate `benefit_alpha` and shrunk toward the pooled
    slope by `benefit_prior` pseudo-pairs; `observe` then needs the global `step` and makes one
    bandit step per arm that gained a pair (whatever the bandit's `aggregate`).
    `row_priority` β >= 0 (`amr.replay.row_priority`): inside the drawn arm, rows seen regaining more
    loss over their own reference are drawn more (weight exp(β·z)); 0 draws uniformly inside the arm.
    """
    alpha, prior = _check_amr(reward, reference, benefit_alpha, benefit_prior)
    beta = _check_row_priority(row_priority, reward, reference)
    bandit_fns = bandit_lib.make_bandit(max_arms, **(bandit or {}))
    reward_fn = reward_fn_of(reward, reference)  # chosen here: no string dispatch while tracing

    def rewards(state, arm_ids, losses, losses_after=None, sample_ids=None):
        """Bandit rewards for observed per-example losses (NaN where masked or unknown)."""
        return reward_fn(state, arm_ids, losses.astype(jnp.float32), losses_after, sample_ids)

    def observe(state, sample_ids, arm_ids, losses, losses_after=None, step=None):
        """Feeds replayed (or probed) rows' per-example PRE-update losses back into the bandit.

        `step` (the global step of the observation) is read by the 'benefit' reward only."""
        base.check_ids_losses("observe", arm_ids, losses, "arm_ids")
        base.check_ids_losses("observe", sample_ids, losses)
        flat = lambda x: None if x is None else jnp.reshape(x, -1)  # noqa: E731
        r = rewards(state, flat(arm_ids), flat(losses), flat(losses_after), flat(sample_ids))
        if beta:
            state = state.replace(row_gap=row_priority_lib.record(state.row_gap, flat(sample_ids), r))
        if reward == "benefit":
            return _observe_benefit(bandit_fns, alpha, prior, state, flat(arm_ids), r, flat(losses), step)
        return state.replace(bandit=bandit_fns.observe(state.bandit, flat(arm_ids), r))

    def arms(state, key, shape):
        return bandit_fns.sample(state.bandit, key, int(np.prod(shape))).reshape(shape)

    return base.make_policy(
        "amr",
        max_arms=max_arms,
        capacity=capacity,
        track_arms=track_arms,
        draws=base.arm_first_draws(arms, _prioritised_ids(beta) if beta else None),
        arm_probs=lambda state: bandit_fns.probs(state.bandit),
        bandit_fns=bandit_fns,
        sample_refs=capacity if reference in PER_ROW_REFERENCES else 1,
        observe=observe,
        record_new=functools.partial(
            _record_sample_refs, reference != "arm", reference == "visit", reference == "task_end"
        ),
        anchors_refs=reference == "task_end",
        rewards=rewards,
        uses_bandit=True,
        needs_loss_after=reward == "marginal",
        needs_step=reward == "benefit",
        benefit_arms=max_arms if reward == "benefit" else 0,
        row_gaps=capacity if beta else 0,
    )


def _check_row_priority(row_priority: float, reward: str, reference: str) -> float:
    """The checked β; ValueError naming `row_priority` unless it reads per-row rewards."""
    beta = check_real("row_priority", row_priority, 0.0, float("inf"), lo_open=False)
    if beta and (reward not in PER_ROW_REWARDS or reference not in PER_ROW_REFERENCES):
        raise ValueError(
            f"row_priority: ranks rows by their loss increase over their own reference, so it needs a reward of "
            f"{PER_ROW_REWARDS} with a per-row reference {PER_ROW_REFERENCES}; got reward {reward!r}, "
            f"reference {reference!r}"
        )
    return beta


def _prioritised_ids(beta: float):
    def id_sampler(state, key, arm_ids):
        return row_priority_lib.draw(state.memory, state.row_gap, beta, key, arm_ids)

    return id_sampler


# ---------------------------------------------------------------- config names -> factories

# The only list of strategy names (`amr.replay.registry.STRATEGIES` reads it).
FACTORIES: dict[str, Callable[..., base.ReplayPolicy]] = {
    "none": none,
    "uniform": uniform,
    "task_balanced": task_balanced,
    "tilted": tilted,
    "amr": amr,
    "mir": mir,
    "joint": joint,
}


def make_replay(
    name: str,
    *,
    max_arms: int,
    capacity: int,
    reward: str = "loss_increase",
    reference: str = "sample",
    candidates: int | None = None,
    mir_lr: float = 0.1,
    bandit: dict[str, Any] | None = None,
    track_arms: bool = True,
    task_tilt: float = 0.0,
    benefit_alpha: float = 0.2,
    benefit_prior: float = 2.0,
    row_priority: float = 0.0,
) -> base.ReplayPolicy:
    """The config-facing constructor: the factory `FACTORIES[name]` with the arguments it takes.

    Defaults are the trainer's (`configs/base.py`): reward 'loss_increase' over each row's own
    reference ('sample', which needs `record_new`), MIR with 4 candidates and lr 0.1, the
    bandit's defaults. `reward`, `reference` and `candidates` are validated whatever `name`
    (a typo is still a typo); `candidates` and `mir_lr` only reach mir, `reward`, `reference`,
    `bandit`, `benefit_alpha`, `benefit_prior` and `row_priority` only amr, `task_tilt` only tilted.
    """
    if name not in FACTORIES:
        raise ValueError(f"replay policy: unknown strategy {name!r}; expected one of {tuple(FACTORIES)}")
    check_choice("reward", reward, REWARDS)
    check_choice("reference", reference, REFERENCES)
    if candidates is not None:
        check_int("candidates", candidates, 2 if name == "mir" else 1)
    kw = dict(max_arms=max_arms, capacity=capacity, track_arms=track_arms)
    if name == "amr":
        kw.update(
            reward=reward,
            reference=reference,
            bandit=bandit,
            benefit_alpha=benefit_alpha,
            benefit_prior=benefit_prior,
            row_priority=row_priority,
        )
    elif name == "mir":
        kw.update(lr=mir_lr, **({} if candidates is None else {"candidates": candidates}))
    elif name == "tilted":
        kw.update(tilt=task_tilt)
    return FACTORIES[name](**kw)
