"""The compute ledger and the zero-cost protocol.

FLOPs come from XLA's cost analysis of the compiled functions a run calls, times the
number of calls (`amr.compute.measure`): each chunk variant as compiled (loops unrolled,
analysed at S = 1 and 2: `outside + S * body`), the held-out and embedding passes, k-means.
Categories:

  train_new     S plain optimizer steps' share of a chunk, split by rows: new-task rows
  train_replay  ... and replayed rows
  selection     everything else the chunk computes (presample, probes, MIR's virtual step
                and candidate passes, bandit observe, post-update passes, the step's own
                bookkeeping), plus embeddings and k-means for arms and paid reference losses
  eval          held-out evaluation (not part of the training budget)

Zero-cost protocol: a strategy's `train_new + train_replay + selection` per task
may not exceed naive fine-tuning's measured cost (its own compiled chunk); the plan
chooses the split from predicted costs (`amr.compute.plan`); AMR pays for selection by trimming new-task
rows from every step of the task (a static batch size, so nothing recompiles).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

CATEGORIES = ("train_new", "train_replay", "selection", "eval")
BUDGET_CATEGORIES = ("train_new", "train_replay", "selection")


def compiled_flops(fn: Callable, *args: Any, **kwargs: Any) -> float:
    """FLOPs XLA reports for one call of `jax.jit(fn)` on these (abstract) args.

    Remembered per process by the traced program (`program_key`): a second call whose trace is the
    same program (a new seed's strategy, the same chunk built again) reads the number instead of
    lowering and compiling again. A different program always misses."""
    traced = jax.jit(fn).trace(*args, **kwargs)
    return remembered(program_key(traced.jaxpr), lambda: _analysed_flops(traced, fn))


# A program compiled only to read its cost analysis never runs. XLA's cost analysis reads the HLO that XLA's
# HLO passes produce; the options below only make the CPU backend's LLVM code generation cheap (about a third
# less compile time for the ledger's unrolled probes, which dominated a sweep's compiling), so the FLOPs are
# the same as the default compile's (tests/test_ledger.py compares both).
ANALYSIS_OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def analysis_options() -> dict[str, Any] | None:
    """Compiler options for a program compiled to be analysed, not run (cheap codegen on CPU only)."""
    return dict(ANALYSIS_OPTIONS) if jax.default_backend() == "cpu" else None


def _analysed_flops(traced, fn) -> float:
    lowered, options = traced.lower(), analysis_options()
    analysis = None
    if options:
        try:
            analysis = lowered.compile(compiler_options=options).cost_analysis()
        except Exception as e:  # an XLA that no longer knows an option: the default compile reads the same FLOPs
            warnings.warn(f"analysis compile options {options} rejected ({e}); compiling with defaults", stacklevel=2)
    if analysis is None:
        analysis = lowered.compile().cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax returned one dict per device
        analysis = analysis[0] if analysis else {}
    flops = float((analysis or {}).get("flops", 0.0))
    if not math.isfinite(flops) or flops < 0:
        raise RuntimeError(f"XLA cost analysis gave no usable flop count for {getattr(fn, '__name__', fn)}")
    return flops


_FLOPS_BY_PROGRAM: dict[str, float] = {}


def remembered(key: str, measure: Callable[[], float]) -> float:
    """The FLOPs stored under `key` in this process, measured (and stored) on the first call."""
    if key not in _FLOPS_BY_PROGRAM:
        _FLOPS_BY_PROGRAM[key] = measure()
    return _FLOPS_BY_PROGRAM[key]


def program_key(closed, tag: str = "") -> str:
    """A digest of a traced program (a ClosedJaxpr): its jaxpr as printed (every equation, parameter,
    input and output type) and its constants' shapes, dtypes and bytes, on this backend; `tag` names how
    it is analysed (`measure.loop_flops`: unrolled).

    Equal keys are the same program, so the same compiled FLOPs. A parameter printed with a
    memory address (a function object) makes every trace's key new: a miss, never a wrong hit."""
    h = hashlib.sha256()
    h.update(f"{jax.default_backend()}|{tag}|".encode())
    h.update(str(closed.jaxpr).encode())
    for c in closed.consts:
        is_key = jax.dtypes.issubdtype(getattr(c, "dtype", None), jax.dtypes.prng_key)
        a = np.asarray(jax.random.key_data(c) if is_key else c)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


@dataclasses.dataclass
class Ledger:
    """FLOPs and sample passes per category (plain Python numbers: checkpointable as JSON)."""

    flops: dict[str, float] = dataclasses.field(default_factory=lambda: {c: 0.0 for c in CATEGORIES})
    samples: dict[str, int] = dataclasses.field(default_factory=lambda: {c: 0 for c in CATEGORIES})
    per_task: list[dict[str, float]] = dataclasses.field(default_factory=list)
    _task: int = 0  # the task that charges go to

    def charge(self, category: str, flops: float, samples: int = 0, calls: int = 1) -> None:
        if category not in CATEGORIES:
            raise ValueError(f"category: unknown ledger category {category!r}; expected one of {CATEGORIES}")
        self.flops[category] += float(flops) * calls
        self.samples[category] += int(samples) * calls
        while len(self.per_task) <= self._task:
            self.per_task.append({c: 0.0 for c in CATEGORIES})
        self.per_task[self._task][category] += float(flops) * calls

    def start_task(self, task: int) -> None:
        self._task = task

    def budget_flops(self, task: int | None = None) -> float:
        src = self.flops if task is None else self.per_task[task]
        return sum(src[c] for c in BUDGET_CATEGORIES)

    def summary(self) -> dict[str, float]:
        out = dict(self.flops)
        out["total"] = self.budget_flops()
        return out

    def to_json(self) -> dict[str, Any]:
        return {"flops": self.flops, "samples": self.samples, "per_task": self.per_task, "task": self._task}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Ledger:
        ledger = cls(flops=dict(d["flops"]), samples=dict(d["samples"]), per_task=[dict(t) for t in d["per_task"]])
        ledger._task = int(d.get("task", 0))
        return ledger


def check_zero_cost(strategy_flops: float, naive_flops: float, tolerance: float = 0.005) -> bool:
    """True when the strategy spent at most naive fine-tuning's FLOPs (within `tolerance`)."""
    return strategy_flops <= naive_flops * (1.0 + tolerance)
