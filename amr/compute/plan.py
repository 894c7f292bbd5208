"""Static per-strategy plan: batch split, selection work, and the zero-cost trimming.

Every strategy trains `steps_per_task` steps of `batch_size` rows. `none` fills the
batch with new-task rows; replay strategies give `round(replay.fraction * batch)`
rows to replay. Strategies that spend FLOPs choosing (AMR's probes, k-means arms and
reference losses; MIR's virtual step; the marginal reward's post-update pass) pay
for it, when `replay.zero_cost` is on, by trimming new-task rows from every step, so
each task costs at most what naive fine-tuning costs.

`replay.new_rows` (0 = off) fixes the new-task rows per step of every replaying strategy (not `none`, which
is also every strategy's plan on the first task, nor `joint`): uniform at `new_rows` = a trimming strategy's
`new_batch` runs at exactly that strategy's new/replay split, the control that separates the larger replay
share trimming brings from the selection it pays for. Zero-cost trimming still applies on top of it.
`check_new_rows` validates the key (the sweep calls it before any run; `plan_strategy` too).

With `replay.embeddings = "free"` the k-means arms' embeddings come from the training passes
(`amr.train.free_embeddings`): the boundary pays k-means and an embedding pass over only the rows
that `steps_per_task` steps of the (trimmed) new rows never reach, none on most configs.
`replay.share` other than 'fixed' (`amr.replay.share`) makes the replay rows per step a per-chunk
choice in [share_min, share_max] x batch: the plan then gives the step `share_max x batch` replay
slots (`replay_batch`), of which `flex_rows` hold new rows when the chunk replays fewer, so every
step trains `new_batch + replay_batch` rows whatever the choice; trimming applies to `new_batch`.
`share_rows` gives the bounds and target in rows (`replay.fraction`: the target).

`joint` is the over-budget upper reference: on task t it trains on `batch_size` new rows
plus `t * batch_size` rows drawn uniformly from the t finished tasks, i.e. joint training
on all data seen so far at (t + 1)x naive fine-tuning's compute.
"""

from __future__ import annotations

import dataclasses

from amr.compute import ledger as budget
from amr.compute.costs import CostModel, kmeans_flops
from amr.replay import clustering
from amr.train.free_embeddings import unvisited_rows


@dataclasses.dataclass(frozen=True)
class StrategyPlan:
    strategy: str
    new_batch: int  # global new-task rows per step (after trimming)
    replay_batch: int  # global replay rows per step
    probe_samples: int  # global probe rows per chunk
    candidates: int  # MIR candidates per replay slot
    clusters_per_task: int
    trimmed_rows: int  # new-task rows per step given up to pay for selection
    step_flops: float  # one train step (forward + backward + update)
    chunk_selection_flops: float  # selection work inside one chunk
    boundary_selection_flops: float  # selection work when a task's data becomes arms
    naive_task_flops: float  # naive fine-tuning's cost of one task: the budget
    flex_rows: int = 0  # replay slots that hold a new row when the chunk's share leaves them free (replay.share)


NEW_ROWS_KEY = "replay.new_rows"


def fixed_new_rows(cfg) -> int:
    """`replay.new_rows` of `cfg` (0 when the config predates the key)."""
    return int(cfg.replay.get("new_rows", 0))


def check_new_rows(cfg, num_devices: int) -> None:
    """ValueError naming `replay.new_rows` unless it is 0 (off) or a positive multiple of the device count
    that leaves room for the replay rows: 1 <= new_rows <= batch_size - round(fraction * batch_size); under a
    varying `replay.share` it fixes the always-new rows, which leave room for `share_max`'s replay slots."""
    n = cfg.replay.get("new_rows", 0)
    if n == 0:
        return
    batch = cfg.train.batch_size
    share = float(cfg.replay.share_max) if cfg.replay.get("share", "fixed") != "fixed" else cfg.replay.fraction
    replay = min(int(round(share * batch)), batch - num_devices)  # under a varying share: its replay slots
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{NEW_ROWS_KEY}: must be an integer >= 0 (0 = batch minus replay rows), got {n!r}")
    if n > batch - replay:
        raise ValueError(
            f"{NEW_ROWS_KEY}: {n} new rows and {replay} replay rows (replay.fraction={cfg.replay.fraction}) do not fit "
            f"train.batch_size={batch}; at most {batch - replay}"
        )
    if n % num_devices:
        raise ValueError(f"{NEW_ROWS_KEY}: {n} new rows are not divisible by the {num_devices} devices")


def share_rows(cfg, num_devices: int) -> tuple[int, int, int]:
    """(rows_min, rows_max, rows_target): global replay rows per step of `replay.share`'s range and mean.

    'fixed' (or a config without the key): all three are the fixed split's replay rows."""
    batch = cfg.train.batch_size
    target = min(int(round(cfg.replay.fraction * batch)), batch - num_devices)
    if cfg.replay.get("share", "fixed") == "fixed":
        return target, target, target
    return int(round(cfg.replay.share_min * batch)), int(round(cfg.replay.share_max * batch)), target


def replay_slots(cfg, strategy: str, num_devices: int, past_tasks: int = 1) -> int:
    """Global replay slots of one compiled step: `replay_rows`, or `share_max x batch` under a varying share
    (`replay.share` not 'fixed'), whose flex slots hold new rows when a chunk replays fewer. What a step's work
    on its replayed rows (e.g. distillation's teacher pass) runs on, whatever the chunk's choice."""
    rows_min, rows_max, _ = share_rows(cfg, num_devices)
    if _share_varies(strategy, rows_min, rows_max):
        return rows_max
    return replay_rows(cfg, strategy, num_devices, past_tasks)


def _share_varies(strategy: str, rows_min: int, rows_max: int) -> bool:
    """Whether `strategy`'s replay rows per step vary (not `none`, nor `joint`, whose batches are fixed)."""
    return strategy not in ("none", "joint") and rows_max > rows_min


def _batches(rows: int, batch: int) -> int:
    return -(-rows // batch) if rows > 0 else 0


def replay_rows(cfg, strategy: str, num_devices: int, past_tasks: int = 1) -> int:
    """Global replay rows per step of `strategy` (none: 0; joint: `batch_size` per past task)."""
    batch = cfg.train.batch_size
    if strategy == "joint":
        return batch * past_tasks
    replay = 0 if strategy == "none" else int(round(cfg.replay.fraction * batch))
    return min(replay, batch - num_devices)


def _trim_to_budget(spent, training, new_rows: int, naive_task: float, num_devices: int, strategy: str) -> int:
    """The most new rows (a multiple of the device count) whose task, `spent(rows)` FLOPs, fits the naive budget.

    MIR's selection shrinks with the new rows it differentiates, so search rather than trim once.
    `training(rows)`: a task's training FLOPs alone at `rows` new rows per step (the error names the rest)."""
    lo, hi = 1, new_rows // num_devices  # in units of num_devices; hi does not fit
    if not budget.check_zero_cost(spent(lo * num_devices), naive_task):
        selection_flops = spent(num_devices) - training(num_devices)
        raise ValueError(
            f"replay.zero_cost: {strategy}'s selection ({selection_flops:.3g} FLOPs per task) cannot be paid by trimming new-task rows; lower replay.probe_samples, "
            f"replay.clusters_per_task, replay.mir_candidates or the methods' work, or set replay.zero_cost=False"
        )
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if budget.check_zero_cost(spent(mid * num_devices), naive_task, 0.0):
            lo = mid
        else:
            hi = mid
    return lo * num_devices


def plan_strategy(
    cfg,
    strategy: str,
    costs: CostModel,
    num_devices: int,
    max_task_rows: int,
    paid_reference: bool = False,
    past_tasks: int = 1,
    methods_cost: tuple[float, float] = (0.0, 0.0),
) -> StrategyPlan:
    """`methods_cost`: (FLOPs per train step, FLOPs per task end) of the companion methods (`amr.methods`,
    measured by `amr.train.strategy.methods_cost`), paid like any selection cost."""
    t, r = cfg.train, cfg.replay
    check_new_rows(cfg, num_devices)
    steps, chunk, batch = t.steps_per_task, t.chunk_size, t.batch_size
    chunks = steps // chunk
    is_amr, is_mir = strategy == "amr", strategy == "mir"
    replay_batch = replay_slots(cfg, strategy, num_devices, past_tasks)
    rows_min, rows_max, _ = share_rows(cfg, num_devices)
    flex_rows = rows_max - rows_min if _share_varies(strategy, rows_min, rows_max) else 0
    probe = r.probe_samples if is_amr else 0
    candidates = r.mir_candidates if is_mir else 1
    clusters = r.clusters_per_task if is_amr else 1
    eval_batch = -(-t.eval_batch // num_devices) * num_devices
    naive_task = steps * costs.train(batch)

    def selection(new_rows: int) -> tuple[float, float]:
        per_step = 0.0
        if is_mir:
            per_step += costs.grad(new_rows) + 2 * costs.forward(replay_batch * candidates)
        if is_amr and cfg.replay.reward == "marginal":
            per_step += costs.forward(replay_batch)
        per_step += methods_cost[0]  # amr.methods: loss terms' gradients, after_step
        per_chunk = chunk * per_step + costs.forward(probe)
        boundary = methods_cost[1]  # amr.methods: their task-end pass (e.g. EWC's Fisher)
        if is_amr and clusters > 1 and clustering.arm_labels(cfg) == "kmeans":
            if r.get("embeddings", "paid") == "free":  # only rows the task's steps never reach are embedded
                unvisited = unvisited_rows(max_task_rows, steps, new_rows)
                boundary += _batches(unvisited, eval_batch) * costs.train_embed(eval_batch)
            else:
                boundary += _batches(max_task_rows, eval_batch) * costs.embed(eval_batch)
            boundary += kmeans_flops(max_task_rows, r.embed_dim_hint, clusters, r.kmeans_iters)
        if paid_reference:
            boundary += _batches(clusters * r.ref_samples, eval_batch) * costs.forward(eval_batch)
        return per_chunk, boundary

    new_rows = batch if strategy == "joint" else batch - replay_batch
    if fixed_new_rows(cfg) and strategy not in ("none", "joint"):
        new_rows = fixed_new_rows(cfg)
    untrimmed = new_rows

    def training(n: int) -> float:
        return steps * costs.train(n + replay_batch)

    def spent(n: int) -> float:
        per_chunk, boundary = selection(n)
        return training(n) + chunks * per_chunk + boundary

    if r.zero_cost and strategy != "joint" and not budget.check_zero_cost(spent(new_rows), naive_task, 0.0):
        new_rows = _trim_to_budget(spent, training, new_rows, naive_task, num_devices, strategy)
    per_chunk, boundary = selection(new_rows)
    return StrategyPlan(
        strategy=strategy,
        new_batch=new_rows,
        replay_batch=replay_batch,
        probe_samples=probe,
        candidates=candidates,
        clusters_per_task=clusters,
        trimmed_rows=untrimmed - new_rows,
        step_flops=costs.train(new_rows + replay_batch),
        chunk_selection_flops=per_chunk,
        boundary_selection_flops=boundary,
        naive_task_flops=naive_task,
        flex_rows=flex_rows,
    )
