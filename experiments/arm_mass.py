"""Where a sweep's bandit put its replay: the arm probabilities of each entry, per task, as JSON.

    python -m experiments.arm_mass /work/sweep17/subpop amr amr+tail

Reads the run files of a benchmark's directory in a sweep's workdir (`runs/<entry>_seed<k>.json`, or
`variants/<entry>/runs/<strategy>_seed<k>.json` for a named entry such as `amr+tail`) and their recorded
`arm_history` (the Boltzmann probabilities over arms after every chunk). Arms are mapped to the task they came
from (`replay.clusters_per_task` arms per task, from the benchmark's `results.json`). For every task t ≥ 1 it
prints, mean over seeds, the probability mass on each past task averaged over the task's chunks (`mean`) and
at its first and last chunk (`first`, `last`), and how many seeds start the task at the same probabilities
(`seeds_at_one_start`: a count equal to the seeds means the task starts from fixed ratios, not from data).
`mean` weighs every chunk alike, also the chunks of a replay schedule that replay nothing; `replayed` weighs
each chunk's probabilities by the replay rows the next chunk drew from them (the entry's `replay.share`
schedule, from its own `results.json`), so it is where the replayed rows went. It is null for an adaptive
share (`controller`, `plateau`: rows chosen during the run) or a config too old to say. Uniform replay over
equal-sized tasks would put 1/t on each of t past tasks. Prints ONE JSON object.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys

import ml_collections
import numpy as np

from amr.compute.plan import share_rows
from amr.replay.share import schedule_table


def run_paths(bench_dir: str, entry: str) -> list[str]:
    """The run files of `entry`, sorted by seed."""
    if "+" in entry or "@" in entry:
        pattern = os.path.join(
            bench_dir, "variants", entry.replace("/", "of").replace(":", "-"), "runs", "*_seed*.json"
        )
    else:
        pattern = os.path.join(bench_dir, "runs", f"{entry}_seed*.json")
    paths = glob.glob(pattern)
    return sorted(paths, key=lambda p: int(re.search(r"_seed(\d+)\.json$", p).group(1)))


def task_mass(probs: np.ndarray, task: int, clusters_per_task: int) -> list[float]:
    """Probability mass on each past task 0..task-1 (arm a belongs to task a // clusters_per_task)."""
    return [float(probs[k * clusters_per_task : (k + 1) * clusters_per_task].sum()) for k in range(task)]


def replay_rows_per_chunk(config: dict) -> np.ndarray | None:
    """int[chunks]: the replay rows of each chunk of a task under the config's `replay.share`; None when the
    rows are chosen during the run (an adaptive share) or the config lacks the keys to say."""
    try:
        cfg = ml_collections.ConfigDict(config)
        rows_min, rows_max, target = share_rows(cfg, num_devices=1)
        chunks = int(cfg.train.steps_per_task) // int(cfg.train.chunk_size)
    except (AttributeError, KeyError):
        return None
    share = cfg.replay.get("share", "fixed")
    if share == "fixed":
        return np.full(chunks, target)
    if share == "schedule":
        return schedule_table(rows_min, rows_max, target, chunks, cfg.replay.get("share_schedule", "front"))
    return None


def _entry_config(bench_dir: str, paths: list[str]) -> dict:
    """The config of the entry whose run files are `paths`: its own (a named entry's overrides applied) when its
    directory has one, else the benchmark's."""
    path = os.path.join(os.path.dirname(os.path.dirname(paths[0])), "results.json")
    if not os.path.exists(path):
        path = os.path.join(bench_dir, "results.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)["config"]


def _replayed_mass(masses: np.ndarray, chunk_ids: list[int], rows: np.ndarray | None) -> np.ndarray | None:
    """Mass per past task weighted by the rows drawn from each record: the record after chunk j feeds chunk j+1."""
    if rows is None:
        return None
    w = np.array([rows[j + 1] if j + 1 < len(rows) else 0 for j in chunk_ids], dtype=np.float64)
    return None if w.sum() == 0 else (w[:, None] * masses).sum(axis=0) / w.sum()


def summarise(bench_dir: str, entry: str) -> dict:
    paths = run_paths(bench_dir, entry)
    if not paths:
        raise SystemExit(f"entry: no run files of {entry!r} under {bench_dir!r}")
    config = _entry_config(bench_dir, paths)
    rows = replay_rows_per_chunk(config)
    steps = int(config["train"]["steps_per_task"])
    chunk_size = steps // len(rows) if rows is not None else steps  # chunk ids are only read with `rows`
    cpt = int(config["replay"]["clusters_per_task"])
    per_task: dict[int, dict[str, list]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            history = json.load(f).get("arm_history") or []
        by_task: dict[int, list[np.ndarray]] = {}
        chunk_of: dict[int, list[int]] = {}
        for rec in history:
            task = (int(rec["step"]) - 1) // steps  # the chunk ending at `step` trained task `task`
            by_task.setdefault(task, []).append(np.asarray(rec["probs"], dtype=np.float64))
            chunk_of.setdefault(task, []).append(((int(rec["step"]) - 1) % steps) // chunk_size)
        for task, chunks in by_task.items():
            if task < 1:
                continue
            masses = np.array([task_mass(p, task, cpt) for p in chunks])
            slot = per_task.setdefault(task, {"mean": [], "first": [], "last": [], "replayed": []})
            slot["mean"].append(masses.mean(axis=0))
            slot["first"].append(masses[0])
            slot["last"].append(masses[-1])
            slot["replayed"].append(_replayed_mass(masses, chunk_of[task], rows))
    out = {}
    for task, slot in sorted(per_task.items()):
        firsts = np.round(np.array(slot["first"]), 3)
        same = max(int((firsts == row).all(axis=1).sum()) for row in firsts)
        replayed = slot.pop("replayed")
        out[str(task)] = {
            **{k: np.round(np.mean(v, axis=0), 3).tolist() for k, v in slot.items()},
            "replayed": None if any(r is None for r in replayed) else np.round(np.mean(replayed, axis=0), 3).tolist(),
            "seeds": len(slot["first"]),
            "seeds_at_one_start": same,
        }
    return {"runs": len(paths), "tasks": out}


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    bench_dir = argv[0]
    print(json.dumps({"dir": bench_dir, "entries": {e: summarise(bench_dir, e) for e in argv[1:]}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
