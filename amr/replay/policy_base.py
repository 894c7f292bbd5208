"""The record every replay policy returns, its state, and the pieces the factories share.

See `amr.replay.policies` for the factories and how the functions are used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from amr.replay import bandit as bandit_lib
from amr.replay import benefit as benefit_lib
from amr.replay import memory as memory_lib
from amr.replay import row_priority as row_priority_lib


@dataclasses.dataclass(frozen=True)
class ReplayState:
    memory: memory_lib.MemoryIndex
    bandit: bandit_lib.BanditState
    ref_loss: jax.Array  # f32[K] held-in loss of each arm when its task ended (NaN: unknown)
    sample_ref: jax.Array  # f32[capacity] each sample's own loss when it was last trained on as new data
    benefit: benefit_lib.BenefitState | None = None  # the 'benefit' reward's per-arm moments (amr.replay.benefit)
    row_gap: row_priority_lib.RowGaps | None = None  # each row's last observed reward (amr.replay.row_priority)

    def replace(self, **fields) -> ReplayState:
        return dataclasses.replace(self, **fields)


_REPLAY_FIELDS = ("memory", "bandit", "ref_loss", "sample_ref")
_OPTIONAL_FIELDS = ("benefit", "row_gap")


def _flatten_replay(state: ReplayState):
    """Children by attribute name; an optional field only when present, so every policy's state without it has
    exactly the leaves, paths and checkpoints it had before the field existed."""
    present = tuple(n for n in _OPTIONAL_FIELDS if getattr(state, n) is not None)
    return [(jax.tree_util.GetAttrKey(n), getattr(state, n)) for n in _REPLAY_FIELDS + present], present


def _unflatten_replay(present: tuple[str, ...], children) -> ReplayState:
    children = list(children)
    required = children[: len(_REPLAY_FIELDS)]
    return ReplayState(*required, **dict(zip(present, children[len(_REPLAY_FIELDS) :])))


jax.tree_util.register_pytree_with_keys(ReplayState, _flatten_replay, _unflatten_replay)


class Candidates(NamedTuple):
    """One step's replay candidates, as `select` takes and returns them."""

    ids: jax.Array  # int32[R*C] global ids (identical on every device)
    arms: jax.Array | None  # int32[R*C] their arms, or None when the caller derives them later
    rows: Any  # this device's rows of its columns of `ids` (a pytree, leading axis R*C / devices)


class ReplayPolicy(NamedTuple):
    name: str
    init: Callable[[], ReplayState]
    add_task: Callable[..., ReplayState]  # host side: a finished task's samples become arms
    presample: Callable[..., jax.Array]  # (state, key, num_steps, batch) -> int32[S, batch * candidates]
    presample_with_arms: Callable[..., tuple[jax.Array, jax.Array]]  # presample's ids and the arm of each
    select: Callable[..., Candidates]  # keeps `batch` of a step's candidates (MIR); identity otherwise
    observe: Callable[..., ReplayState]  # feeds replayed rows' pre-update losses back (amr)
    record_new: Callable[..., ReplayState]  # remembers rows' training losses (amr's per-sample references)
    arm_probs: Callable[[ReplayState], jax.Array]
    rewards: Callable[..., jax.Array]
    candidates: int  # ids presampled per replay slot (mir > 1)
    uses_bandit: bool
    needs_loss_after: bool  # the 'marginal' reward needs the replayed rows' loss after the update
    needs_step: bool  # the 'benefit' reward needs `observe(..., step=)`, the observation's global step


# ---------------------------------------------------------------- shared pieces


def arm_probs_by_task(memory: memory_lib.MemoryIndex) -> jax.Array:
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


def arm_probs_by_size(state: ReplayState) -> jax.Array:
    sizes = state.memory.sizes.astype(jnp.float32)
    return sizes / jnp.maximum(jnp.sum(sizes), 1.0)


def _width(num_steps: int, batch: int, candidates: int, state=None) -> int:
    """Ids drawn per step; with a concrete `state` also checks (host side) that there is something to draw."""
    if batch < 0 or num_steps < 0:
        raise ValueError(f"batch and num_steps must be >= 0, got batch={batch}, num_steps={num_steps}")
    width = batch * candidates
    if width and state is not None and not isinstance(state.memory.num_samples, jax.core.Tracer):
        if int(state.memory.num_samples) == 0:
            raise ValueError("state: the replay memory is empty (no task added yet); call add_task before presample")
    return width


def uniform_draws(candidates: int):
    """(presample, presample_with_arms) uniform over all stored samples (uniform, joint, mir)."""

    def presample(state, key, num_steps: int, batch: int):
        """int32[num_steps, batch * candidates] replay ids; never the current task's (-1: empty memory)."""
        width = _width(num_steps, batch, candidates, state)
        if width == 0:
            return jnp.zeros((num_steps, 0), jnp.int32)
        return memory_lib.draw_uniform(state.memory, key, (num_steps, width))

    def presample_with_arms(state, key, num_steps: int, batch: int):
        """(presample's ids, int32 arm of each): the same random draws, arms taken from the draw."""
        width = _width(num_steps, batch, candidates, state)
        if width == 0:
            return jnp.zeros((num_steps, 0), jnp.int32), jnp.zeros((num_steps, 0), jnp.int32)
        return memory_lib.draw_uniform_with_arms(state.memory, key, (num_steps, width))

    return presample, presample_with_arms


def arm_first_draws(arm_sampler: Callable, id_sampler: Callable | None = None):
    """(presample, presample_with_arms) drawing an arm, then a sample inside it (amr, task_balanced).

    `arm_sampler(state, key, shape) -> int32[shape]` arm ids; `id_sampler(state, key, arm_ids) -> ids`
    takes a sample inside each (default: uniformly, `memory.draw`)."""
    id_sampler = id_sampler or (lambda state, key, arms: memory_lib.draw(state.memory, key, arms))

    def draw(state, key, num_steps, batch):
        if _width(num_steps, batch, 1, state) == 0:
            empty = jnp.zeros((num_steps, 0), jnp.int32)
            return empty, empty
        # The state is fixed for the whole presample, so all S x width draws are iid: one call each.
        arm_key, id_key = jax.random.split(key)
        arms = arm_sampler(state, arm_key, (num_steps, _width(num_steps, batch, 1)))
        return arms, id_sampler(state, id_key, arms)

    def presample(state, key, num_steps: int, batch: int):
        """int32[num_steps, batch] replay ids; never the current task's (-1: empty memory)."""
        return draw(state, key, num_steps, batch)[1]

    def presample_with_arms(state, key, num_steps: int, batch: int):
        """(presample's ids, int32 arm of each): the same random draws, arms taken from the draw."""
        arms, ids = draw(state, key, num_steps, batch)
        return ids, jnp.where(ids >= 0, arms, -1).astype(jnp.int32)

    return presample, presample_with_arms


def no_draws():
    def presample(state, key, num_steps: int, batch: int):
        return jnp.zeros((num_steps, _width(num_steps, batch, 0)), jnp.int32)

    def presample_with_arms(state, key, num_steps: int, batch: int):
        empty = presample(state, key, num_steps, batch)
        return empty, empty

    return presample, presample_with_arms


def keep_all(candidates: Candidates, params, new_loss_fn, cand_loss_fn, axis_name=None) -> Candidates:
    """The `select` of every policy without candidates: all of them, unchanged."""
    return candidates


def check_ids_losses(fn: str, ids, losses, ids_name="sample_ids", losses_name="losses"):
    """Dtype and shape checks (static, so they also fire while tracing, before any compile)."""
    if ids is not None:
        ids = jnp.asarray(ids)
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise ValueError(f"{fn}: {ids_name} must be integer ids, got dtype {ids.dtype}")
    losses = jnp.asarray(losses)
    if not jnp.issubdtype(losses.dtype, jnp.floating):
        raise ValueError(f"{fn}: {losses_name} must be floating per-example losses, got dtype {losses.dtype}")
    if ids is not None and ids.shape != losses.shape:
        raise ValueError(
            f"{fn}: {losses_name} must have one loss per id, got shapes {ids_name} {ids.shape} and {losses.shape}"
        )
    return ids, losses


def _observe_nothing(state, sample_ids, arm_ids, losses, losses_after=None, step=None):
    check_ids_losses("observe", arm_ids, losses, "arm_ids")
    check_ids_losses("observe", sample_ids, losses)
    return state


def _record_nothing(state, sample_ids, losses, replayed: bool = False):
    check_ids_losses("record_new", sample_ids, losses)
    return state


def anchor_sample_refs(sample_ref, sample_ids, anchor):
    """`sample_ref` with `anchor` added at `sample_ids` (rows never recorded stay NaN; ids outside it are
    ignored). A NaN anchor leaves the task's references unknown (NaN): the bandit ignores their rewards
    rather than read residuals as levels."""
    ids = np.asarray(sample_ids, np.int64).reshape(-1)
    ids = ids[(ids >= 0) & (ids < sample_ref.shape[0])]
    level = np.float32(anchor)
    return sample_ref.at[jnp.asarray(ids, jnp.int32)].add(level)


def _no_rewards(state, arm_ids, losses, losses_after=None, sample_ids=None):
    raise ValueError("rewards: only the 'amr' policy turns losses into bandit rewards")


def make_policy(
    name: str, *, max_arms: int, capacity: int, track_arms: bool, draws, arm_probs, **fields
) -> ReplayPolicy:
    """A ReplayPolicy over a memory of `max_arms` arms and ids in [0, capacity)."""
    bandit_fns = fields.pop("bandit_fns", None) or bandit_lib.make_bandit(max_arms)
    sample_refs = fields.pop("sample_refs", 1)
    benefit_arms = fields.pop("benefit_arms", 0)  # > 0: the state keeps benefit moments of that many arms
    row_gaps = fields.pop("row_gaps", 0)  # > 0: the state keeps each row's last observed reward (row_priority)
    anchors_refs = fields.pop("anchors_refs", False)  # 'task_end' reference: add_task(anchor=) shifts a task's refs
    # Probes the empty-memory/int32 limits now, not inside a trace.
    template = memory_lib.empty_index(max_arms, capacity, track_arms=track_arms)

    def init() -> ReplayState:
        return ReplayState(
            memory=template,
            bandit=bandit_fns.init(np.zeros((max_arms,), bool)),
            ref_loss=jnp.full((max_arms,), jnp.nan, jnp.float32),
            sample_ref=jnp.full((sample_refs,), jnp.nan, jnp.float32),
            benefit=benefit_lib.init(benefit_arms) if benefit_arms else None,
            row_gap=row_priority_lib.init(row_gaps) if row_gaps else None,
        )

    def add_task(state, sample_ids, cluster_labels, task_id, ref_losses=None, num_clusters=None, anchor=None):
        """Host side: a finished task's samples become arms. Same shapes out as in.

        `ref_losses` (f32[num_clusters], optional): each new arm's loss at its task end, the
        reference of loss_increase with reference='arm'. `anchor` (reference 'task_end' only): the
        task's training loss at its end, added to its rows' residual references (`_record_sample_refs`)."""
        if anchor is not None and not anchors_refs:
            raise ValueError(f"anchor: only the 'task_end' reference anchors its rows' references ({name})")
        if anchors_refs:
            if anchor is None:
                raise ValueError("anchor: the 'task_end' reference needs the task's training loss at its end")
            state = state.replace(sample_ref=anchor_sample_refs(state.sample_ref, sample_ids, anchor))
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

    presample, presample_with_arms = draws
    defaults = dict(
        select=keep_all,
        observe=_observe_nothing,
        record_new=_record_nothing,
        rewards=_no_rewards,
        candidates=1,
        uses_bandit=False,
        needs_loss_after=False,
        needs_step=False,
    )
    defaults.update(fields)
    return ReplayPolicy(
        name=name,
        init=init,
        add_task=add_task,
        presample=presample,
        presample_with_arms=presample_with_arms,
        arm_probs=arm_probs,
        **defaults,
    )
