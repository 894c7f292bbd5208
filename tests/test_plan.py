"""The zero-cost plan: the most new-task rows that keep each strategy within naive fine-tuning's FLOPs."""

import pytest

from amr.compute import ledger as budget
from amr.compute import plan as plan_lib
from amr.compute.plan import check_new_rows, plan_strategy
from configs.base import get_base_config
from tests.support.costs import LinearCosts


def _spent(cfg, plan, costs):
    chunks = cfg.train.steps_per_task // cfg.train.chunk_size
    return (
        cfg.train.steps_per_task * costs.train(plan.new_batch + plan.replay_batch)
        + chunks * plan.chunk_selection_flops
        + plan.boundary_selection_flops
    )


def _cfg(**replay):
    cfg = get_base_config()
    for k, v in replay.items():
        cfg.replay[k] = v
    return cfg


@pytest.mark.parametrize("num_devices", [1, 2])
@pytest.mark.parametrize(
    "strategy,replay",
    [("amr", dict(probe_samples=64)), ("mir", {}), ("amr", dict(clusters_per_task=4, embed_dim_hint=8))],
)
def test_trims_the_fewest_rows_that_fit(strategy, replay, num_devices):
    cfg, costs = _cfg(**replay), LinearCosts()
    plan = plan_strategy(cfg, strategy, costs, num_devices, max_task_rows=4096)
    assert plan.trimmed_rows > 0 and plan.new_batch % num_devices == 0
    assert budget.check_zero_cost(_spent(cfg, plan, costs), plan.naive_task_flops, tolerance=0.0)
    # one more device-row of new data would not fit: nothing was over-trimmed
    wider = plan_strategy(_cfg(**replay, zero_cost=False), strategy, costs, num_devices, 4096)
    assert wider.new_batch == cfg.train.batch_size - plan.replay_batch
    bigger = dict(plan.__dict__, new_batch=plan.new_batch + num_devices)
    per_chunk = (
        cfg.train.chunk_size * (costs.grad(bigger["new_batch"]) + 2 * costs.forward(plan.replay_batch * 4))
        if strategy == "mir"
        else plan.chunk_selection_flops
    )
    over = (
        cfg.train.steps_per_task * costs.train(bigger["new_batch"] + plan.replay_batch)
        + cfg.train.steps_per_task // cfg.train.chunk_size * per_chunk
        + plan.boundary_selection_flops
    )
    assert over > plan.naive_task_flops


def test_free_strategies_are_not_trimmed():
    cfg, costs = _cfg(), LinearCosts()
    for s in ("none", "uniform", "amr"):
        plan = plan_strategy(cfg, s, costs, 1, 4096)
        assert plan.trimmed_rows == 0 and plan.new_batch + plan.replay_batch == cfg.train.batch_size


def test_joint_grows_with_the_tasks_seen_and_is_over_budget():
    cfg, costs = _cfg(), LinearCosts()
    plan = plan_strategy(cfg, "joint", costs, 1, 4096, past_tasks=3)
    assert (plan.new_batch, plan.replay_batch, plan.trimmed_rows) == (32, 96, 0)
    assert not budget.check_zero_cost(_spent(cfg, plan, costs), plan.naive_task_flops)


def test_unpayable_selection_is_a_clear_error():
    with pytest.raises(ValueError, match="replay.zero_cost"):
        plan_strategy(_cfg(probe_samples=100_000), "amr", LinearCosts(), 1, 4096)


@pytest.mark.parametrize("num_devices", [1, 2])
@pytest.mark.parametrize("strategy,replay", [("mir", {}), ("amr", dict(probe_samples=64))])
def test_same_split_control_has_the_trimming_strategys_split(strategy, replay, num_devices):
    cfg, costs = _cfg(**replay), LinearCosts()
    trimmed = plan_strategy(cfg, strategy, costs, num_devices, 4096)
    assert trimmed.trimmed_rows > 0
    control = plan_strategy(_cfg(new_rows=trimmed.new_batch), "uniform", costs, num_devices, 4096)
    assert (control.new_batch, control.replay_batch) == (trimmed.new_batch, trimmed.replay_batch)
    assert control.trimmed_rows == 0 and control.step_flops == trimmed.step_flops  # a split, not a selection
    assert budget.check_zero_cost(_spent(cfg, control, costs), control.naive_task_flops, tolerance=0.0)
    # negative control: uniform at the default split trains on more new rows than the trimming strategy
    default = plan_strategy(_cfg(), "uniform", costs, num_devices, 4096)
    assert default.new_batch == trimmed.new_batch + trimmed.trimmed_rows > control.new_batch
    # the first task (`none`'s plan) and `joint` keep their full batches of new rows
    assert plan_strategy(_cfg(new_rows=trimmed.new_batch), "none", costs, num_devices, 4096).new_batch == 32


@pytest.mark.parametrize(
    "new_rows, match",
    [(-2, "integer >= 0"), (31, "do not fit"), (3, "not divisible by the 2 devices")],
)
def test_bad_new_rows_name_the_key(new_rows, match):
    with pytest.raises(ValueError, match=rf"^replay\.new_rows: .*{match}"):
        plan_strategy(_cfg(new_rows=new_rows), "uniform", LinearCosts(), 2, 4096)
    check_new_rows(_cfg(new_rows=30), 2)  # 30 new + 2 replay rows fit 32, over 2 devices


def test_trim_to_budget_finds_the_most_rows_that_fit_and_names_an_unpayable_selection():
    # spent(n) = 10 n FLOPs against a budget of 200: 20 rows fit, 22 (the next multiple of 2 devices) do not
    assert plan_lib._trim_to_budget(lambda n: 10.0 * n, lambda n: 9.0 * n, 32, 200.0, 2, "mir") == 20
    with pytest.raises(ValueError, match=r"replay.zero_cost: mir's selection \(1e\+09 FLOPs per task\)"):
        plan_lib._trim_to_budget(lambda n: 1e9 + n, lambda n: n, 32, 10.0, 2, "mir")
