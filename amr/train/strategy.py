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
from amr.compute.measure import ChunkCost
from amr.compute.plan import StrategyPlan, plan_strategy, replay_slots, share_rows
from amr.methods import costs as method_costs
from amr.methods import hooks as method_hooks
from amr.methods import make_methods
from amr.replay import policies as replay_lib
from amr.replay import share as share_lib
from amr.train import chunk as step_lib
from amr.train import free_embeddings as free_lib
from amr.train import heldout, host_memory, measured
from amr.train.method_pass import TaskEndPass
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
    measured: dict = dataclasses.field(default_factory=dict)  # naive fine-tuning's measured chunk (the budget)
    train_embed_pass: heldout.ForwardPass | None = None  # free embeddings: rows never trained on

    @property
    def embedding_buffer_rows(self) -> int:
        """Rows of the free embeddings' buffer: the largest task."""
        return max(len(t.train) for t in self.tasks)

    @property
    def num_devices(self) -> int:
        return self.mesh.shape[step_lib.AXIS]


def shape_signature(ctx: Context) -> tuple:
    """What a context's compiled programs depend on besides its config, model and mesh: the shapes and
    dtypes of every task's rows (train, held-out, per source) and of the device memory. Contexts with
    equal signatures (the seeds of `data.resplit_per_seed`) can share strategies, passes and measured costs."""

    def sd(a) -> tuple:
        return tuple(a.shape), str(a.dtype)

    tasks = tuple(
        (sd(t.train), sd(t.test), tuple((k, sd(v)) for k, v in sorted(getattr(t, "sources", {}).items())))
        for t in ctx.tasks
    )
    return tasks, sd(ctx.memory)


def share_compiled(ctx: Context, like: Context) -> Context:
    """`ctx` with `like`'s jitted passes and measured costs when their shape signatures are equal (else `ctx`)."""
    if shape_signature(ctx) != shape_signature(like):
        return ctx
    return dataclasses.replace(
        ctx,
        eval_pass=like.eval_pass,
        embed_pass=like.embed_pass,
        train_embed_pass=like.train_embed_pass,
        measured=like.measured,
    )


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
        train_embed_pass=heldout.train_embed_pass(model, mesh, config.train.eval_batch),
    )


def reference_mode(cfg, strategy: str) -> str:
    """Where loss_increase's reference comes from: per row 'sample', 'visit' or 'task_end' (free), per arm
    'train' (free) or 'probe' (paid); 'benefit' always reads loss increases over 'sample'."""
    if strategy == "amr" and cfg.replay.reward == "benefit":
        return "sample"
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
    presample: Any = None  # host placement: jitted draws of the chunk's ids (replay_source.make_presample_fn)
    methods: tuple = ()  # amr.methods.Method records of config.methods (() = none)
    task_end_pass: TaskEndPass | None = None  # the methods' task-end hooks (falsy when none has one)
    share: Any = None  # amr.replay.share.ShareRule of the replay chunk (None: the fixed split)
    _per_task: dict = dataclasses.field(default_factory=dict)
    _measured: dict = dataclasses.field(default_factory=dict)  # ChunkCost per compiled chunk variant

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
            self._per_task[t] = _compile(
                self.ctx, self.name, self.tx, self.policy, self.costs, self.reference, t, self.methods
            )
        return self._per_task[t]

    def for_context(self, ctx: Context) -> Strategy:
        """This strategy on another context of the same `shape_signature` (another seed's split): its
        jitted chunks, plans and measured costs are shared, since the data enter them only as arguments."""
        if shape_signature(ctx) != shape_signature(self.ctx):
            raise ValueError(f"strategy {self.name!r}: a context of other shapes needs its own make_strategy")
        return dataclasses.replace(self, ctx=ctx)

    def init_state(self, seed: int) -> TrainState:
        """A run's initial TrainState on the host: model init of `key(seed)`, empty replay memory, task 0.

        The state's rng is `fold_in(key(seed), 1)` (chunk step keys fold in the step). With free
        embeddings (`free_embeddings.uses_buffer`) it carries an empty buffer for task 0."""
        state = _init_state(self.ctx.model, self.tx, self.policy, seed, self.methods, self.share)
        if free_lib.uses_buffer(self.ctx.config, self.name):
            state = state.replace(embeddings=self.empty_embeddings(0))
        return state

    def empty_embeddings(self, t: int) -> free_lib.EmbeddingBuffer:
        """The free embeddings' buffer at task t's start (host arrays): no row seen."""
        ctx = self.ctx
        dim = jax.eval_shape(ctx.model.embed, jax.eval_shape(ctx.model.init, jax.random.key(0)), _example_row(ctx))
        return free_lib.empty(ctx.embedding_buffer_rows, dim.shape[-1], int(ctx.offsets[t]))

    def chunk_cost(self, t: int) -> ChunkCost:
        """Measured cost of one chunk of task t (`amr.train.measured`), analysed once per compiled variant."""
        if self.name == "none" and not self.methods:
            return naive_chunk_cost(self.ctx, self.tx, self.costs)
        variant = 0 if t == 0 else (t if self.name == "joint" else 1)
        if variant not in self._measured:
            plan, _, presample = self.for_task_with_presample(t)
            spec = _spec(self.ctx.config, plan)
            state = jax.eval_shape(lambda: self.init_state(0))
            self._measured[variant] = measured.chunk_cost(
                self.ctx, self.tx, self.policy, spec, state, self.costs, presample is not None,
                methods=self.methods,
                share=self.share if spec.flex else None,
                nominal_replay=share_rows(self.ctx.config, self.ctx.num_devices)[2] if spec.flex else None,
            )  # fmt: skip
        return self._measured[variant]

    def naive_task_flops(self) -> float:
        """The budget: naive fine-tuning's measured cost of one task (its own compiled chunk x chunks)."""
        cfg = self.ctx.config
        return naive_chunk_cost(self.ctx, self.tx, self.costs).total * (
            cfg.train.steps_per_task // cfg.train.chunk_size
        )


def _example_row(ctx: Context) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((1,) + tuple(ctx.model.example_shape), ctx.model.example_dtype)


def _spec(cfg, plan: StrategyPlan) -> step_lib.ChunkSpec:
    return step_lib.ChunkSpec(
        cfg.train.chunk_size, plan.new_batch, plan.replay_batch, plan.probe_samples, plan.flex_rows
    )


def make_share_rule(cfg, num_devices: int) -> share_lib.ShareRule:
    """`replay.share` of `cfg` as a rule over global replay rows per step (see `amr.replay.share`)."""
    rows_min, rows_max, target = share_rows(cfg, num_devices)
    return share_lib.make_share(
        cfg.replay.get("share", "fixed"),
        rows_min=rows_min,
        rows_max=rows_max,
        rows_target=target,
        steps_per_task=cfg.train.steps_per_task,
        chunk_size=cfg.train.chunk_size,
        profile=cfg.replay.get("share_schedule", "front"),
        plateau_decay=cfg.replay.get("plateau_decay", 0.8),
        plateau_z=cfg.replay.get("plateau_z", 1.0),
    )


def _init_state(model, tx, policy: replay_lib.ReplayPolicy, seed: int, methods: tuple = (), share=None) -> TrainState:
    params = model.init(jax.random.key(seed))
    return TrainState(
        params=params,
        opt_state=tx.init(params),
        replay=policy.init(),
        rng=jax.random.fold_in(jax.random.key(seed), 1),
        step=jnp.zeros((), jnp.int32),
        task=jnp.zeros((), jnp.int32),
        skipped=jnp.zeros((), jnp.int32),
        methods=method_hooks.init_states(methods, params),
        share=None if share is None else share.init(),
    )


def naive_chunk_cost(ctx: Context, tx, costs: CostModel) -> ChunkCost:
    """Measured cost of a chunk of strategy `none` (full batch of new rows, its own policy), once per context."""
    if "none" not in ctx.measured:
        cfg, policy = ctx.config, _policy(ctx, "none")
        spec = step_lib.ChunkSpec(cfg.train.chunk_size, cfg.train.batch_size, 0)
        state = jax.eval_shape(lambda: _init_state(ctx.model, tx, policy, 0))
        ctx.measured["none"] = measured.chunk_cost(ctx, tx, policy, spec, state, costs, False)
    return ctx.measured["none"]


def _compile(
    ctx: Context,
    name: str,
    tx,
    policy,
    costs: CostModel,
    reference: str,
    past_tasks: int = 1,
    methods: tuple = (),
    share=None,
):
    """(plan, jitted chunk, jitted presample or None): host placement's replay chunks take presampled rows.

    `share`: the replay-share rule, used when the plan has flex rows."""
    cfg = ctx.config
    max_rows = max(len(t.train) for t in ctx.tasks[:-1]) if len(ctx.tasks) > 1 else 0
    plan = plan_strategy(
        cfg,
        name,
        costs,
        ctx.num_devices,
        max_rows,
        paid_reference=reference == "probe",
        past_tasks=past_tasks,
        methods_cost=methods_cost(ctx, tx, methods, replay_slots(cfg, name, ctx.num_devices, past_tasks), costs),
    )
    spec = _spec(cfg, plan)
    on_host = host_memory.placement(cfg) == "host" and plan.replay_batch > 0
    share = share if spec.flex else None
    chunk = step_lib.make_chunk_fn(
        ctx.model, tx, policy, ctx.mesh, spec, host_memory=on_host, methods=methods, share=share
    )
    return plan, chunk, step_lib.make_presample_fn(policy, spec) if on_host else None


def _policy(ctx: Context, name: str) -> replay_lib.ReplayPolicy:
    cfg = ctx.config
    clusters = cfg.replay.clusters_per_task if name == "amr" else 1
    reference = reference_mode(cfg, name)
    return replay_lib.make_replay(
        name,
        max_arms=cfg.replay.max_arms or len(ctx.tasks) * clusters,
        capacity=int(ctx.offsets[-1] + len(ctx.tasks[-1].train)),
        reward=cfg.replay.reward,
        candidates=cfg.replay.mir_candidates if name == "mir" else 1,
        mir_lr=cfg.replay.mir_lr,
        bandit=dict(cfg.bandit),
        reference=reference if reference in replay_lib.PER_ROW_REFERENCES else "arm",
        track_arms=host_memory.placement(cfg) != "host",
        task_tilt=cfg.replay.get("task_tilt", 0.0),
        benefit_alpha=cfg.replay.get("benefit_alpha", 0.2),
        benefit_prior=cfg.replay.get("benefit_prior", 2.0),
        row_priority=cfg.replay.get("row_priority", 0.0),
    )


def methods_cost(
    ctx: Context, tx, methods: tuple, replay: int = 0, costs: CostModel | None = None
) -> tuple[float, float]:
    """(FLOPs the methods add to one train step, FLOPs of their task-end pass) for the plan; (0, 0) without
    methods. The step is measured at `train.batch_size` rows of which the last `replay` are replayed (what
    a loss term on the replayed rows, e.g. distillation, reads), once per context and split
    (`amr.methods.costs`). With `costs` (the plain optimizer's), the step includes what the methods'
    transforms and optimizer wrappers add to the optimizer update."""
    if not methods:
        return (0.0, 0.0)
    if ("methods", replay) not in ctx.measured:
        model, batch = ctx.model, ctx.config.train.batch_size
        num_new = batch - replay if replay < batch else batch  # joint replays whole batches beyond its own
        rows_in_step = num_new + replay
        state = jax.eval_shape(lambda: _init_state(model, tx, _policy(ctx, "none"), 0, methods))
        rows = jax.ShapeDtypeStruct((rows_in_step,) + tuple(model.example_shape), model.example_dtype)
        keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), rows_in_step))
        per_step = method_costs.step_flops(methods, state.methods, state.params, rows, keys, num_new, model)
        if costs is not None and tx is not costs.tx:  # the methods' transforms and optimizer wrappers
            if "methods_optimizer" not in ctx.measured:
                with_methods = CostModel(model, tx, state.params, state.opt_state)
                ctx.measured["methods_optimizer"] = method_costs.optimizer_flops(costs, with_methods)
            per_step += ctx.measured["methods_optimizer"]
        if "methods_task_end" not in ctx.measured:
            ctx.measured["methods_task_end"] = TaskEndPass(methods, model, ctx.mesh).flops(state)
        ctx.measured[("methods", replay)] = (per_step, ctx.measured["methods_task_end"])
    return ctx.measured[("methods", replay)]


def make_strategy(ctx: Context, name: str) -> Strategy:
    """Strategy `name` compiled for `ctx`: replay policy, optimizer, costs, plans and jitted chunks."""
    cfg = ctx.config
    methods = make_methods(cfg, ctx.model)
    plain_tx = make_optimizer(cfg.optim, cfg.train.steps_per_task)
    tx = method_hooks.with_transforms(methods, plain_tx)
    reference = reference_mode(cfg, name)
    policy = _policy(ctx, name)
    params = jax.eval_shape(ctx.model.init, jax.random.key(0))
    # the budget is naive fine-tuning with the configured optimizer; what methods add to it is selection
    costs = CostModel(ctx.model, plain_tx, params, jax.eval_shape(plain_tx.init, params))
    naive_plan, first, _ = _compile(ctx, "none", tx, policy, costs, "none", methods=methods)
    share = make_share_rule(cfg, ctx.num_devices) if name not in ("none", "joint") else None
    plan, replay, presample = (
        (naive_plan, None, None)
        if name in ("none", "joint")
        else _compile(ctx, name, tx, policy, costs, reference, methods=methods, share=share)
    )
    share = share if plan.flex_rows else None  # no flex slots: the fixed split, no share state
    task_end_pass = TaskEndPass(methods, ctx.model, ctx.mesh)
    return Strategy(
        name, tx, policy, costs, plan, naive_plan, first, replay, reference, ctx, presample,
        methods=methods, task_end_pass=task_end_pass, share=share,
    )  # fmt: skip
