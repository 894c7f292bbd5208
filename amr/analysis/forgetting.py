"""Forgetting metrics over a loss matrix (host-side numpy).

`L[i][j]` is the held-out loss on task j after training on task i. Losses are
"lower is better", so forgetting of task j is the loss increase from the end of
its own task to the end of the stream: `L[T-1][j] - L[j][j]`.

        >>> m = forgetting_metrics([[1.0, 3.0], [1.5, 0.5]])
        >>> m["avg_forgetting"], m["bwt"]
        (0.5, -0.5)

Across-seed statistics (means, std, 95% intervals) live in `amr.analysis.stats`.
These functions accept numpy/jax arrays or nested lists and return plain Python
floats and lists, so their output goes straight into `results.json`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

__all__ = ["forgetting_metrics", "forgetting_reduction", "NEW_TASK_LOSS"]

# The new-task loss a reader compares: the mean of L[j][j] over tasks 2..T (j = 1..T-1). Task 1 (j = 0)
# is trained before anything can be replayed, so it is the same for every strategy and only dilutes the
# comparison. `new_task_loss` (the whole diagonal, task 1 included) is kept for the README table and for
# results files written before this key existed.
NEW_TASK_LOSS = "new_task_loss_excl_first"


def _loss_matrix(loss_matrix) -> np.ndarray:
    """Validates and returns `loss_matrix` as float64[T, T]."""
    try:
        L_TxT = np.asarray(loss_matrix, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"loss_matrix must be a numeric [T, T] array: {e}") from None
    if L_TxT.ndim != 2 or L_TxT.shape[0] != L_TxT.shape[1] or L_TxT.shape[0] == 0:
        raise ValueError(f"loss_matrix must be square [T, T] with T >= 1, got shape {L_TxT.shape}")
    if not np.all(np.isfinite(L_TxT)):
        bad = np.argwhere(~np.isfinite(L_TxT))[0].tolist()
        raise ValueError(f"loss_matrix must be finite, entry {bad} is {L_TxT[tuple(bad)]}")
    return L_TxT


def _vector(x, name: str, length: int | None = None) -> np.ndarray:
    try:
        v = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} must be a numeric 1-D array: {e}") from None
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {v.shape}")
    if length is not None and v.shape[0] != length:
        raise ValueError(f"{name} must have length {length}, got {v.shape[0]}")
    if not np.all(np.isfinite(v)):
        raise ValueError(f"{name} must be finite, got {v.tolist()}")
    return v


def forgetting_metrics(loss_matrix, init_losses=None) -> dict:
    """Forgetting / transfer metrics of one run.

    Args:
        loss_matrix: float[T, T], `L[i][j]` = held-out loss on task j after training
            on task i. Must be square and finite.
        init_losses: optional float[T], held-out loss on each task before any
            training; enables forward transfer.

    Returns:
        dict with `avg_forgetting`, `max_forgetting` (0.0 when T == 1),
        `final_avg_loss` (mean of the last row: every task after the last one),
        `new_task_loss_excl_first` (mean of `L[j][j]` over tasks 2..T; None when T == 1),
        `new_task_loss` (mean of the whole diagonal, task 1 included), `bwt` (= -avg_forgetting), `fwt`
        (`mean_{j>=1} init[j] - L[j-1][j]`, 0.0 when T == 1, None without
        `init_losses`) and `forgetting_per_task` (a list of T-1 floats).
    """
    L_TxT = _loss_matrix(loss_matrix)
    T = L_TxT.shape[0]
    diag_T = np.diagonal(L_TxT)
    forgetting_P = L_TxT[T - 1, : T - 1] - diag_T[: T - 1]  # P = T-1 past tasks
    if T > 1:
        avg, mx = float(np.mean(forgetting_P)), float(np.max(forgetting_P))
        bwt = float(np.mean(diag_T[: T - 1] - L_TxT[T - 1, : T - 1]))
    else:
        avg = mx = bwt = 0.0
    fwt = None
    if init_losses is not None:
        init_T = _vector(init_losses, "init_losses", T)
        # L[j-1][j]: loss on task j just before its training starts.
        fwt = float(np.mean(init_T[1:] - np.diagonal(L_TxT, offset=1))) if T > 1 else 0.0
    return {
        "avg_forgetting": avg,
        "max_forgetting": mx,
        "final_avg_loss": float(np.mean(L_TxT[T - 1])),
        "new_task_loss": float(np.mean(diag_T)),
        NEW_TASK_LOSS: float(np.mean(diag_T[1:])) if T > 1 else None,
        "bwt": bwt,
        "fwt": fwt,
        "forgetting_per_task": [float(f) for f in forgetting_P],
    }


def _avg_forgetting(m, name: str) -> float:
    if not isinstance(m, Mapping) or "avg_forgetting" not in m:
        raise ValueError(f"{name} must be a dict with an 'avg_forgetting' entry, got {type(m).__name__}")
    v = m["avg_forgetting"]
    try:
        return float(v) if v is not None else math.nan
    except (TypeError, ValueError):
        raise ValueError(f"{name}['avg_forgetting'] must be a number, got {v!r}") from None


def forgetting_reduction(metrics, baseline_metrics) -> float:
    """Relative reduction of average forgetting: `1 - avg / baseline_avg`.

    0.1 means 10% less forgetting than the baseline, negative means more.
    Returns nan (never raises, never divides by zero) when either value is
    missing / non-finite, or when the baseline does not forget (`avg <= 0`):
    a relative reduction of no forgetting has no meaning.
    """
    f = _avg_forgetting(metrics, "metrics")
    b = _avg_forgetting(baseline_metrics, "baseline_metrics")
    if not (math.isfinite(f) and math.isfinite(b)) or b <= 0.0:
        return math.nan
    return 1.0 - f / b


def source_forgetting(source_rows, last_seen: dict[str, int], names: list[str]) -> dict[str, float | None]:
    """Per-source forgetting of a mixture stream: a source's held-out loss after the last task
    minus its loss right after the last task it appeared in (`last_seen[name]`); None for the
    sources of the last task (not forgotten yet). `source_rows[t][k]` is source k's held-out
    loss after task t."""
    S = np.asarray(source_rows, dtype=np.float64)
    if S.ndim != 2 or S.shape[1] != len(names) or set(last_seen) != set(names):
        raise ValueError(f"source_rows: expected shape [T, {len(names)}] and a last task per source, got {S.shape}")
    final = S.shape[0] - 1
    return {
        name: (float(S[final, k] - S[last_seen[name], k]) if last_seen[name] < final else None)
        for k, name in enumerate(names)
    }
