"""Forgetting metrics over a loss matrix (host-side numpy).

`L[i][j]` is the held-out loss on task j after training on task i. Losses are
"lower is better", so forgetting of task j is the loss increase from the end of
its own task to the end of the stream: `L[T-1][j] - L[j][j]`.

        >>> m = forgetting_metrics([[1.0, 3.0], [1.5, 0.5]])
        >>> m["avg_forgetting"], m["bwt"]
        (0.5, -0.5)

Seeds are combined with `aggregate_seeds`; `ci95` gives the t-interval half-width.
These functions accept numpy/jax arrays or nested lists and return plain Python
floats and lists, so their output goes straight into `results.json`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "forgetting_metrics",
    "forgetting_reduction",
    "aggregate_seeds",
    "ci95",
    "forgetting_curve",
]


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
        `final_avg_loss`, `new_task_loss`, `bwt` (= -avg_forgetting), `fwt`
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


def ci95(values) -> float:
    """Half-width of the 95% Student-t confidence interval of the mean.

    `t_{0.975, n-1} * std(ddof=1) / sqrt(n)`; 0.0 for a single value. Non-finite
    values propagate (a diverged seed gives nan, not a silently narrow interval).
    """
    try:
        v = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ValueError(f"values must be numeric: {e}") from None
    n = v.shape[0]
    if n == 0:
        raise ValueError("values must hold at least one value")
    if n == 1:
        return 0.0
    from scipy import stats  # scipy ships with scikit-learn; imported lazily.

    return float(stats.t.ppf(0.975, n - 1) * np.std(v, ddof=1) / math.sqrt(n))


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _same(a, b) -> bool:
    try:
        return bool(np.array_equal(np.asarray(a, dtype=object), np.asarray(b, dtype=object)))
    except (TypeError, ValueError):
        return False


def _aggregate(values: list, path: str) -> tuple[Any, Any]:
    """Returns (mean, std) of one key across seeds, or (value, None) to copy it."""
    first = values[0]
    if all(v is None for v in values):
        return None, None
    if all(isinstance(v, Mapping) for v in values):
        return _aggregate_dicts(values, path), None
    if all(_is_number(v) for v in values):
        a = np.asarray(values, dtype=np.float64)
        std = float(np.std(a, ddof=1)) if len(a) >= 2 else 0.0
        return float(np.mean(a)), std
    if all(isinstance(v, (Sequence, np.ndarray)) and not isinstance(v, str) for v in values):
        try:
            a = np.asarray([np.asarray(v, dtype=np.float64) for v in values])
        except (TypeError, ValueError):
            a = None
        if a is None or a.dtype == object:
            if all(_same(v, first) for v in values):  # e.g. the same task names in every seed
                return list(first), None
            raise ValueError(f"per_seed: {path} has arrays of different shapes or non-numeric entries")
        std = np.std(a, axis=0, ddof=1) if len(a) >= 2 else np.zeros(a.shape[1:])
        return np.mean(a, axis=0).tolist(), std.tolist()
    if all(isinstance(v, (str, bool)) and v == first for v in values):
        return first, None
    raise ValueError(f"per_seed: {path} cannot be aggregated across seeds: {values!r}")


def _aggregate_dicts(dicts: list, path: str) -> dict:
    keys = list(dicts[0])
    for i, d in enumerate(dicts[1:], start=1):
        if set(d) != set(keys):
            raise ValueError(
                f"per_seed: seed {i} has keys {sorted(d)} at {path or 'top level'}, seed 0 has {sorted(keys)}"
            )
    out = {}
    for k in keys:
        mean, std = _aggregate([d[k] for d in dicts], f"{path}[{k!r}]")
        out[k] = mean
        if std is not None:
            out[f"{k}_std"] = std
    return out


def aggregate_seeds(per_seed: list[dict]) -> dict:
    """Mean and std across seeds of every entry of the per-seed dicts.

    Every numeric entry `k` becomes `k` (mean) and `k_std` (ddof=1 with >= 2 seeds,
    else 0.0). Arrays of equal shape (`loss_matrix`, `forgetting_per_task`) are
    averaged element-wise, with an element-wise `k_std`. Nested dicts (e.g.
    `flops`) are aggregated recursively; None (e.g. `fwt` without init losses) and
    strings or lists equal across seeds are copied. Adds `n_seeds`.
    """
    if isinstance(per_seed, Mapping) or not isinstance(per_seed, Sequence) or len(per_seed) == 0:
        raise ValueError("per_seed must be a non-empty list of dicts, one per seed")
    if not all(isinstance(d, Mapping) for d in per_seed):
        raise ValueError("per_seed must hold dicts (one per seed)")
    out = _aggregate_dicts(list(per_seed), "")
    out["n_seeds"] = len(per_seed)
    return out


def forgetting_curve(loss_rows, diag) -> np.ndarray:
    """Forgetting of each past task at one or many evaluation steps.

    Args:
        loss_rows: float[T] or float[N, T], held-out loss on every task at a step
            (N steps). Only the first P columns are used; later ones may be nan.
        diag: float[P], P <= T, the loss each past task j had when its own training
            ended (`L[j][j]`).

    Returns:
        float64[P] or float64[N, P]: `loss_rows[..., :P] - diag`.
    """
    try:
        rows = np.asarray(loss_rows, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"loss_rows must be a numeric [T] or [N, T] array: {e}") from None
    if rows.ndim not in (1, 2):
        raise ValueError(f"loss_rows must be [T] or [N, T], got shape {rows.shape}")
    d_P = _vector(diag, "diag")
    P, T = d_P.shape[0], rows.shape[-1]
    if P > T:
        raise ValueError(f"diag has {P} past tasks but loss_rows covers only {T} tasks")
    used = rows[..., :P]
    if not np.all(np.isfinite(used)):
        raise ValueError(f"loss_rows must be finite on the {P} past-task columns")
    return used - d_P
