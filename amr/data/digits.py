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
    x_Nx8x8x1, y = load_images()
    tasks = []
    for name in cfg["domains"]:
        idx = np.flatnonzero(np.isin(y, _classes(name)))
        too_small = f"digits task {name!r} has {len(idx)} examples"
        train_idx, test_idx = split_task(idx, y, cfg, splits.domain_rng(cfg["seed"], "digits", name), too_small)
        test = x_Nx8x8x1[test_idx]
        tasks.append(Task(name, splits.drop_shared_rows(x_Nx8x8x1[train_idx], test), test))
    return tasks


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """(float32 [1797, 8, 8, 1] pixel / 16, int labels [1797]): scikit-learn's bundled digits."""
    digits = datasets.load_digits()
    return (digits.images / 16.0).astype(np.float32)[..., None], digits.target


def split_task(idx, y, cfg: dict, rng: np.random.Generator, too_small: str) -> tuple[np.ndarray, np.ndarray]:
    """(train ids, test ids) of one task's example ids `idx`: `data.test_per_task` held out, stratified by
    class where both parts can hold every class (sklearn's condition), the rest shuffled and capped at
    `data.max_train_per_task`. `too_small` starts the error when nothing would be left to train on."""
    n_test = cfg["test_per_task"]
    if n_test >= len(idx):
        raise ValueError(f"data.test_per_task: {too_small}, so test_per_task={n_test} leaves no train examples.")
    n_classes = len(np.unique(y[idx]))
    stratify = y[idx] if 1 < n_classes <= min(n_test, len(idx) - n_test) else None
    train_idx, test_idx = model_selection.train_test_split(
        idx, test_size=n_test, stratify=stratify, random_state=int(rng.integers(2**31))
    )
    return splits.shuffle_cap(train_idx, cfg["max_train_per_task"], rng), test_idx
