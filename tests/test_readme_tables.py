"""The README's tables are what the committed results files say (experiments/update_readme.py)."""

import json
import os
import re

from experiments import update_readme

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _block(name: str) -> str:
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(rf"<!-- {name}-table -->\n(.*?)\n<!-- /{name}-table -->", readme, flags=re.S)
    assert m, f"README.md has no {name} block"
    return m.group(1)


def test_the_stands_table_is_rendered_from_the_committed_sweep():
    results = json.load(open(os.path.join(ROOT, "docs", "results.json"), encoding="utf-8"))
    assert _block("stands") == update_readme.render_stands(results, "docs/results.json")


def test_the_stands_table_marks_intervals_that_exclude_zero():
    results = json.load(open(os.path.join(ROOT, "docs", "results.json"), encoding="utf-8"))
    bench = next(iter(results["benchmarks"].values()))
    vs = bench["strategies"]["amr"]["vs_uniform"]
    vs.update(forgetting_ratio=0.8, forgetting_diff_mean=-0.02, forgetting_diff_ci95=0.01)
    assert "**0.80× (-0.0200 ± 0.0100)**" in update_readme.render_stands(results, "x")
    vs.update(forgetting_diff_ci95=0.03)  # negative control: the interval now contains 0
    table = update_readme.render_stands(results, "x")
    assert "0.80× (-0.0200 ± 0.0300)" in table and "**0.80×" not in table
