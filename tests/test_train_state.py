"""Per-task learning-rate schedules."""

import ml_collections
import numpy as np
import pytest

from amr.train.state import make_optimizer, per_task_schedule


def _optim(schedule):
    return ml_collections.ConfigDict(
        dict(
            name="adamw",
            learning_rate=1e-3,
            warmup_steps=10,
            schedule=schedule,
            min_lr_ratio=0.1,
            b1=0.9,
            b2=0.99,
            weight_decay=0.0,
            grad_clip=1.0,
        )
    )


def test_rewarm_redecay_restarts_every_task():
    lr = per_task_schedule(_optim("rewarm_redecay"), steps_per_task=100)
    values = np.array([float(lr(i)) for i in range(300)])
    for start in (0, 100, 200):  # every task: warm-up from near 0, peak, cosine down to 10%
        task = values[start : start + 100]
        assert task[0] == pytest.approx(1e-4) and task[9] == pytest.approx(1e-3)
        assert np.all(np.diff(task[:10]) > 0) and np.all(np.diff(task[10:]) <= 1e-12)
        assert task[-1] == pytest.approx(1e-4, rel=1e-2)


def test_constant_warms_up_once():
    lr = per_task_schedule(_optim("constant"), steps_per_task=100)
    assert float(lr(0)) == pytest.approx(0.0)
    assert float(lr(50)) == pytest.approx(1e-3) and float(lr(250)) == pytest.approx(1e-3)


@pytest.mark.parametrize("name", ["adamw", "sgd", "adafactor"])
def test_optimizers_build(name):
    cfg = _optim("constant")
    cfg.name = name
    tx = make_optimizer(cfg, 100)
    assert tx.init({"w": np.zeros(3, np.float32)}) is not None
