"""Domain-incremental digits: every task holds all ten classes of scikit-learn's bundled 8x8 digits,
drawn in its own style (a fixed pixel transform), so a model must learn every domain anew.

The 1,797 digits are split, with a seeded permutation, into one disjoint group per task (no digit
appears in two tasks); task k is group k under the transform named by `data.domains[k]`:

    upright   as scanned           rot90 / rot180 / rot270   rotated counter-clockwise
    inverted  1 - pixel            mirrored                  flipped left to right

Each task's held-out set is `test_per_task` of its group (stratified by class). Images are float32
[N, 8, 8, 1] (pixel / 16), as in `amr.data.digits`.
"""

from __future__ import annotations

import numpy as np

from amr.data import digits, splits
from amr.data.tasks import Task

STYLES = {
    "upright": lambda x: x,
    "rot90": lambda x: np.rot90(x, 1, axes=(1, 2)),
    "rot180": lambda x: np.rot90(x, 2, axes=(1, 2)),
    "rot270": lambda x: np.rot90(x, 3, axes=(1, 2)),
    "inverted": lambda x: 1.0 - x,
    "mirrored": lambda x: x[:, :, ::-1],
}


def digit_styles_tasks(cfg: dict) -> list[Task]:
    domains = cfg["domains"]
    for domain in domains:
        if domain not in STYLES:
            raise ValueError(f"data.domains: {domain!r} is not a digit style; expected some of {tuple(STYLES)}.")
    x_Nx8x8x1, y = digits.load_images()
    groups = np.array_split(splits.domain_rng(cfg["seed"], "digit_styles").permutation(len(y)), len(domains))
    tasks = []
    for name, idx in zip(domains, groups):
        too_small = f"digit style {name!r} has {len(idx)} digits ({len(domains)} tasks share 1,797)"
        rng = splits.domain_rng(cfg["seed"], "digit_styles", name)
        train_idx, test_idx = digits.split_task(idx, y, cfg, rng, too_small)
        style = STYLES[name]
        test = np.ascontiguousarray(style(x_Nx8x8x1[test_idx]))
        train = np.ascontiguousarray(style(x_Nx8x8x1[train_idx]))
        tasks.append(Task(name, splits.drop_shared_rows(train, test), test))
    return tasks
