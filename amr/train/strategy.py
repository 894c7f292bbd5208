"""What runs of one experiment share: the context (data, model, mesh, memory) and compiled strategies.

`make_context` puts the tasks' rows on device once; `make_strategy(ctx, name)` builds a
strategy's replay policy, optimizer, batch plan and jitted chunk functions, once for all
seeds; `Strategy.init_state(seed)` is a run's initial TrainState.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from amr.compute.costs import CostModel
from amr.compute.plan import StrategyPlan, plan_strategy
from amr.replay import policies as replay_lib
from amr.train import chunk as step_lib
from amr.train import heldout, host_memory
from amr.train.state import TrainState, make_optimizer


@dataclasses.dataclass
class Context:
    """What every run of one experiment shares: data, model, mesh, device-resident memory (host placement: none)."""

    config: Any
    tasks: list  # amr.data Task objects
    model: Any  # amr.models.ModelSpec
    mesh: jax.sharding.Mesh
    memory: jax.Array  # [sum N_t, ...] all tasks' train rows, replicated on device (host placement: a placeholder)
    offsets: np.ndarray  # first memory id of each task
    eval_pass: heldout.ForwardPass  # per-row losses with fixed masks, for held-out and reference losses
    embed_pass: heldout.ForwardPass  # per-row embeddings, for k-means arms

    @property
    def num_devices(self) -> int:
        return self.mesh.shape[step_lib.AXIS]


def make_context(config, tasks, model, mesh) -> Context:
    """The shared context: task offsets in the memory, the rows on device (device placement), held-out passes."""
    offsets = np.cumsum([0] + [len(t.train) for t in tasks])[:-1]
    if host_memory.placement(config) == "host":  # rows come from shards; first-task chunks never read this
        memory = step_lib.replicate(mesh, np.zeros((1,), np.int32))
    else:
        memory = step_lib.replicate(mesh, np.concatenate([t.train for t in tasks]))
    return Context(
        config,
        tasks,
        model,
        mesh,
        memory,
        offsets,
        heldout.loss_pass(model, mesh, config.train.eval_batch),
        heldout.embed_pass(model, mesh, config.train.eval_batch),
    )


def reference_mode(cfg, strategy: str) -> str:
    """Where loss_increase's per-arm reference comes from: 'train' (free) or 'probe' (paid)."""
    if strategy != "amr" or cfg.replay.reward != "loss_increase":
        return "none"
    if cfg.replay.reference == "auto":
        return "sample"
    return cfg.replay.reference


@dataclasses.dataclass
class Strategy:
    """Everything about a strategy that does not depend on the seed, compiled once and shared by seeds."""

    name: str
    tx: Any
    policy: replay_lib.ReplayPolicy
    costs: CostModel
    plan: StrategyPlan
    naive_plan: StrategyPlan
    first_chunk: Any  # task 0 (nothing to replay yet): every row is new
    replay_chunk: Any
    reference: str
    ctx: Any = None
    presample: Any = None  # host placement: jitted draws of replay_chunk's ids (amr.train.chunk.make_presample_fn)
    _per_task: dict = dataclasses.field(default_factory=dict)

    def for_task(self, t: int) -> tuple[StrategyPlan, Any]:
        """(plan, jitted chunk) of task t. `joint`'s batch grows with the tasks seen: one compile per task."""
        return self.for_task_with_presample(t)[:2]

    def for_task_with_presample(self, t: int) -> tuple[StrategyPlan, Any, Any]:
        """(plan, jitted chunk, host placement's jitted presample or None) of task t."""
        if t == 0 or self.name == "none":
            return self.naive_plan, self.first_chunk, None
        if self.name != "joint":
            return self.plan, self.replay_chunk, self.presample
        if t not in self._per_task:
            self._per_task[t] = _compile(self.ctx, self.name, self.tx, self.policy, self.costs, self.reference, t)
        return self._per_task[t]

    def init_state(self, seed: int) -> TrainState:
        """A run's initial TrainState on the host: model init of `key(seed)`, empty replay memory, task 0.

        The state's rng is `fold_in(key(seed), 1)` (chunk step keys fold in the step)."""
        params = self.ctx.model.init(jax.random.key(seed))
        return TrainState(
            params=params,
            opt_state=self.tx.init(params),
            replay=self.policy.init(),
            rng=jax.random.fold_in(jax.random.key(seed), 1),
            step=jnp.zeros((), jnp.int32),
            task=jnp.zeros((), jnp.int32),
            skipped=jnp.zeros((), jnp.int32),
        )


def _compile(ctx: Context, name: str, tx, policy, costs: CostModel, reference: str, past_tasks: int = 1):
    """(plan, jitted chunk, jitted presample or None): host placement's replay chunks take presampled rows."""
    cfg = ctx.config
    max_rows = max(len(t.train) for t in ctx.tasks[:-1]) if len(ctx.tasks) > 1 else 0
    plan = plan_strategy(
        cfg, name, costs, ctx.num_devices, max_rows, paid_reference=reference == "probe", past_tasks=past_tasks
    )
    spec = step_lib.ChunkSpec(cfg.train.chunk_size, plan.new_batch, plan.replay_batch, plan.probe_samples)
    on_host = host_memory.placement(cfg) == "host" and plan.replay_batch > 0
    chunk = step_lib.make_chunk_fn(ctx.model, tx, policy, ctx.mesh, spec, host_memory=on_host)
    return plan, chunk, step_lib.make_presample_fn(policy, spec) if on_host else None


def make_strategy(ctx: Context, name: str) -> Strategy:
    """Strategy `name` compiled for `ctx`: replay policy, optimizer, costs, plans and jitted chunks."""
    cfg = ctx.config
    steps, num_tasks = cfg.train.steps_per_task, len(ctx.tasks)
    tx = make_optimizer(cfg.optim, steps)
    clusters = cfg.replay.clusters_per_task if name == "amr" else 1
    reference = reference_mode(cfg, name)
    on_host = host_memory.placement(cfg) == "host"
    policy = replay_lib.make_replay(
        name,
        max_arms=cfg.replay.max_arms or num_tasks * clusters,
        capacity=int(ctx.offsets[-1] + len(ctx.tasks[-1].train)),
        reward=cfg.replay.reward,
        candidates=cfg.replay.mir_candidates if name == "mir" else 1,
        mir_lr=cfg.replay.mir_lr,
        bandit=dict(cfg.bandit),
        reference=reference if reference in ("sample", "visit") else "arm",
        track_arms=not on_host,
    )
    params = jax.eval_shape(ctx.model.init, jax.random.key(0))
    costs = CostModel(ctx.model, tx, params, jax.eval_shape(tx.init, params))
    naive_plan, first, _ = _compile(ctx, "none", tx, policy, costs, "none")
    plan, replay, presample = (
        (naive_plan, None, None) if name in ("none", "joint") else _compile(ctx, name, tx, policy, costs, reference)
    )
    return Strategy(name, tx, policy, costs, plan, naive_plan, first, replay, reference, ctx, presample)
