"""One continual pre-training run: a strategy and a seed through the whole task stream.

Per task: chunks of S steps (one jit each, see `amr.train.chunk`), held-out evaluation on
every task after the task (a row of the loss matrix) and every `eval_every` steps
(curves); then the task's data becomes arms (k-means over the current model's
embeddings when `replay.clusters_per_task > 1`; with `replay.embeddings = "free"` those kept from
the training passes, `amr.train.free_embeddings`) with their reference losses.
Metrics are fetched one chunk late so the host never stalls the device. The run
checkpoints every `train.checkpoint_every` chunks and at task ends (TrainState plus the
JSON of its `HostState`), and resumes from its checkpoint directory automatically.

With `memory.placement = "host"` the train rows stay off the device: finished tasks
are written to checksummed ArrayRecord shards and each chunk gets the rows of its
presampled replay ids from a prefetching loader (`amr.train.host_memory.HostReplay`).

The pieces live next door: `amr.train.strategy` (context, compiled strategies),
`amr.train.streams` (task streams), `amr.train.host_state` (the checkpointed host
state), `amr.train.progress` (progress output), `amr.train.result` (the result dict).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from amr.compute import ledger as budget
from amr.compute.costs import kmeans_cost
from amr.compute.measure import ChunkCost
from amr.data.tasks import group_labels
from amr.io import faults
from amr.io.checkpoint import RunCheckpoints
from amr.io.metrics_log import MetricsLog
from amr.methods import hooks as method_hooks
from amr.replay import clustering
from amr.train import chunk as step_lib
from amr.train import flex_batch, host_memory
from amr.train.host_state import HostState
from amr.train.progress import TaskProgress
from amr.train.result import run_result
from amr.train.state import TrainState
from amr.train.strategy import Context, Strategy, make_context, make_strategy, reference_mode
from amr.train.streams import next_chunk, task_stream

__all__ = [
    "Context",
    "HostState",
    "Run",
    "Strategy",
    "make_context",
    "make_strategy",
    "next_chunk",
    "reference_mode",
    "task_stream",
]


class Run:
    """One strategy and one seed: `Run(ctx, make_strategy(ctx, name), seed, ckpt_dir).run()` -> result dict."""

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
        self.compiled = strategy
        self.strategy = strategy.name  # in metrics records and messages
        self.policy, self.costs, self.plan = strategy.policy, strategy.costs, strategy.plan
        self.reference = strategy.reference
        self.steps = cfg.train.steps_per_task
        self.num_tasks = len(ctx.tasks)
        self.template = strategy.init_state(seed)  # the initial state, on the host
        self.eval_pass, self.embed_pass = ctx.eval_pass, ctx.embed_pass
        self.methods, self.task_end_pass = strategy.methods, strategy.task_end_pass  # amr.methods (() / falsy: none)
        self.ckpt = RunCheckpoints(ckpt_dir)
        self.host_replay = None  # host placement: shards + prefetching loader (default dir: <ckpt_dir>/memory)
        if host_memory.placement(cfg) == "host" and strategy.name != "none":
            self.host_replay = host_memory.HostReplay(
                ctx, memory_dir or os.path.join(ckpt_dir, "memory"), cfg.memory.staleness, cfg.memory.workers
            )
        self._progress: TaskProgress | None = None  # the task being trained
        self.sources, self.source_last_seen = _source_sets(ctx.tasks)  # mixture streams: per-source held-out rows

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, state: TrainState, ledger: budget.Ledger) -> list[float]:
        """Held-out loss of every task, with the methods' evaluation parameters (the weight EMA's; else the
        trained ones)."""
        faults.fault_point("eval")
        return self._mean_losses(self._eval_params(state), ledger, [task.test for task in self.ctx.tasks])

    def _evaluate_sources(self, state: TrainState, ledger: budget.Ledger) -> list[float]:
        """Held-out loss of every source of a mixture stream (one per source, wherever it recurs)."""
        return self._mean_losses(self._eval_params(state), ledger, list(self.sources.values()))

    def _eval_params(self, state: TrainState):
        return method_hooks.eval_params(self.methods, state.methods, state.params)

    def _mean_losses(self, params, ledger: budget.Ledger, row_sets) -> list[float]:
        """Mean held-out loss of each row set, charged to `eval`."""
        losses = []
        for rows in row_sets:
            per_row, batches = self.eval_pass(params, rows)
            ledger.charge("eval", self.eval_pass.flops(params), samples=self.eval_pass.batch, calls=batches)
            losses.append(float(np.mean(per_row)))
        return losses

    # ---------------------------------------------------------------- task end -> arms
    def add_arms(self, state: TrainState, t: int, ledger: budget.Ledger, host_ref: float) -> TrainState:
        """Task t's train rows become arms of the replay state (charged to `ledger`'s current task).

        One arm per task, or with `replay.clusters_per_task > 1` k-means clusters of the model's embeddings
        or, with `replay.arm_labels = "groups"`, the data's own group of each row (free). `host_ref` is the "train" reference loss (the task's
        training loss over its last chunk) and the "task_end" anchor; "probe" references are measured here and paid.
        `state` must be replicated on the mesh; the result is too."""
        cfg, task = self.cfg, self.ctx.tasks[t]
        ids = self.ctx.offsets[t] + np.arange(len(task.train))
        k = self.plan.clusters_per_task
        key = jax.random.fold_in(jax.random.key(self.seed), 1000 + t)
        if k > 1 and clustering.arm_labels(cfg) == "groups":
            labels = group_labels(task)  # the data's own groups: no embeddings, no k-means, nothing to charge
        elif k > 1:
            if state.embeddings is None:
                emb, batches = self.embed_pass(state.params, task.train)
                ledger.charge(
                    "selection", self.embed_pass.flops(state.params), samples=self.embed_pass.batch, calls=batches
                )
            else:
                emb = self._free_embeddings(state, task.train, ledger)
            result = clustering.kmeans(key, jnp.asarray(emb), k, num_iters=cfg.replay.kmeans_iters)
            labels = np.asarray(result.labels)
            ledger.charge("selection", kmeans_cost(emb.shape[0], emb.shape[1], k, cfg.replay.kmeans_iters))
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
            ledger.charge("selection", self.eval_pass.flops(state.params), samples=self.eval_pass.batch, calls=batches)
            ref = np.array(
                [per_row[labels[picks] == c].mean() if np.any(labels[picks] == c) else np.nan for c in range(k)],
                np.float32,
            )
        anchor = {"anchor": host_ref} if self.reference == "task_end" else {}  # its residual refs, shifted to the end
        replay = self.policy.add_task(state.replay, ids, labels, t, ref, num_clusters=k, **anchor)
        return state.replace(replay=step_lib.replicate(self.ctx.mesh, replay))

    def _free_embeddings(self, state: TrainState, task_rows: np.ndarray, ledger: budget.Ledger) -> np.ndarray:
        """f32[N, D]: the finished task's embeddings kept from its training passes; rows never trained
        on are embedded now by the paid `train_embed` pass (charged to selection). Also logged."""
        rows = len(task_rows)
        emb = np.array(state.embeddings.emb[:rows])
        unseen = np.flatnonzero(~np.asarray(state.embeddings.seen[:rows]))
        if unseen.size:
            emb[unseen], batches = self.ctx.train_embed_pass(state.params, task_rows[unseen])
            flops = self.ctx.train_embed_pass.flops(state.params)
            ledger.charge("selection", flops, samples=self.ctx.train_embed_pass.batch, calls=batches)
        logging.info("free embeddings: %d of %d rows were never trained on and were embedded", unseen.size, rows)
        return emb

    def _reset_embeddings(self, state: TrainState, t: int) -> TrainState:
        """Task t starts with an empty free-embeddings buffer (no-op without one)."""
        if state.embeddings is None:
            return state
        return state.replace(embeddings=step_lib.replicate(self.ctx.mesh, self.compiled.empty_embeddings(t)))

    # ---------------------------------------------------------------- the loop
    def run(self, progress: bool = True) -> dict[str, Any]:
        """Trains the tasks left (resuming from the newest readable checkpoint) and returns the result dict.

        `progress`: a bar per task on a terminal, one line per task otherwise (see `TaskProgress`)."""
        state, host = self._start()
        for t in range(host.task, self.num_tasks):
            state = self._train_task(state, host, t, progress)
            state = self._end_task(state, host, t)
        self.ckpt.close()
        if self.host_replay:
            self.host_replay.close()
        last_plan = self.compiled.for_task(self.num_tasks - 1)[0]
        return run_result(
            self.strategy, self.seed, host, state, self.compiled.naive_task_flops(), last_plan, self.source_last_seen
        )

    def _start(self) -> tuple[TrainState, HostState]:
        """(replicated state, host state): from the newest checkpoint, else fresh with the initial held-out losses."""
        state = step_lib.replicate(self.ctx.mesh, self.template)  # also the restore target: replicated everywhere
        restored = self.ckpt.restore_latest(state)
        if restored is None:
            ledger = budget.Ledger()
            return state, HostState(ledger=ledger, init_losses=self._evaluate(state, ledger))
        state, host_json = restored
        host = HostState.from_json(host_json)
        logging.warning("%s seed %d: resuming at task %d chunk %d", self.strategy, self.seed, host.task, host.chunk)
        return step_lib.replicate(self.ctx.mesh, state), host

    def _train_task(self, state: TrainState, host: HostState, t: int, progress: bool) -> TrainState:
        """Task t's chunks from `host.chunk` on; curves every `eval_every` steps, checkpoints every `checkpoint_every`."""
        cfg, ctx, S = self.cfg, self.ctx, self.cfg.train.chunk_size
        chunks_per_task = self.steps // S
        host.ledger.start_task(t)
        plan, chunk_fn, presample = self.compiled.for_task_with_presample(t)
        cost = self.compiled.chunk_cost(t)  # measured once per compiled variant
        from_host = presample is not None  # host placement, a task that replays
        stream = task_stream(ctx.tasks[t], int(ctx.offsets[t]), plan.new_batch + plan.flex_rows, self.seed, t)
        if host.chunk > 0 and host.iter_state is not None:
            stream.set_state(host.iter_state)
        if host.chunk == 0:
            state = self._reset_embeddings(state, t)
        if from_host:
            self.host_replay.start_task(t, chunks_per_task, presample, host.host_replay_pending)
            host.host_replay_pending = None
        self._progress = TaskProgress(
            progress, self.strategy, self.seed, t, self.num_tasks, ctx.tasks[t].name, self.steps, host.chunk * S
        )
        pending = None  # (task, step in task, device metrics) of the last chunk, recorded one chunk late
        for c in range(host.chunk, chunks_per_task):
            state, metrics = self._train_chunk(state, host.ledger, cost, chunk_fn, stream, c, from_host, plan)
            if pending is not None:
                self._record(host, *pending)
            pending = (t, (c + 1) * S, metrics)
            self._progress.update(S)
            step_in_task = (c + 1) * S
            if cfg.train.eval_every and step_in_task % cfg.train.eval_every == 0 and c + 1 < chunks_per_task:
                losses = self._evaluate(state, host.ledger)
                host.curves.append({"task": t, "step": t * self.steps + step_in_task, "losses": losses})
            if cfg.train.checkpoint_every and (c + 1) % cfg.train.checkpoint_every == 0 and c + 1 < chunks_per_task:
                self._record(host, *pending)
                pending = None
                host.task, host.chunk, host.iter_state = t, c + 1, stream.get_state()
                if from_host:
                    host.host_replay_pending = self.host_replay.pending_json()
                self._save(state, host)
                host.host_replay_pending = None
        if pending is not None:
            self._record(host, *pending)
        self._progress.close()
        return state

    def _train_chunk(
        self, state, ledger: budget.Ledger, cost: ChunkCost, chunk_fn, stream, c: int, from_host: bool, plan
    ) -> tuple[TrainState, Any]:
        """Chunk c of S steps on the stream's next batches (replay rows from host memory if `from_host`),
        charged its measured cost."""
        ctx, S = self.ctx, self.cfg.train.chunk_size
        new, new_ids = (flex_batch.split_new(x, plan.new_batch, plan.flex_rows) for x in next_chunk(stream, S))
        memory = self.host_replay.local_memory(c, state) if from_host else ctx.memory
        state, metrics = chunk_fn(
            state,
            step_lib.shard_new_batches(ctx.mesh, new),
            step_lib.shard_new_batches(ctx.mesh, new_ids),
            memory,
        )
        faults.fault_point("chunk")
        cost.charge(ledger)
        return state, metrics

    def _end_task(self, state: TrainState, host: HostState, t: int) -> TrainState:
        """Task t's row of the loss matrix; its rows become arms; a checkpoint at the next task's start."""
        row = self._evaluate(state, host.ledger)
        host.loss_rows.append(row)
        if self.sources:
            host.source_rows.append(self._evaluate_sources(state, host.ledger))
        host.curves.append({"task": t, "step": (t + 1) * self.steps, "losses": row})
        if self.log:
            self.log.write(
                {"kind": "task_end", "strategy": self.strategy, "seed": self.seed, "task": t, "heldout": row}
            )
        if t + 1 < self.num_tasks and self.strategy != "none":
            if self.host_replay:
                self.host_replay.write_task(t)
            host.ledger.start_task(t + 1)
            host_ref = float("nan") if host.last_new_loss is None else host.last_new_loss
            state = self.add_arms(state, t, host.ledger, host_ref)
            faults.fault_point("arms")
        if t + 1 < self.num_tasks and self.task_end_pass:
            state = self._methods_task_end(state, host.ledger, t)
        host.task, host.chunk, host.iter_state = t + 1, 0, None
        self._save(state, host)
        faults.fault_point("task_end")
        return state

    def _methods_task_end(self, state: TrainState, ledger: budget.Ledger, t: int) -> TrainState:
        """The methods' task-end hooks on task t's rows (e.g. EWC's Fisher), charged as selection to task t + 1,
        whose zero-cost plan paid for it."""
        ledger.start_task(t + 1)
        state = self.task_end_pass(state, self.ctx.tasks[t].train, self.seed, t)
        ledger.charge("selection", self.task_end_pass.flops(state), samples=self.task_end_pass.rows)
        return state

    def _record(self, host: HostState, task: int, step_in_task: int, metrics) -> None:
        """Host side of a chunk's metrics (called one chunk late, so the device keeps running)."""
        m = jax.device_get(metrics)
        skipped = int(np.sum(~np.isfinite(m["loss"])))
        if skipped and self.cfg.train.nonfinite == "halt":
            raise FloatingPointError(
                f"non-finite loss at task {task} step {step_in_task} ({self.strategy}, seed {self.seed}); "
                "set train.nonfinite='skip' to skip such steps instead"
            )
        step = task * self.steps + step_in_task
        plan = self.compiled.for_task(task)[0]
        host.count_rows(
            task, int(m["replay_rows"]) * len(m["loss"]), (plan.new_batch + plan.replay_batch) * len(m["loss"])
        )
        host.last_new_loss = float(np.nanmean(m["new_loss"]))
        probs = np.asarray(m["arm_probs"], np.float64)
        if self.policy.uses_bandit and task > 0:
            host.arm_history.append({"step": step, "probs": probs.tolist()})
        loss = float(np.nanmean(m["loss"]))
        if self._progress is not None:
            self._progress.record_loss(loss)
        if self.log:
            self.log.write(
                {
                    "kind": "train",
                    "strategy": self.strategy,
                    "seed": self.seed,
                    "task": task,
                    "step": step,
                    "loss": loss,
                    "nonfinite_steps": skipped,
                },
                scalars=("loss",),
            )

    def _save(self, state: TrainState, host: HostState) -> None:
        self.ckpt.save(host.task * 1_000_000 + host.chunk, state, host.to_json())


def _source_sets(tasks) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """({source: held-out rows}, {source: last task it appears in}) of a mixture stream; ({}, {}) otherwise."""
    rows, last_seen = {}, {}
    for t, task in enumerate(tasks):
        for name, held_out in (getattr(task, "sources", None) or {}).items():
            rows.setdefault(name, held_out)
            last_seen[name] = t
    return rows, last_seen
