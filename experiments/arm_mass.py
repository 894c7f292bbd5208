"""Where a sweep's bandit put its replay: the arm probabilities of each entry, per task, as JSON.

    python -m experiments.arm_mass /work/sweep17/subpop amr amr+tail

Reads the run files of a benchmark's directory in a sweep's workdir (`runs/<entry>_seed<k>.json`, or
`variants/<entry>/runs/<strategy>_seed<k>.json` for a named entry such as `amr+tail`) and their recorded
`arm_history` (the Boltzmann probabilities over arms after every chunk). Arms are mapped to the task they came
from (`replay.clusters_per_task` arms per task, from the benchmark's `results.json`). For every task t ≥ 1 it
prints, mean over seeds, the probability mass on each past task averaged over the task's chunks (`mean`) and
at its first and last chunk (`first`, `last`), and how many seeds start the task at the same probabilities
(`seeds_at_one_start`: a count equal to the seeds means the task starts from fixed ratios, not from data).
Uniform replay over equal-sized tasks would put 1/t on each of t past tasks. Prints ONE JSON object.
"""

from __future__ import annotations

import glob
import json
import os
import re
import sys

import numpy as np


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


def summarise(bench_dir: str, entry: str) -> dict:
    with open(os.path.join(bench_dir, "results.json"), encoding="utf-8") as f:
        config = json.load(f)["config"]
    steps = int(config["train"]["steps_per_task"])
    cpt = int(config["replay"]["clusters_per_task"])
    paths = run_paths(bench_dir, entry)
    if not paths:
        raise SystemExit(f"entry: no run files of {entry!r} under {bench_dir!r}")
    per_task: dict[int, dict[str, list]] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            history = json.load(f).get("arm_history") or []
        by_task: dict[int, list[np.ndarray]] = {}
        for rec in history:
            task = (int(rec["step"]) - 1) // steps  # the chunk ending at `step` trained task `task`
            by_task.setdefault(task, []).append(np.asarray(rec["probs"], dtype=np.float64))
        for task, chunks in by_task.items():
            if task < 1:
                continue
            masses = np.array([task_mass(p, task, cpt) for p in chunks])
            slot = per_task.setdefault(task, {"mean": [], "first": [], "last": []})
            slot["mean"].append(masses.mean(axis=0))
            slot["first"].append(masses[0])
            slot["last"].append(masses[-1])
    out = {}
    for task, slot in sorted(per_task.items()):
        firsts = np.round(np.array(slot["first"]), 3)
        same = max(int((firsts == row).all(axis=1).sum()) for row in firsts)
        out[str(task)] = {
            **{k: np.round(np.mean(v, axis=0), 3).tolist() for k, v in slot.items()},
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
