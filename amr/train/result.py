"""A finished run's result: the dict written to runs/<strategy>_seed<k>.json (schema in the README)."""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from amr.analysis import forgetting as evaluate
from amr.compute import ledger as budget
from amr.compute.plan import StrategyPlan
from amr.train.host_state import HostState
from amr.train.state import TrainState


def run_result(
    strategy: str,
    seed: int,
    host: HostState,
    state: TrainState,
    naive_task: float,
    last_plan: StrategyPlan,
    source_last_seen: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Loss matrix, forgetting metrics, measured FLOPs (total and per task) and the budget check of a run.

    `naive_task` is naive fine-tuning's measured cost of one task (the budget); `last_plan` the plan of
    the run's last task. `budget_ratio` is the most expensive task's training FLOPs over the budget;
    `within_budget` says whether every task is within it (`amr.compute.ledger.check_zero_cost`);
    `source_last_seen` (mixture streams) the last task each source appeared in.
    `replay_share`: replay rows trained / rows trained over the tasks that can replay (all but the
    first), the share the run actually used (`replay.share` may vary it); per task in
    `replay_share_per_task` (the first task's is 0)."""
    ledger = host.ledger
    L = np.asarray(host.loss_rows)
    metrics = evaluate.forgetting_metrics(L, init_losses=np.asarray(host.init_losses))
    ratios = [ledger.budget_flops(t) / naive_task for t in range(len(ledger.per_task))]
    out = {
        "strategy": strategy,
        "seed": seed,
        "loss_matrix": L.tolist(),
        **metrics,
        "flops": ledger.summary(),
        "flops_per_task": ledger.per_task,
        "naive_task_flops": naive_task,
        "within_budget": all(
            budget.check_zero_cost(ledger.budget_flops(t), naive_task) for t in range(len(ledger.per_task))
        ),
        "budget_ratio": max(ratios, default=0.0),
        "budget_ratio_per_task": ratios,
        "plan": dataclasses.asdict(last_plan),
        "skipped_steps": int(jax.device_get(state.skipped)),
        "curves": host.curves,
        "arm_history": host.arm_history,
        "init_losses": host.init_losses,
        **realised_share(host),
    }
    if host.source_rows and source_last_seen:
        names = list(source_last_seen)
        out["sources"] = names
        out["source_loss_matrix"] = host.source_rows
        out["source_forgetting"] = evaluate.source_forgetting(host.source_rows, source_last_seen, names)
    return out


def realised_share(host: HostState) -> dict[str, Any]:
    """{replay_share, replay_share_per_task} from the host's per-task row counts."""
    rep, rows = np.asarray(host.replay_rows, np.float64), np.asarray(host.trained_rows, np.float64)
    per_task = [float(r / n) if n else 0.0 for r, n in zip(rep, rows, strict=True)]
    later = rows[1:].sum()
    return {"replay_share": float(rep[1:].sum() / later) if later else 0.0, "replay_share_per_task": per_task}
