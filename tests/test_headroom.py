"""The headroom grid: `tilted` fixed allocations over past tasks, their sweep entries and evidence."""

import chex
import jax
import numpy as np
import pytest

from amr.analysis import evidence
from amr.replay import memory as memory_lib
from amr.replay import policies as replay_lib
from amr.runner import variants
from tests.test_replay import CAPACITY, _filled

SIZES = ((30, 10), (500,), (60,))  # three past tasks, the first with two arms


def _numpy_tilted(tilt):
    """Task i of 3 gets exp(tilt * i / 2) of the mass (normalised), arms by size inside their task."""
    w = np.exp(tilt * np.arange(3) / 2)
    w = w / w.sum()
    return np.array([w[0] * 30 / 40, w[0] * 10 / 40, w[1], w[2]])


@pytest.mark.parametrize("tilt", [-2.0, -0.5, 1.0, 3.0])
@pytest.mark.parametrize("jit", [False, True])
def test_tilted_probs_match_numpy(tilt, jit):
    policy = replay_lib.make_replay("tilted", max_arms=8, capacity=CAPACITY, task_tilt=tilt)
    state, _ = _filled(policy, sizes_per_task=SIZES)
    probs = jax.jit(policy.arm_probs) if jit else policy.arm_probs
    p = np.asarray(probs(state))
    chex.assert_shape(p, (8,))
    np.testing.assert_allclose(p[:4], _numpy_tilted(tilt), rtol=1e-5)
    assert np.all(p[4:] == 0)


def test_tilt_zero_is_task_balanced_and_tilts_differ():
    balanced = replay_lib.make_replay("task_balanced", max_arms=8, capacity=CAPACITY)
    state, _ = _filled(balanced, sizes_per_task=SIZES)
    p = {t: np.asarray(replay_lib.tilted_arm_probs(state.memory, t)) for t in (0.0, -2.0, 2.0)}
    np.testing.assert_allclose(p[0.0], np.asarray(balanced.arm_probs(state)), rtol=1e-6)
    assert p[-2.0][0] + p[-2.0][1] > 0.6 > p[2.0][0] + p[2.0][1]  # oldest-first vs newest-first
    assert p[2.0][3] > 0.6


def test_tilted_draws_follow_its_probs():
    policy = replay_lib.make_replay("tilted", max_arms=8, capacity=CAPACITY, task_tilt=-2.0)
    state, _ = _filled(policy, sizes_per_task=SIZES)
    ids = policy.presample(state, jax.random.key(0), 200, 50)
    arms = np.asarray(memory_lib.arms_of(state.memory, ids)).reshape(-1)
    freq = np.bincount(arms, minlength=8)[:4] / arms.size
    np.testing.assert_allclose(freq, _numpy_tilted(-2.0), atol=0.01)


def test_bad_tilt_is_named():
    with pytest.raises(ValueError, match="tilt"):
        replay_lib.make_replay("tilted", max_arms=8, capacity=CAPACITY, task_tilt=float("nan"))
    with pytest.raises(ValueError, match="headroom"):
        variants.headroom([0.0])


def test_headroom_variants_and_evidence():
    grid = variants.headroom([-2, 2])
    assert [v.name for v in grid] == ["tilted@-2", "tilted@+2"]
    assert grid[0].overrides == {"replay.task_tilt": -2.0} and grid[0].meta["kind"] == evidence.HEADROOM

    def entry(values, **extra):
        return {"seeds": [0, 1, 2, 3], "avg_forgetting_per_seed": values, "avg_forgetting_mean": np.mean(values),
                **extra}  # fmt: skip

    uniform = [0.30, 0.28, 0.33, 0.29]
    old_first, new_first = [0.25, 0.24, 0.27, 0.25], [0.33, 0.30, 0.36, 0.31]
    strategies = {
        "uniform": entry(uniform),
        "amr": entry([0.29, 0.28, 0.31, 0.30]),
        "tilted@-2": entry(old_first, variant=grid[0].meta),
        "tilted@+2": entry(new_first, variant=grid[1].meta),
    }
    h = evidence.benchmark_evidence({"strategies": strategies})["headroom"]
    assert h["best"] == "tilted@-2"
    assert h["best_vs_uniform"]["mean"] == pytest.approx(np.mean(np.subtract(old_first, uniform)))
    assert h["best_ratio"] == pytest.approx(np.mean(old_first) / np.mean(uniform))
    assert h["amr_vs_uniform"]["mean"] == pytest.approx(np.mean(np.subtract([0.29, 0.28, 0.31, 0.30], uniform)))
    assert set(h["grid_vs_uniform"]) == {"tilted@-2", "tilted@+2"}
    # negative control: without grid entries there is no headroom
    assert evidence.headroom({"uniform": entry(uniform)}) is None


def test_headroom_table_on_the_results_page():
    from amr.analysis import evidence_md

    def entry(values, **extra):
        return {"seeds": [0, 1, 2], "avg_forgetting_per_seed": values, "avg_forgetting_mean": np.mean(values), **extra}

    meta = variants.headroom([-2])[0].meta
    with_grid = {"strategies": {"uniform": entry([0.3, 0.2, 0.25]), "tilted@-2": entry([0.2, 0.1, 0.2], variant=meta)}}
    without = {"strategies": {"uniform": entry([0.3, 0.2, 0.25])}}
    table = evidence_md.headroom_table({"a": with_grid, "b": without})
    row_a, row_b = table.splitlines()[2:]
    assert evidence_md.headroom_table({"a": with_grid}, lambda bench: 0.5).splitlines()[0].endswith(" can win |")
    assert "`tilted@-2`" in row_a and "-0.0833" in row_a and "0.67×" in row_a
    assert row_b == "| b | n/a | n/a | n/a | n/a |"
    assert "tilted@-2" in "\n".join(evidence_md.headroom_lines(evidence.headroom(with_grid["strategies"])))


def _grid_entry(uniform, best):
    """A sweep entry with uniform and one grid allocation (per-seed average forgetting)."""
    meta = variants.headroom([-2])[0].meta

    def entry(values, **extra):
        return {"seeds": list(range(len(values))), "avg_forgetting_per_seed": values,
                "avg_forgetting_mean": float(np.mean(values)), **extra}  # fmt: skip

    return {"strategies": {"uniform": entry(uniform), "tilted@-2": entry(best, variant=meta)}}


UNIFORM = [0.30, 0.20, 0.25, 0.28]
READINGS = {
    "none": [0.31, 0.18, 0.26, 0.27],  # no significant gain
    "short": [0.28, 0.18, 0.23, 0.26],  # gains 0.02 in every seed: 0.92x
    "reaches": [0.20, 0.11, 0.16, 0.18],  # gains 0.09-0.10 in every seed: 0.62x
}


@pytest.mark.parametrize("kind", list(READINGS))
def test_headroom_kind_reads_the_grid_against_the_ratio_target(kind):
    from amr.analysis import evidence_md

    h = evidence.headroom(_grid_entry(UNIFORM, READINGS[kind])["strategies"])
    assert evidence_md.headroom_kind(h, 0.9) == kind
    reading = evidence_md.headroom_reading(h, 0.9)
    assert ("0.9×" in reading) == (kind != "none")


def test_headroom_kind_depends_on_the_target_and_the_grid():
    from amr.analysis import evidence_md

    h = evidence.headroom(_grid_entry(UNIFORM, READINGS["short"])["strategies"])
    assert evidence_md.headroom_kind(h, 0.95) == "reaches"  # a looser target is reached by the same grid
    assert evidence_md.headroom_kind(None, 0.9) == "n/a"
    # negative control: a grid that forgets more than uniform is never read as a gain, whatever the target
    worse = evidence.headroom(_grid_entry(UNIFORM, [u + 0.05 for u in UNIFORM])["strategies"])
    assert evidence_md.headroom_kind(worse, 2.0) == "none"


def test_headroom_section_groups_benchmarks_by_reading():
    from experiments.results_headroom import headroom_section, headroom_summary

    benchmarks = {name: _grid_entry(UNIFORM, best) for name, best in READINGS.items()}
    benchmarks["subpop"] = _grid_entry(UNIFORM, READINGS["reaches"])  # 0.62x: within subpop's stricter 0.8x too
    summary = headroom_summary(benchmarks)
    assert summary[0].startswith("- `none`: no allocation") and "not tuned" in summary[0]
    assert summary[1].startswith("- `short`: the grid's best allocation forgets less")
    assert summary[2].startswith("- `reaches`, `subpop`: the grid's best allocation reaches")
    table = [line for line in "\n".join(headroom_section(benchmarks)).splitlines() if line.startswith("| short")][0]
    assert table.endswith("| the best gains, short of the ratio target (0.92× > 0.9×) |")
    assert (
        headroom_summary({"a": {"strategies": {"uniform": _grid_entry(UNIFORM, UNIFORM)["strategies"]["uniform"]}}})
        == []
    )
