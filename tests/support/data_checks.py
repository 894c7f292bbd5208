"""Checks shared by the `amr.data` tests (test_data.py, test_data_files_tfds.py): a source's default
config with overrides, train/test splits that share no example, and two task lists that are equal."""

import numpy as np

from amr.data import default_data_config


def _rows(x):
    return {bytes(r) for r in np.ascontiguousarray(x).reshape(len(x), -1).view(np.uint8)}


def assert_disjoint(task):
    assert not (_rows(task.train) & _rows(task.test)), f"task {task.name}: train/test share examples"


def assert_same(a, b):
    assert [t.name for t in a] == [t.name for t in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.train, y.train)
        np.testing.assert_array_equal(x.test, y.test)


def data_config(source, **overrides):
    cfg = default_data_config(source)
    cfg.update(overrides)
    return cfg
