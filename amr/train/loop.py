"""One continual pre-training run: a strategy and a seed through the whole task stream.

Per task: chunks of S steps (one jit each, see `amr.train.chunk`), held-out evaluation on
every task after the task (a row of the loss matrix) and every `eval_every` steps
(curves); then the task's data becomes arms (k-means over the current model's
embeddings when `replay.clusters_per_task > 1`) with their reference losses.
Metrics are fetched one chunk late so the host never stalls the device. The run
checkpoints every `train.checkpoint_every` chunks and at task ends, and resumes from
its checkpoint directory automatically.

With `memory.placement = "host"` the train rows stay off the device: finished tasks
are written to checksummed ArrayRecord shards and each chunk gets the rows of its
presampled replay ids from a prefetching loader (`amr.train.host_memory.HostReplay`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import grain
import jax
import jax.numpy as jnp
import numpy as np
import tqdm

from amr.analysis import forgetting as evaluate
from amr.compute import ledger as budget
from amr.compute.costs import CostModel, kmeans_flops
from amr.compute.plan import StrategyPlan, plan_strategy
from amr.io import faults
from amr.io.checkpoint import RunCheckpoints
from amr.io.metrics_log import MetricsLog
from amr.replay import clustering
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


def _task_stream(task, first_id: int, new_batch: int, seed: int, task_index: int):
    """grain pipeline of one task's new rows and their memory ids: shuffle, repeat, batch.

    Its iterator state is checkpointable."""
    rows = task.train
    ds = (
        grain.MapDataset.range(len(rows))
        .shuffle(seed=seed * 100_003 + task_index)
        .repeat(None)
        .map(lambda i: (rows[i], np.int32(first_id + i)))
        .batch(new_batch, drop_remainder=True)
    )
    return iter(ds.to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=8)))


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


class Run:
    def __init__(
        self,
        ctx: Context,
        strategy: Strategy,
        seed: int,
        ckpt_dir: str,
        log: MetricsLog | None = None,
        memory_dir: str | None = None,
    ):
        cfg = ctx.config
        self.ctx, self.cfg, self.seed, self.log = ctx, cfg, seed, log
        self.strategy, self.policy, self.costs = strategy.name, strategy.policy, strategy.costs
        self.plan, self.naive_plan = strategy.plan, strategy.naive_plan
        self.for_task, self.for_task_with_presample = strategy.for_task, strategy.for_task_with_presample
        self.reference = strategy.reference
        self.steps = cfg.train.steps_per_task
        self.num_tasks = len(ctx.tasks)
        params = ctx.model.init(jax.random.key(seed))
        self.template = TrainState(
            params=params,
            opt_state=strategy.tx.init(params),
            replay=self.policy.init(),
            rng=jax.random.fold_in(jax.random.key(seed), 1),
            step=jnp.zeros((), jnp.int32),
            task=jnp.zeros((), jnp.int32),
            skipped=jnp.zeros((), jnp.int32),
        )
        self.eval_pass, self.embed_pass = ctx.eval_pass, ctx.embed_pass
        self.ckpt = RunCheckpoints(ckpt_dir)
        self.host_replay = None  # host placement: shards + prefetching loader (default dir: <ckpt_dir>/memory)
        if host_memory.placement(cfg) == "host" and strategy.name != "none":
            self.host_replay = host_memory.HostReplay(
                ctx, memory_dir or os.path.join(ckpt_dir, "memory"), cfg.memory.staleness, cfg.memory.workers
            )

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, params, ledger: budget.Ledger) -> list[float]:
        faults.fault_point("eval")
        losses = []
        for task in self.ctx.tasks:
            per_row, batches = self.eval_pass(params, task.test)
            ledger.charge("eval", self.costs.forward(self.eval_pass.batch), samples=self.eval_pass.batch, calls=batches)
            losses.append(float(np.mean(per_row)))
        return losses

    # ---------------------------------------------------------------- task end -> arms
    def _add_arms(self, state: TrainState, t: int, ledger: budget.Ledger, host_ref: float) -> TrainState:
        """Task t's train rows become arms (charged to the next task's selection)."""
        cfg, task = self.cfg, self.ctx.tasks[t]
        ids = self.ctx.offsets[t] + np.arange(len(task.train))
        k = self.plan.clusters_per_task
        key = jax.random.fold_in(jax.random.key(self.seed), 1000 + t)
        if k > 1:
            emb, batches = self.embed_pass(state.params, task.train)
            ledger.charge(
                "selection", self.costs.embed(self.embed_pass.batch), samples=self.embed_pass.batch, calls=batches
            )
            result = clustering.kmeans(key, jnp.asarray(emb), k, num_iters=cfg.replay.kmeans_iters)
            labels = np.asarray(result.labels)
            ledger.charge("selection", kmeans_flops(emb.shape[0], emb.shape[1], k, cfg.replay.kmeans_iters))
        else:
            labels = clustering.per_task_labels(len(ids))
        ref = None
        if self.reference == "train":  # free: the task's own training loss over its last chunk
            ref = np.full((k,), host_ref, np.float32)
        elif self.reference == "probe":
            rng = np.random.default_rng(self.seed * 7919 + t)
            picks = np.concatenate(
                [rng.permutation(np.flatnonzero(labels == c))[: cfg.replay.ref_samples] for c in range(k)]
            )
            per_row, batches = self.eval_pass(state.params, task.train[picks])
            ledger.charge(
                "selection", self.costs.forward(self.eval_pass.batch), samples=self.eval_pass.batch, calls=batches
            )
            ref = np.array(
                [per_row[labels[picks] == c].mean() if np.any(labels[picks] == c) else np.nan for c in range(k)],
                np.float32,
            )
        replay = self.policy.add_task(state.replay, ids, labels, t, ref, num_clusters=k)
        return state.replace(replay=step_lib.replicate(self.ctx.mesh, replay))

    # ---------------------------------------------------------------- the loop
    def run(self, progress: bool = True) -> dict[str, Any]:
        cfg, ctx = self.cfg, self.ctx
        S = cfg.train.chunk_size
        chunks_per_task = self.steps // S
        state = step_lib.replicate(ctx.mesh, self.template)  # also the restore target: replicated on every process
        restored = self.ckpt.restore_latest(state)
        if restored is None:
            ledger = budget.Ledger()
            host = {
                "task": 0,
                "chunk": 0,
                "iter_state": None,
                "loss_rows": [],
                "curves": [],
                "arm_history": [],
                "init_losses": self._evaluate(state.params, ledger),
            }
        else:
            state, host = restored
            state = step_lib.replicate(ctx.mesh, state)
            ledger = budget.Ledger.from_json(host["ledger"])
            logging.warning(
                "%s seed %d: resuming at task %d chunk %d", self.strategy, self.seed, host["task"], host["chunk"]
            )

        for t in range(host["task"], self.num_tasks):
            ledger.start_task(t)
            plan, chunk_fn, presample = self.for_task_with_presample(t)
            from_host = presample is not None  # host placement, a task that replays
            stream = _task_stream(ctx.tasks[t], int(ctx.offsets[t]), plan.new_batch, self.seed, t)
            if host["chunk"] > 0 and host["iter_state"] is not None:
                stream.set_state(host["iter_state"])
            if from_host:
                self.host_replay.start_task(t, chunks_per_task, presample, host.pop("host_replay_pending", None))
            bar = tqdm.tqdm(
                total=self.steps,
                initial=host["chunk"] * S,
                disable=not progress,
                leave=False,
                desc=f"{self.strategy} seed {self.seed} task {t + 1}/{self.num_tasks} ({ctx.tasks[t].name})",
            )
            pending = None
            for c in range(host["chunk"], chunks_per_task):
                batches = [next(stream) for _ in range(S)]
                new, new_ids = np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])
                memory = self.host_replay.local_memory(c, state) if from_host else ctx.memory
                state, metrics = chunk_fn(
                    state,
                    step_lib.shard_new_batches(ctx.mesh, new),
                    step_lib.shard_new_batches(ctx.mesh, new_ids),
                    memory,
                )
                faults.fault_point("chunk")
                ledger.charge(
                    "train_new",
                    plan.step_flops * plan.new_batch / (plan.new_batch + plan.replay_batch),
                    samples=plan.new_batch,
                    calls=S,
                )
                ledger.charge(
                    "train_replay",
                    plan.step_flops * plan.replay_batch / (plan.new_batch + plan.replay_batch),
                    samples=plan.replay_batch,
                    calls=S,
                )
                ledger.charge("selection", plan.chunk_selection_flops, samples=plan.probe_samples)
                if pending is not None:
                    self._record(host, *pending)
                pending = (t, (c + 1) * S, metrics)
                bar.update(S)
                step_in_task = (c + 1) * S
                if cfg.train.eval_every and step_in_task % cfg.train.eval_every == 0 and c + 1 < chunks_per_task:
                    host["curves"].append(
                        {
                            "task": t,
                            "step": t * self.steps + step_in_task,
                            "losses": self._evaluate(state.params, ledger),
                        }
                    )
                if cfg.train.checkpoint_every and (c + 1) % cfg.train.checkpoint_every == 0 and c + 1 < chunks_per_task:
                    self._record(host, *pending)
                    pending = None
                    host.update(task=t, chunk=c + 1, iter_state=stream.get_state())
                    if from_host:
                        host["host_replay_pending"] = self.host_replay.pending_json()
                    self._save(state, host, ledger)
                    host.pop("host_replay_pending", None)
            if pending is not None:
                self._record(host, *pending)
            bar.close()
            row = self._evaluate(state.params, ledger)
            host["loss_rows"].append(row)
            host["curves"].append({"task": t, "step": (t + 1) * self.steps, "losses": row})
            if self.log:
                self.log.write(
                    {"kind": "task_end", "strategy": self.strategy, "seed": self.seed, "task": t, "heldout": row}
                )
            if t + 1 < self.num_tasks and self.strategy != "none":
                if self.host_replay:
                    self.host_replay.write_task(t)
                ledger.start_task(t + 1)
                state = self._add_arms(state, t, ledger, host.get("last_new_loss", float("nan")))
                faults.fault_point("arms")
            host.update(task=t + 1, chunk=0, iter_state=None)
            self._save(state, host, ledger)
            faults.fault_point("task_end")
        self.ckpt.close()
        if self.host_replay:
            self.host_replay.close()
        return self._result(host, ledger, state)

    def _record(self, host, task, step_in_task, metrics) -> None:
        """Host side of a chunk's metrics (called one chunk late, so the device keeps running)."""
        m = jax.device_get(metrics)
        skipped = int(np.sum(~np.isfinite(m["loss"])))
        if skipped and self.cfg.train.nonfinite == "halt":
            raise FloatingPointError(
                f"non-finite loss at task {task} step {step_in_task} ({self.strategy}, seed {self.seed}); "
                "set train.nonfinite='skip' to skip such steps instead"
            )
        step = task * self.steps + step_in_task
        host["last_new_loss"] = float(np.nanmean(m["new_loss"]))
        probs = np.asarray(m["arm_probs"], np.float64)
        if self.policy.uses_bandit and task > 0:
            host["arm_history"].append({"step": step, "probs": probs.tolist()})
        if self.log:
            self.log.write(
                {
                    "kind": "train",
                    "strategy": self.strategy,
                    "seed": self.seed,
                    "task": task,
                    "step": step,
                    "loss": float(np.nanmean(m["loss"])),
                    "nonfinite_steps": skipped,
                },
                scalars=("loss",),
            )

    def _save(self, state, host, ledger) -> None:
        host["ledger"] = ledger.to_json()
        self.ckpt.save(int(host["task"]) * 1_000_000 + int(host["chunk"]), state, host)

    def _result(self, host, ledger: budget.Ledger, state) -> dict[str, Any]:
        L = np.asarray(host["loss_rows"])
        metrics = evaluate.forgetting_metrics(L, init_losses=np.asarray(host["init_losses"]))
        naive_task = self.naive_plan.naive_task_flops
        return {
            "strategy": self.strategy,
            "seed": self.seed,
            "loss_matrix": L.tolist(),
            **metrics,
            "flops": ledger.summary(),
            "flops_per_task": ledger.per_task,
            "naive_task_flops": naive_task,
            "within_budget": all(
                budget.check_zero_cost(ledger.budget_flops(t), naive_task) for t in range(len(ledger.per_task))
            ),
            "plan": dataclasses.asdict(self.for_task(self.num_tasks - 1)[0]),
            "skipped_steps": int(jax.device_get(state.skipped)),
            "curves": host["curves"],
            "arm_history": host["arm_history"],
            "init_losses": host["init_losses"],
        }
