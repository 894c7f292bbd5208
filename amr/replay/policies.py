"""Replay policies behind one interface: which past samples fill the replay slots.

Every policy is a `ReplayPolicy` record of pure functions over a `ReplayState`
(memory index + bandit + per-arm reference losses), optax-style:

        policy = make_replay("amr", max_arms=64, capacity=100_000, reward="loss_increase")
        state = policy.init()
        state = policy.add_task(state, sample_ids, cluster_labels, task_id, ref_losses)  # host side
        ids_SxB = policy.presample(state, key, num_steps, batch)                         # on device
        ids_SxB, arms_SxB = policy.presample_with_arms(state, key, num_steps, batch)      # same ids
        state = policy.observe(state, ids, arm_ids, losses)                               # on device

Policies:
    none           naive fine-tuning: no replay slots.
    uniform        uniform over all past samples (the strong baseline, Prabhu et al. 2023).
    task_balanced  a past task uniformly, then a sample uniformly inside it.
    amr            a non-stationary bandit over arms (clusters of past data), Boltzmann
                                  sampling by default; reward = current loss, loss increase over the
                                  arm's reference loss, or marginal benefit (loss drop after replay).
    joint          uniform over all past samples like `uniform`; the engine gives it a batch that
                                  grows with the tasks seen (joint training, an over-budget reference).
    mir            maximally interfered retrieval (Aljundi et al. 2019): presample
                                  `candidates` uniform ids per slot; the train step keeps the ones
                                  whose loss rises most under a virtual SGD step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import numpy as np

from amr.replay import bandit as bandit_lib
from amr.replay import memory as memory_lib
from amr.replay import sampling

POLICIES = ("none", "uniform", "task_balanced", "amr", "mir", "joint")
REWARDS = ("loss", "loss_increase", "marginal")


@flax.struct.dataclass
class ReplayState:
    memory: memory_lib.MemoryIndex
    bandit: bandit_lib.BanditState
    ref_loss: jax.Array  # f32[K] held-in loss of each arm when its task ended (NaN: unknown)
    sample_ref: jax.Array  # f32[capacity] each sample's own loss when it was last trained on as new data


class ReplayPolicy(NamedTuple):
    name: str
    init: Callable[[], ReplayState]
    add_task: Callable[..., ReplayState]
    presample: Callable[..., jax.Array]
    presample_with_arms: Callable[..., tuple[jax.Array, jax.Array]]  # presample's ids and the arm of each
    observe: Callable[..., ReplayState]
    record_new: Callable[..., ReplayState]
    arm_probs: Callable[[ReplayState], jax.Array]
    rewards: Callable[..., jax.Array]
    candidates: int  # ids presampled per replay slot (mir > 1)
    uses_bandit: bool
    needs_loss_after: bool  # the 'marginal' reward needs the replayed rows' loss after the update


def _arm_probs_by_task(memory: memory_lib.MemoryIndex) -> jax.Array:
    """Task-balanced arm distribution: each present task equally, arms by size inside it."""
    max_arms = memory.sizes.shape[0]
    sizes = memory.sizes.astype(jnp.float32)
    task = jnp.where(memory.sizes > 0, memory.arm_task, -1)
    # Size of each arm's task, by a K x K comparison (K is small: arms, not samples).
    same_task = (task[:, None] == task[None, :]) & (task[:, None] >= 0)
    task_size = jnp.sum(jnp.where(same_task, sizes[None, :], 0.0), axis=1)
    first_of_task = jnp.argmax(same_task, axis=1) == jnp.arange(max_arms)
    num_tasks = jnp.sum(first_of_task & (task >= 0))
    p = jnp.where(task >= 0, sizes / jnp.maximum(task_size, 1.0), 0.0)
    return p / jnp.maximum(num_tasks, 1).astype(jnp.float32)


def _draw_arms(key, probs_K, shape):
    """Arm ids by inverse CDF (one uniform per draw); arms with probability 0 never come out."""
    return sampling.sample_from_probs(key, probs_K, shape)


def make_replay(
    name: str,
    *,
    max_arms: int,
    capacity: int,
    reward: str = "loss_increase",
    candidates: int = 1,
    bandit: dict[str, Any] | None = None,
    reference: str = "arm",
    track_arms: bool = True,
) -> ReplayPolicy:
    """Builds the replay policy `name`; `bandit` holds `amr.replay.bandit.make_bandit` kwargs.

    `reference` (loss_increase only): "arm" compares a replayed row's loss with its arm's
    loss at the arm's task end (`add_task(..., ref_losses)`); "sample" compares it with the
    row's *own* loss when it was last trained on as new data (`record_new`), which removes
    the row-to-row spread in difficulty from the reward; "visit" also resets that reference
    whenever the row is replayed, so the reward is what the row lost since its last visit.

    `track_arms=False` keeps no per-sample arm table in the memory index (host-resident
    memory, 4 bytes less per stored sample): callers take arms from `presample_with_arms`.
    """
    if name not in POLICIES:
        raise ValueError(f"replay policy: unknown strategy {name!r}; expected one of {POLICIES}")
    if reward not in REWARDS:
        raise ValueError(f"reward: unknown reward {reward!r}; expected one of {REWARDS}")
    if name == "mir" and candidates < 2:
        raise ValueError(f"candidates: mir needs at least 2 candidates per slot, got {candidates}")
    if reference not in ("arm", "sample", "visit"):
        raise ValueError(f"reference: expected 'arm', 'sample' or 'visit', got {reference!r}")
    if candidates < 1:
        raise ValueError(f"candidates must be >= 1, got {candidates}")
    bandit_fns = bandit_lib.make_bandit(max_arms, **(bandit or {}))
    # Probes the empty-memory/int32 limits now, not inside a trace.
    template = memory_lib.empty_index(max_arms, capacity, track_arms=track_arms)

    def init() -> ReplayState:
        return ReplayState(
            memory=template,
            bandit=bandit_fns.init(np.zeros((max_arms,), bool)),
            ref_loss=jnp.full((max_arms,), jnp.nan, jnp.float32),
            sample_ref=jnp.full((capacity if reference in ("sample", "visit") else 1,), jnp.nan, jnp.float32),
        )

    def add_task(state, sample_ids, cluster_labels, task_id, ref_losses=None, num_clusters=None):
        """Host side: a finished task's samples become arms. Same shapes out as in."""
        memory, arm_ids = memory_lib.add_task(
            state.memory, sample_ids, cluster_labels, task_id, num_clusters=num_clusters
        )
        ref = np.asarray(state.ref_loss).copy()
        if ref_losses is not None:
            ref_losses = np.asarray(ref_losses, np.float32)
            if ref_losses.shape != (len(arm_ids),):
                raise ValueError(
                    f"ref_losses: expected one reference loss per cluster ({len(arm_ids)}), got shape {ref_losses.shape}"
                )
            ref[np.asarray(arm_ids)] = ref_losses
        active = np.asarray(memory.sizes) > 0
        return state.replace(
            memory=memory, bandit=bandit_fns.set_active(state.bandit, jnp.asarray(active)), ref_loss=jnp.asarray(ref)
        )

    def arm_probs(state):
        if name == "amr":
            return bandit_fns.probs(state.bandit)
        if name == "task_balanced":
            return _arm_probs_by_task(state.memory)
        if name == "none":
            return jnp.zeros(state.memory.sizes.shape, jnp.float32)
        sizes = state.memory.sizes.astype(jnp.float32)  # uniform / mir / joint: arms by size
        return sizes / jnp.maximum(jnp.sum(sizes), 1.0)

    def presample(state, key, num_steps: int, batch: int):
        """int32[num_steps, batch * candidates] replay ids; never the current task's."""
        if batch < 0 or num_steps < 0:
            raise ValueError(f"batch and num_steps must be >= 0, got batch={batch}, num_steps={num_steps}")
        width = 0 if name == "none" else batch * candidates
        if width == 0:
            return jnp.zeros((num_steps, width), jnp.int32)
        if name in ("uniform", "mir", "joint"):
            return memory_lib.draw_uniform(state.memory, key, (num_steps, width))
        return memory_lib.draw(state.memory, *_arm_draw(state, key, num_steps, width))

    def _arm_draw(state, key, num_steps, width):
        """(id key, arms int32[num_steps, width]) of the arm-first policies (amr, task_balanced)."""
        # The state is fixed for the whole presample, so all S x width draws are iid: one call each.
        arm_key, id_key = jax.random.split(key)
        if name == "amr":
            arms = bandit_fns.sample(state.bandit, arm_key, num_steps * width).reshape(num_steps, width)
        else:
            arms = _draw_arms(arm_key, _arm_probs_by_task(state.memory), (num_steps, width))
        return id_key, arms

    def presample_with_arms(state, key, num_steps: int, batch: int):
        """(presample's ids, int32 arm of each): the same random draws, arms taken from the draw."""
        if batch < 0 or num_steps < 0:
            raise ValueError(f"batch and num_steps must be >= 0, got batch={batch}, num_steps={num_steps}")
        width = 0 if name == "none" else batch * candidates
        if width == 0:
            return jnp.zeros((num_steps, width), jnp.int32), jnp.zeros((num_steps, width), jnp.int32)
        if name in ("uniform", "mir", "joint"):
            return memory_lib.draw_uniform_with_arms(state.memory, key, (num_steps, width))
        id_key, arms = _arm_draw(state, key, num_steps, width)
        ids = memory_lib.draw(state.memory, id_key, arms)
        return ids, jnp.where(ids >= 0, arms, -1).astype(jnp.int32)

    def rewards(state, arm_ids, losses, losses_after=None, sample_ids=None):
        """Bandit rewards for observed per-example losses (NaN where masked or unknown)."""
        losses = losses.astype(jnp.float32)
        if reward == "loss":
            return losses
        if reward == "loss_increase" and reference in ("sample", "visit"):
            if sample_ids is None:
                raise ValueError("sample_ids: the per-sample loss_increase reward needs the observed rows' ids")
            return losses - state.sample_ref[sample_ids]
        if reward == "loss_increase":
            return losses - state.ref_loss[arm_ids]
        if losses_after is None:
            raise ValueError("losses_after: the 'marginal' reward needs the replayed rows' loss after the update")
        return losses - losses_after.astype(jnp.float32)

    def observe(state, sample_ids, arm_ids, losses, losses_after=None):
        """Feeds per-example losses of replayed (or probed) rows back into the bandit."""
        if name != "amr":
            return state
        r = rewards(
            state,
            arm_ids.reshape(-1),
            losses.reshape(-1),
            None if losses_after is None else losses_after.reshape(-1),
            None if sample_ids is None else sample_ids.reshape(-1),
        )
        return state.replace(bandit=bandit_fns.observe(state.bandit, arm_ids.reshape(-1), r))

    def record_new(state, sample_ids, losses, replayed: bool = False):
        """Remembers rows' training losses as their per-sample reference; a no-op otherwise.

        New-task rows are recorded for the 'sample' and 'visit' references; replayed rows
        (`replayed=True`) only for 'visit', whose reward is the loss regained since a row's
        last visit."""
        if name != "amr" or reference == "arm" or (replayed and reference != "visit"):
            return state
        losses = losses.reshape(-1).astype(jnp.float32)
        ids = jnp.where(jnp.isfinite(losses), sample_ids.reshape(-1), state.sample_ref.shape[0])  # dropped
        return state.replace(sample_ref=state.sample_ref.at[ids].set(losses, mode="drop"))

    return ReplayPolicy(
        name=name,
        init=init,
        add_task=add_task,
        presample=presample,
        presample_with_arms=presample_with_arms,
        observe=observe,
        record_new=record_new,
        arm_probs=arm_probs,
        rewards=rewards,
        candidates=candidates if name == "mir" else 1,
        uses_bandit=name == "amr",
        needs_loss_after=(name == "amr" and reward == "marginal"),
    )
