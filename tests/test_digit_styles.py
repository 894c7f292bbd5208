"""The digit_styles source: disjoint digits per task, each task's transform, clear errors."""

import numpy as np
import pytest
from sklearn import datasets

from amr.data import digit_styles
from amr.data.tasks import make_tasks

DOMAINS = ("upright", "rot90", "inverted", "mirrored", "rot180")


def _tasks(**kw):
    return make_tasks({"source": "digit_styles", "domains": DOMAINS, **kw})


def _undo(name, x):
    return {"upright": x, "rot90": np.rot90(x, -1, axes=(1, 2)), "inverted": 1.0 - x,
            "mirrored": x[:, :, ::-1], "rot180": np.rot90(x, 2, axes=(1, 2))}[name]  # fmt: skip


def test_tasks_are_disjoint_transformed_digits():
    tasks = _tasks()
    originals = {bytes(r) for r in (datasets.load_digits().images / 16.0).astype(np.float32).reshape(1797, -1)}
    seen = set()
    for task in tasks:
        assert task.train.shape[1:] == (8, 8, 1) and len(task.test) == 60 and len(task.train) >= 290
        rows = np.concatenate([task.train, task.test])
        back = {bytes(r) for r in np.ascontiguousarray(_undo(task.name, rows)[..., 0]).reshape(len(rows), -1)}
        assert back <= originals  # undoing the task's own transform gives bundled digits
        assert not back & seen  # no digit in two tasks
        seen |= back
    # negative control: undoing the wrong transform does not give the bundled digits
    wrong = _undo("rot90", tasks[2].train)[..., 0].reshape(len(tasks[2].train), -1)
    assert not {bytes(r) for r in np.ascontiguousarray(wrong)} <= originals


def test_same_seed_same_arrays_other_seed_other_split():
    a, b, c = _tasks(), _tasks(), _tasks(seed=1)
    np.testing.assert_array_equal(a[1].train, b[1].train)
    assert not np.array_equal(a[1].test, c[1].test)


def test_bad_domain_and_test_size_are_named():
    with pytest.raises(ValueError, match="data.domains.*'sideways'"):
        make_tasks({"source": "digit_styles", "domains": ("upright", "sideways")})
    with pytest.raises(ValueError, match="data.test_per_task"):
        make_tasks({"source": "digit_styles", "domains": DOMAINS, "test_per_task": 400})
    assert set(DOMAINS) <= set(digit_styles.STYLES)
