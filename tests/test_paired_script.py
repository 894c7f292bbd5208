"""experiments/paired.py: paired differences between a results file's entries, seed by seed."""

import json

import numpy as np
import pytest

from experiments import paired


def _entry(seeds, forgetting, final=None):
    final = final if final is not None else [2.0] * len(seeds)
    return {
        "seeds": seeds, "avg_forgetting_per_seed": forgetting, "final_avg_loss_per_seed": final,
        "new_task_loss_excl_first_per_seed": [1.0] * len(seeds),
    }  # fmt: skip


def _results():
    return {
        "benchmarks": {
            "text": {
                "strategies": {"a": _entry([0, 1, 2], [0.10, 0.20, 0.31]), "b": _entry([0, 1, 2], [0.12, 0.21, 0.30])}
            },
            "styles": {"strategies": {"a": _entry([0, 1], [0.1, 0.2])}},
        }
    }


def test_the_pair_is_the_seedwise_difference_against_numpy():
    got = paired.paired_table(_results(), [("a", "b")])["text"]["a:b"]["avg_forgetting"]
    diff = np.array([0.10, 0.20, 0.31]) - np.array([0.12, 0.21, 0.30])
    np.testing.assert_allclose(got["mean"], diff.mean())
    np.testing.assert_allclose(got["std"], diff.std(ddof=1))
    assert got["seeds"] == [0, 1, 2]
    # negative control: the reversed pair is the negated difference, not the same one
    back = paired.paired_table(_results(), [("b", "a")])["text"]["b:a"]["avg_forgetting"]
    np.testing.assert_allclose(back["mean"], -diff.mean())


def test_a_benchmark_without_both_entries_is_null():
    assert paired.paired_table(_results(), [("a", "b")])["styles"]["a:b"] is None


@pytest.mark.parametrize("text", ["a", "a:", ":b", ""])
def test_a_malformed_pair_is_refused_by_name(text):
    with pytest.raises(ValueError, match="^pair: "):
        paired.parse_pair(text)


def test_entry_names_with_colons_split_where_both_sides_are_entries():
    entries = {"amr+tail+probes", "uniform@split:amr+tail+probes", "uniform+tail"}
    assert paired.parse_pair("amr+tail+probes:uniform@split:amr+tail+probes", entries) == (
        "amr+tail+probes",
        "uniform@split:amr+tail+probes",
    )
    assert paired.parse_pair("uniform@split:amr+tail+probes:uniform+tail", entries) == (
        "uniform@split:amr+tail+probes",
        "uniform+tail",
    )
    with pytest.raises(ValueError, match="^pair: "):  # negative control: no split names two entries
        paired.parse_pair("amr+tail:uniform", entries)


def test_main_prints_one_json_object(tmp_path, capsys):
    path = tmp_path / "r.json"
    path.write_text(json.dumps(_results()))
    assert paired.main([str(path), "a:b"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["paired"]["text"]["a:b"]["final_avg_loss"]["mean"] == pytest.approx(0.0)
