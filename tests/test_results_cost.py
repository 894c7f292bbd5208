"""The Cost section of docs/RESULTS.md (experiments/results_cost.py): summed run times against the 2.5-h target."""

import pytest

from experiments import results_cost


def _bench(**entries):
    """entries: name -> (seeds, wall_seconds_total or None)."""
    return {"strategies": {n: {"seeds": list(range(k)), "wall_seconds_total": t} for n, (k, t) in entries.items()}}


def test_sums_per_benchmark_and_the_verdict_against_the_target():
    benches = {"text": _bench(uniform=(10, 3600.0), amr=(10, 1800.0)), "styles": _bench(uniform=(10, 1800.0))}
    c = results_cost.benchmark_cost(benches["text"])
    assert c == {"runs": 20, "timed_runs": 20, "core_seconds": 5400.0, "untimed": []}
    lines = results_cost.cost_section(benches, workers=2)
    assert "| text | 20 | 20 | 1.50 | 0.75 | none |" in lines
    assert "| **all** | 30 | 30 | 2.00 | 1.00 | |" in lines
    assert lines[-2] == (
        "The whole sweep's runs take 1.00 h of 2 workers' time, split evenly: it meets the 2.5-h target."
    )
    slow = {"text": _bench(uniform=(10, 6 * 3600.0))}  # negative control: 3 h with 2 workers misses
    assert "**misses** the 2.5-h target" in results_cost.cost_section(slow, workers=2)[-2]


@pytest.mark.parametrize("workers", [1, 2])
def test_untimed_runs_make_the_time_unknown_not_smaller(workers):
    benches = {"text": _bench(uniform=(10, 3600.0), mir=(10, None))}
    lines = results_cost.cost_section(benches, workers=workers)
    assert f"| text | 20 | 10 | 1.00 | {1 / workers:.2f} | `mir` |" in lines
    assert lines[-2].startswith("10 runs have no wall time, so the sweep's time is not known: at least")
