"""Arms per source (`replay.arm_labels = "groups"`, named variant `sources`): a finished task's rows split into
arms by the group the data gives each row (`Task.train_groups`, a mixture task's source).

What each test can catch: the mixture labelling a row with the wrong source, or losing the labels' alignment when it
shuffles or drops rows; the labels changing the task's rows (so the data digests); a bad label array or arm-label
name getting through; a task with more groups than arms reaching the compile; the ledger or the plan charging an
embedding pass or a k-means that "groups" never runs; the memory's arms not being the groups. Each has a negative
control.
"""

import numpy as np
import pytest

from amr.compute import ledger as budget
from amr.compute.plan import plan_strategy
from amr.data import mixture, splits, tasks
from amr.runner import config_check, named_variants, sweep, variants
from amr.runner.experiment import prepare
from amr.train import chunk as step_lib
from amr.train import free_embeddings
from amr.train.loop import Run
from amr.train.strategy import make_strategy
from configs import base


def test_mix_labels_every_row_with_its_source_through_the_shuffle_and_the_drop():
    parts = [np.full((5, 3), s, np.int32) + 10 * np.arange(5)[:, None] for s in range(3)]  # row = 10 i + source
    held = parts[1][2:3]  # one row of source 1 equals a held-out one: dropped with its label
    train, groups = mixture.mix(parts, np.random.default_rng(0), held)
    assert train.shape == (14, 3) and groups.dtype == np.int32
    np.testing.assert_array_equal(train[:, 0] % 10, groups)  # each row's label is its source
    assert not any((train == held[0]).all(1))
    assert (np.diff(groups) != 0).sum() > 2  # shuffled together, not one block per source (negative control)
    same, _ = mixture.mix(parts, np.random.default_rng(0), held)
    np.testing.assert_array_equal(
        same, splits.drop_shared_rows(splits.shuffle_cap(np.concatenate(parts), 0, np.random.default_rng(0)), held)
    )  # the rows are those of shuffling the rows themselves: labelling changes no task's data


def _mixture_config(**replay):
    c = base.get_base_config("byte_lm", "mixture")
    c.model.width, c.model.depth, c.model.heads, c.model.mlp_dim = 32, 1, 2, 64
    c.data.seq_len = c.model.seq_len = 32
    c.data.domains = ("headers+docs", "docs")
    c.data.max_train_per_task, c.data.test_per_task, c.data.test_per_source = 128, 32, 32
    c.train.steps_per_task, c.train.batch_size, c.train.chunk_size, c.train.eval_every = 8, 16, 4, 0
    c.replay.fraction, c.replay.embed_dim_hint, c.optim.warmup_steps = 0.125, 32, 2
    c.strategies, c.baseline, c.mesh.num_devices = ("amr",), "", 1
    for k, v in replay.items():
        c.replay[k] = v
    return c


def test_mixture_tasks_carry_one_group_per_source():
    ts = tasks.make_tasks(_mixture_config().data)
    assert [tasks.num_groups(t) for t in ts] == [2, 1]
    np.testing.assert_array_equal(np.bincount(ts[0].train_groups), [64, 64])
    assert not ts[1].train_groups.any()  # a one-source task: one group


def test_a_task_without_groups_is_one_group_and_bad_labels_are_named():
    t = tasks.Task("a", np.zeros((4, 2), np.int32), np.ones((2, 2), np.int32))
    assert tasks.num_groups(t) == 1
    np.testing.assert_array_equal(tasks.group_labels(t), [0, 0, 0, 0])
    with pytest.raises(ValueError, match="Task 'b': train_groups must be non-negative ints, one per train row"):
        tasks.Task("b", np.zeros((4, 2), np.int32), np.ones((2, 2), np.int32), train_groups=np.zeros(3, np.int32))
    with pytest.raises(ValueError, match="train_groups"):
        tasks.Task("c", np.zeros((2, 2), np.int32), np.ones((2, 2), np.int32), train_groups=np.array([0, -1]))


def test_config_check_names_arm_labels_and_a_task_with_more_groups_than_arms():
    cfg = _mixture_config(arm_labels="bogus")
    with pytest.raises(config_check.ConfigError, match="replay.arm_labels: unknown arm labels 'bogus'"):
        config_check.validate(cfg, 1)
    cfg = _mixture_config(arm_labels="groups", clusters_per_task=1)
    config_check.validate(cfg, 1)  # the config alone is fine: the tasks decide
    with pytest.raises(config_check.ConfigError, match="replay.clusters_per_task: task 'headers\\+docs' has 2 groups"):
        prepare(cfg)
    cfg.strategies = ("uniform",)  # negative control: no AMR, no arms per group
    config_check.validate_groups(cfg, tasks.make_tasks(cfg.data))
    cfg.strategies, cfg.replay.arm_labels = ("amr",), "kmeans"  # nor with k-means arms
    config_check.validate_groups(cfg, tasks.make_tasks(cfg.data))


def test_the_named_variant_sets_groups_and_configs_before_the_key_keep_kmeans():
    v = variants.parse_named("amr+sources", sweep.STRATEGIES)
    assert v.overrides == {"replay.arm_labels": "groups", "replay.clusters_per_task": 2}
    assert named_variants.configures_only_the_selection("sources")  # uniform never reads arm labels
    cfg = _mixture_config()
    del cfg.replay["arm_labels"]
    config_check.validate(cfg, 1)


@pytest.fixture(scope="module")
def groups_run(tmp_path_factory):
    ctx = prepare(_mixture_config(arm_labels="groups", clusters_per_task=2, embeddings="free"))
    strategy = make_strategy(ctx, "amr")
    return ctx, strategy, Run(ctx, strategy, 0, str(tmp_path_factory.mktemp("ckpt")))


def test_the_task_end_makes_one_arm_per_source_and_charges_nothing(groups_run):
    ctx, strategy, run = groups_run
    assert not free_embeddings.uses_buffer(ctx.config, "amr")  # no embeddings kept: nothing clusters them
    state = step_lib.replicate(ctx.mesh, strategy.init_state(0))
    for t in range(2):
        ledger = budget.Ledger()
        state = run.add_arms(state, t, ledger, float("nan"))
        assert ledger.flops.get("selection", 0.0) == 0.0  # no embedding pass, no k-means
    memory = state.replay.memory
    sizes, arm_task = np.asarray(memory.sizes)[:4], np.asarray(memory.arm_task)[:4]
    np.testing.assert_array_equal(sizes, [64, 64, 128, 0])  # task 1's second arm is empty: never drawn
    np.testing.assert_array_equal(arm_task, [0, 0, 1, 1])
    ids, offsets = np.asarray(memory.sorted_ids), np.asarray(memory.offsets)
    groups = ctx.tasks[0].train_groups
    for arm in (0, 1):  # task 0's rows are ids 0..127: arm c holds exactly source c's rows
        held = ids[offsets[arm] : offsets[arm] + sizes[arm]]
        assert set(held) == set(np.flatnonzero(groups == arm)), arm
    np.testing.assert_array_equal(np.asarray(memory.arm_of)[:128], groups)  # each id's arm is its source


def test_the_plan_charges_kmeans_arms_but_not_group_arms(groups_run):
    ctx, strategy, _ = groups_run
    kmeans_cfg = ctx.config.copy_and_resolve_references()
    kmeans_cfg.replay.arm_labels = "kmeans"
    kmeans = plan_strategy(kmeans_cfg, "amr", strategy.costs, 1, 128)
    one_arm = ctx.config.copy_and_resolve_references()
    one_arm.replay.clusters_per_task = 1
    assert (
        strategy.plan.boundary_selection_flops
        == plan_strategy(one_arm, "amr", strategy.costs, 1, 128).boundary_selection_flops
    )
    assert kmeans.boundary_selection_flops > strategy.plan.boundary_selection_flops  # negative control
