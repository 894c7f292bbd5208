"""Class-incremental digits: scikit-learn's bundled 1,797 8x8 digits, `classes_per_task` classes a task.

Task names are "a-b" (classes a..b) or "a" for a single class: with
classes_per_task=2 they are "0-1", "2-3", ..., "8-9"; with 3, "0-2", "3-5",
"6-8", "9". Each task's test set is a seeded stratified sample of
`test_per_task` examples. Images are float32 [N, 8, 8, 1] (pixel / 16).
"""

from __future__ import annotations

import numpy as np
from sklearn import datasets, model_selection

from amr.data import splits
from amr.data.tasks import Task


def task_names(classes_per_task: int) -> tuple[str, ...]:
    names = []
    for lo in range(0, 10, classes_per_task):
        hi = min(lo + classes_per_task, 10) - 1
        names.append(f"{lo}-{hi}" if hi > lo else f"{lo}")
    return tuple(names)


def _classes(name: str) -> np.ndarray:
    lo, _, hi = name.partition("-")
    return np.arange(int(lo), int(hi or lo) + 1)


def digits_tasks(cfg: dict) -> list[Task]:
    cpt = cfg["classes_per_task"]
    if isinstance(cpt, bool) or not isinstance(cpt, (int, np.integer)) or not 1 <= cpt <= 10:
        raise ValueError(f"data.classes_per_task must be an integer in [1, 10], got {cpt!r}.")
    valid = task_names(cpt)
    for domain in cfg["domains"]:
        if domain not in valid:
            raise ValueError(
                f"data.domains: {domain!r} is not a digits task for classes_per_task={cpt}; expected some of {valid}."
            )
    digits = datasets.load_digits()
    x_Nx8x8x1 = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target
    tasks = []
    for name in cfg["domains"]:
        idx = np.flatnonzero(np.isin(y, _classes(name)))
        n_test = cfg["test_per_task"]
        if n_test >= len(idx):
            raise ValueError(
                f"data.test_per_task: digits task {name!r} has {len(idx)} examples, so "
                f"test_per_task={n_test} leaves no train examples."
            )
        rng = splits.domain_rng(cfg["seed"], "digits", name)
        n_classes = len(np.unique(y[idx]))
        # sklearn can stratify only when both parts can hold every class.
        stratify = y[idx] if 1 < n_classes <= min(n_test, len(idx) - n_test) else None
        train_idx, test_idx = model_selection.train_test_split(
            idx, test_size=n_test, stratify=stratify, random_state=int(rng.integers(2**31))
        )
        train_idx = splits.shuffle_cap(train_idx, cfg["max_train_per_task"], rng)
        test = x_Nx8x8x1[test_idx]
        tasks.append(Task(name, splits.drop_shared_rows(x_Nx8x8x1[train_idx], test), test))
    return tasks
