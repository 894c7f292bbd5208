"""Markdown tables and crash-safe JSON files for experiment results.

The engine's `results.json` has this schema (extra keys allowed everywhere):

    {"config": {...}, "tasks": [names],
     "strategies": {NAME: {"seeds": [...], "loss_matrix": [[...]],
                           "avg_forgetting": float, "avg_forgetting_std": float,
                           "avg_forgetting_ci95": float, "avg_forgetting_per_seed": [...],
                           "final_avg_loss": float, "new_task_loss": float,
                           "flops": {"total": float, "train_new": float, "train_replay": float,
                                     "selection": float, "eval": float}}}}

`summary_table` renders it (mean ± 95% CI over seeds, from `amr.analysis.stats`);
`write_json_atomic` writes it so that a crash never leaves a half-written file. JSON
has no NaN or Infinity: non-finite floats are written as null.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping
from typing import Any

import numpy as np

from amr.analysis import forgetting as evaluate
from amr.analysis import stats

__all__ = ["markdown_table", "summary_table", "write_json_atomic", "machine_description"]

_MISSING = "—"


# ---------------------------------------------------------------- markdown


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _looks_numeric(v) -> bool:
    if _is_number(v):
        return True
    try:
        float(str(v).rstrip("×%"))
        return True
    except ValueError:
        return False


def _cell(v, float_fmt: str) -> str:
    if v is None:
        return _MISSING
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return float_fmt.format(float(v)) if math.isfinite(v) else str(float(v))
    return str(v).replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _parse_columns(columns) -> list[tuple[Any, str]]:
    if isinstance(columns, (str, Mapping)) or not columns:
        raise ValueError("columns must be a non-empty list of (key, header) pairs")
    parsed = []
    for c in columns:
        ok = isinstance(c, (tuple, list)) and len(c) == 2 and isinstance(c[1], str)
        key = c[0] if ok else None
        ok = ok and (
            isinstance(key, str)
            or (isinstance(key, (tuple, list)) and len(key) == 2 and all(isinstance(k, str) for k in key))
        )
        if not ok:
            raise ValueError(f"columns: each entry must be (key, header) or ((mean_key, ci_key), header), got {c!r}")
        parsed.append((tuple(key) if not isinstance(key, str) else key, c[1]))
    return parsed


def markdown_table(rows: list[dict], columns: list[tuple[str, str]], float_fmt: str = "{:.4f}") -> str:
    """A GitHub-flavoured markdown table.

    Args:
      rows: one dict per table row.
      columns: (key, header) pairs; the key may be a pair (mean_key, ci_key),
        rendered "mean ± ci" (just "mean" when the ci is missing or None).
      float_fmt: format of floats; ints, strings and bools are written as they
        are, nan/inf as "nan"/"inf", a missing value or None as "—". Pipes in
        strings are escaped. Columns whose present values are all numbers
        (or strings like "1.5e+15", "0.92×") are right-aligned.
    """
    cols = _parse_columns(columns)
    try:
        if not isinstance(float_fmt.format(1.5), str):
            raise TypeError
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        raise ValueError(
            f"float_fmt must be a format string for one float, like '{{:.4f}}', got {float_fmt!r}"
        ) from None
    if isinstance(rows, Mapping) or not all(isinstance(r, Mapping) for r in rows):
        raise ValueError("rows must be a list of dicts")

    header = "| " + " | ".join(h.replace("|", "\\|") for _, h in cols) + " |"
    align, body = [], [[] for _ in rows]
    for key, _ in cols:
        mean_key = key if isinstance(key, str) else key[0]
        values = [r.get(mean_key) for r in rows]
        present = [v for v in values if v is not None and v not in (_MISSING, "n/a")]
        numeric = bool(present) and all(_looks_numeric(v) for v in present)
        align.append("---:" if numeric else "---")
        for i, r in enumerate(rows):
            text = _cell(r.get(mean_key), float_fmt)
            if not isinstance(key, str) and r.get(mean_key) is not None and r.get(key[1]) is not None:
                text = f"{text} ± {_cell(r.get(key[1]), float_fmt)}"
            body[i].append(text)
    lines = [header, "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines)


def _required(entry: Mapping, key: str, name: str):
    if key not in entry:
        raise ValueError(f"results['strategies'][{name!r}] has no {key!r} entry")
    return entry[key]


SPREADS = {"ci95": (stats.ci95, "mean ± 95% CI"), "std": (stats.std, "mean ± std")}


def _spread(entry: Mapping, spread: str):
    """Average forgetting's `spread` over seeds: the stored value, else computed from the per-seed values."""
    value = entry.get(f"avg_forgetting_{spread}")
    per_seed = entry.get("avg_forgetting_per_seed")
    if value is None and per_seed:
        value = SPREADS[spread][0](per_seed)
    return value


def _summary_row(name, s, strategies: Mapping, baseline: str | None, spread: str) -> dict:
    if not isinstance(s, Mapping):
        raise ValueError(f"results['strategies'][{name!r}] must be a dict")
    flops = _required(s, "flops", name)
    if not isinstance(flops, Mapping) or "total" not in flops:
        raise ValueError(f"results['strategies'][{name!r}]['flops'] must be a dict with 'total'")
    max_f, new_loss = s.get("max_forgetting"), s.get(evaluate.NEW_TASK_LOSS)
    if max_f is None or new_loss is None:  # older files: from the (seed-averaged, so linear) loss matrix
        metrics = evaluate.forgetting_metrics(_required(s, "loss_matrix", name))
        max_f = metrics["max_forgetting"] if max_f is None else max_f
        new_loss = metrics[evaluate.NEW_TASK_LOSS] if new_loss is None else new_loss
    total = flops["total"]
    vs = _MISSING
    if baseline is not None:
        red = evaluate.forgetting_reduction(
            {"avg_forgetting": _required(s, "avg_forgetting", name)}, strategies[baseline]
        )
        vs = "n/a" if math.isnan(red) else f"{1.0 - red:.2f}×"
    return {
        "strategy": str(name),
        "avg_forgetting": _required(s, "avg_forgetting", name),
        "avg_forgetting_spread": _spread(s, spread),
        "max_forgetting": max_f,
        "new_task_loss": new_loss,
        "final_avg_loss": _required(s, "final_avg_loss", name),
        "flops": f"{float(total):.3g}" if _is_number(total) else _cell(total, "{}"),
        "vs": vs,
    }


def summary_table(results: dict, baseline: str | None = None, spread: str = "ci95") -> str:
    """One row per strategy of a `results.json` dict (schema in the module docstring).

    Columns: strategy | avg forgetting (mean ± 95% CI over seeds; `spread="std"` shows the
    standard deviation instead) | max forgetting | new-task loss over tasks 2..T (task 1 is the
    same for every strategy) | final avg loss | total
    FLOPs | vs baseline. The spread is read from `avg_forgetting_<spread>`, else computed by
    `amr.analysis.stats` from `avg_forgetting_per_seed`. `max_forgetting` is read when
    present, else computed from the (seed-averaged) `loss_matrix`. The last column is the
    ratio of average forgetting to the baseline's (0.92× = 8% less forgetting; n/a when the
    baseline does not forget). The baseline is the `baseline` argument, else
    `results["baseline"]`, else "uniform" when present.
    """
    if spread not in SPREADS:
        raise ValueError(f"spread must be one of {sorted(SPREADS)}, got {spread!r}")
    if (
        not isinstance(results, Mapping)
        or not isinstance(results.get("strategies"), Mapping)
        or not results["strategies"]
    ):
        raise ValueError("results must be a dict with a non-empty 'strategies' dict")
    strategies = results["strategies"]
    if baseline is None:
        baseline = results.get("baseline") or ("uniform" if "uniform" in strategies else None)
    if baseline is not None and baseline not in strategies:
        raise ValueError(f"baseline {baseline!r} is not one of the strategies {list(strategies)}")
    rows = [_summary_row(name, s, strategies, baseline, spread) for name, s in strategies.items()]
    return markdown_table(
        rows,
        [
            ("strategy", "strategy"),
            (("avg_forgetting", "avg_forgetting_spread"), f"avg forgetting ({SPREADS[spread][1]})"),
            ("max_forgetting", "max forgetting"),
            ("new_task_loss", "new-task loss (tasks 2..T)"),
            ("final_avg_loss", "final avg loss"),
            ("flops", "total FLOPs"),
            ("vs", f"vs {baseline} (× forgetting)" if baseline else "vs baseline"),
        ],
    )


# ---------------------------------------------------------------- json


def _jsonable(obj, where: str):
    """Plain JSON types, non-finite floats -> None; ValueError naming the bad element."""
    if obj is None or isinstance(obj, (str, bool)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, (np.integer, np.floating, np.bool_)):
                k = k.item()
            if not (k is None or isinstance(k, (str, int, float, bool))):
                raise ValueError(f"{where}: key {k!r} of type {type(k).__name__} is not a JSON key")
            out[k if isinstance(k, str) else json.dumps(k)] = _jsonable(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):  # numpy / jax arrays
        return _jsonable(np.asarray(obj).tolist(), where)
    if callable(getattr(obj, "to_dict", None)):  # ml_collections.ConfigDict
        return _jsonable(obj.to_dict(), where)
    raise ValueError(f"{where}: object of type {type(obj).__name__} is not JSON-serialisable")


def _pretty(x, level: int = 0) -> str:
    """Indented JSON that keeps lists of scalars (rows of a loss matrix) on one line."""
    pad, inner = "  " * level, "  " * (level + 1)
    if isinstance(x, dict) and x:
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {_pretty(v, level + 1)}" for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(x, list) and any(isinstance(v, (list, dict)) for v in x):
        return "[\n" + ",\n".join(inner + _pretty(v, level + 1) for v in x) + "\n" + pad + "]"
    return json.dumps(x, allow_nan=False, ensure_ascii=False)


def write_json_atomic(path, obj) -> str:
    """Writes `obj` as JSON to `path` atomically and returns the path.

    The whole text is serialised first (an unserialisable `obj` raises ValueError
    and touches no file), written to a temporary file in the same directory,
    fsync'ed and moved over `path` with `os.replace`: readers see the old file or
    the new one, never a prefix. nan/inf become null; numpy and jax arrays become
    lists. The text is indented, with lists of numbers kept on one line.
    """
    path = os.fspath(path)
    text = _pretty(_jsonable(obj, "obj")) + "\n"
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
    fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable; not every filesystem allows this
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def machine_description() -> dict[str, Any]:
    """Where numbers were measured: CPU, cores, memory, accelerator, software versions."""
    import platform  # noqa: PLC0415

    import jax  # noqa: PLC0415

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    mem_gib = None
    try:
        mem_gib = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    devices = jax.devices()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "platform": devices[0].platform,
        "devices": len(devices),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "os": platform.platform(),
    }
