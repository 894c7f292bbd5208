"""The measured ledger: FLOPs from the compiled functions that ran, loops counted, devices invariant."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from amr.compute import ledger as budget
from amr.compute import measure
from amr.compute import plan as plan_lib
from amr.compute.costs import kmeans_cost
from amr.runner import experiment
from amr.train import chunk as step_lib
from amr.train import measured
from amr.train.host_state import HostState
from amr.train.loop import Run, make_strategy
from amr.train.result import run_result
from amr.train.strategy import methods_cost
from configs import tiny


def _scan_matmul(x, w):
    return jax.lax.scan(lambda c, _: (c @ w, None), x, None, length=5)[0]


def test_unrolled_analysis_counts_every_iteration():
    x, w = jax.ShapeDtypeStruct((8, 16), jnp.float32), jax.ShapeDtypeStruct((16, 16), jnp.float32)
    one = 2 * 8 * 16 * 16
    assert measure.loop_flops(_scan_matmul, x, w) == 5 * one
    # negative control: XLA's own reading of the compiled scan counts the body once
    assert budget.compiled_flops(_scan_matmul, x, w) < 1.01 * one


def test_kmeans_cost_follows_the_iterations_and_the_clusters():
    few, many = kmeans_cost(256, 32, 4, 5), kmeans_cost(256, 32, 4, 10)
    # each further Lloyd iteration costs at least the distance matmul 2 * N * D * k
    assert many - few >= 5 * 2 * 256 * 32 * 4
    assert kmeans_cost(256, 32, 8, 5) > few


def _config(**replay):
    cfg = tiny.get_config()
    for k, v in replay.items():
        cfg.replay[k] = v
    return cfg


@functools.cache
def _ctx(num_devices=1, **replay):
    cfg = _config(**replay)
    cfg.mesh.num_devices = num_devices
    return experiment.prepare(cfg)


@functools.cache
def _strategy(name, num_devices=1, **replay):
    return make_strategy(_ctx(num_devices, **replay), name)


@pytest.mark.slow
def test_chunk_is_outside_plus_steps_times_body():
    s = _strategy("amr")
    plan = s.plan
    spec = step_lib.ChunkSpec(s.ctx.config.train.chunk_size, plan.new_batch, plan.replay_batch)
    state = jax.eval_shape(lambda: s.init_state(0))
    cost = measured.chunk_cost(s.ctx, s.tx, s.policy, spec, state, s.costs, False, check=True)
    # the real chunk as it runs (loops rolled) reads one body plus the outside
    assert cost.rolled_gap() < 1e-3, (cost.outside + cost.body, cost.rolled)
    # S = 3, analysed unrolled, against the extrapolation from S = 1 and 2
    fn, args = measured._chunk_and_args(s.ctx, s.tx, s.policy, spec._replace(steps=3), state, False)
    np.testing.assert_allclose(measure.loop_flops(fn, *args), cost.outside + 3 * cost.body, rtol=1e-2)
    # training is S plain steps split by rows; the rest is the chunk's own work
    flops = cost.categories()
    np.testing.assert_allclose(flops["train_new"] + flops["train_replay"], 4 * s.costs.train(16))
    assert flops["train_replay"] / flops["train_new"] == pytest.approx(plan.replay_batch / plan.new_batch)
    assert 0 < flops["selection"] < 0.05 * cost.total


@pytest.mark.slow
def test_more_probes_and_more_mir_candidates_cost_more():
    base, probed = _strategy("amr").chunk_cost(1), _strategy("amr", probe_samples=8).chunk_cost(1)
    probe_forward = _strategy("amr").costs.forward(8)
    assert probed.selection - base.selection == pytest.approx(probe_forward, rel=0.1)
    two, four = _strategy("mir", mir_candidates=2).chunk_cost(1), _strategy("mir").chunk_cost(1)
    assert four.selection > two.selection * 1.05


@pytest.mark.slow
def test_negative_control_plan_blind_to_the_bandit():
    """uniform and amr (free 'sample' references, no probes) have the same plan numbers; the measured
    chunks differ, because amr's chunk also updates the bandit from every replayed row."""
    uni, amr = _strategy("uniform"), _strategy("amr")
    assert (uni.plan.step_flops, uni.plan.chunk_selection_flops) == (
        amr.plan.step_flops,
        amr.plan.chunk_selection_flops,
    )
    assert amr.chunk_cost(1).selection > uni.chunk_cost(1).selection


def test_kmeans_arms_charge_the_embedding_pass_and_kmeans(tmp_path):
    charged = {}
    for clusters in (1, 4):
        s = _strategy("amr", clusters_per_task=clusters)
        run = Run(s.ctx, s, 0, str(tmp_path / str(clusters)))
        ledger = budget.Ledger()
        run.add_arms(step_lib.replicate(s.ctx.mesh, run.template), 0, ledger, float("nan"))
        charged[clusters] = ledger.flops["selection"]
    rows = len(_ctx(clusters_per_task=4).tasks[0].train)
    expect = _ctx(clusters_per_task=4).embed_pass.flops(run.template.params) * -(-rows // 32)
    expect += kmeans_cost(rows, 32, 4, _config().replay.kmeans_iters)
    assert charged[1] == 0.0 and charged[4] == pytest.approx(expect)


@pytest.mark.slow
def test_one_and_two_devices_charge_the_same():
    one, two = _strategy("mir"), _strategy("mir", num_devices=2)
    assert one.chunk_cost(1).categories() == two.chunk_cost(1).categories()
    assert one.naive_task_flops() == two.naive_task_flops()
    # negative control: the program each of the 2 devices runs reads about half of the one-device program,
    # so a ledger of the compiled per-device programs would depend on the device count
    spec = step_lib.ChunkSpec(4, one.plan.new_batch, one.plan.replay_batch)
    state = jax.eval_shape(lambda: one.init_state(0))
    _, args = measured._chunk_and_args(two.ctx, two.tx, two.policy, spec, state, False)
    per_device = budget.compiled_flops(two.for_task(1)[1], *args)
    whole = budget.compiled_flops(*measured._chunk_and_args(one.ctx, one.tx, one.policy, spec, state, False)[:1], *args)
    assert 0.4 < per_device / whole < 0.6


@pytest.mark.slow
def test_joint_is_over_budget_and_the_result_says_so():
    s = _strategy("joint")
    chunks = s.ctx.config.train.steps_per_task // s.ctx.config.train.chunk_size
    host = HostState(ledger=budget.Ledger(), init_losses=[0.0, 0.0, 0.0])
    for t in range(3):
        host.ledger.start_task(t)
        for _ in range(chunks):
            s.chunk_cost(t).charge(host.ledger)
        host.loss_rows.append([1.0, 1.0, 1.0])
    state = s.init_state(0)
    result = run_result("joint", 0, host, state, s.naive_task_flops(), s.plan)
    assert not result["within_budget"] and result["budget_ratio"] > 1.9
    np.testing.assert_allclose(result["budget_ratio_per_task"][0], 1.0, rtol=1e-2)  # task 0 is naive fine-tuning
    # negative control: the same ledger for 'none' is within its budget
    none = _strategy("none")
    host0 = HostState(ledger=budget.Ledger(), init_losses=[0.0, 0.0, 0.0])
    for t in range(3):
        host0.ledger.start_task(t)
        for _ in range(chunks):
            none.chunk_cost(t).charge(host0.ledger)
        host0.loss_rows.append([1.0, 1.0, 1.0])
    assert run_result("none", 0, host0, none.init_state(0), none.naive_task_flops(), none.plan)["within_budget"]


@functools.cache
def _distill_under_a_tail(share_max):
    cfg = _config(share="schedule", share_schedule="tail", share_min=0.0, share_max=share_max)
    cfg.methods = ("distill",)
    return make_strategy(experiment.prepare(cfg), "uniform")


@pytest.mark.slow  # a fresh clone compiles its programs for half a minute: the slow tier
def test_a_varying_share_pays_distillation_on_every_replay_slot():
    """Under a replay schedule the compiled step has `share_max x batch` replay slots and distillation's teacher
    runs on all of them: the plan charges that, so the measured task stays within naive fine-tuning's FLOPs."""
    s = _distill_under_a_tail(0.5)  # tiny: 16 rows a step, 2 replayed on average, 8 replay slots
    cfg = s.ctx.config
    assert s.plan.replay_batch == 8 == plan_lib.replay_slots(cfg, "uniform", 1)
    chunks = cfg.train.steps_per_task // cfg.train.chunk_size
    spent = chunks * s.chunk_cost(1).total + s.plan.boundary_selection_flops
    assert budget.check_zero_cost(spent, s.naive_task_flops()), spent / s.naive_task_flops()
    # negative control: charged at the mean share's 2 replay rows, the teacher's pass would look a quarter as
    # large and the plan would trim fewer new rows than the step's measured work needs
    few = methods_cost(s.ctx, s.tx, s.methods, plan_lib.replay_rows(cfg, "uniform", 1), s.costs)
    slots = methods_cost(s.ctx, s.tx, s.methods, s.plan.replay_batch, s.costs)
    assert few[0] < 0.5 * slots[0]
    under = plan_lib.plan_strategy(cfg, "uniform", s.costs, 1, 256, methods_cost=few)
    assert under.trimmed_rows < s.plan.trimmed_rows


def _mlp_scan(x, w1, w2):
    def body(c, _):
        return jnp.tanh(c @ w1) @ w2 + c, None

    return jax.lax.scan(body, x, None, length=3)[0].sum()


def test_cheap_analysis_compile_reads_the_default_compiles_flops():
    args = [jax.ShapeDtypeStruct(s, jnp.float32) for s in ((8, 16), (16, 32), (32, 16))]
    assert budget.analysis_options()  # the CPU backend: the cheap options are in use
    fns = (measure.unrolled(_mlp_scan), jax.grad(_mlp_scan, argnums=(1, 2)))
    for fn in fns:
        lowered = jax.jit(fn).trace(*args).lower()
        default = lowered.compile().cost_analysis()["flops"]
        cheap = lowered.compile(compiler_options=budget.analysis_options()).cost_analysis()["flops"]
        assert cheap == default > 0
    assert (
        budget.compiled_flops(fns[0], *args) == jax.jit(fns[0]).trace(*args).lower().compile().cost_analysis()["flops"]
    )


def test_negative_control_the_analysis_options_reach_the_compiler(monkeypatch):
    monkeypatch.setattr(budget, "ANALYSIS_OPTIONS", {"xla_no_such_option_for_amr": True})
    monkeypatch.setattr(budget, "_FLOPS_BY_PROGRAM", {})  # no remembered number hides the compile
    x = jax.ShapeDtypeStruct((3, 5), jnp.float32)
    with pytest.warns(UserWarning, match="xla_no_such_option_for_amr"):  # rejected: the default compile counts
        assert budget.compiled_flops(lambda a: (a * 7.0).sum(), x) > 0
