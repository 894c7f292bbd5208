"""docs/results/POWER.md (experiments/power_page.py): the AMR entries at the seeds the power analysis asks for."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from amr.analysis import evidence
from amr.runner import named_variants
from experiments import power_page
from tests.support import summaries
from tests.support.summaries import JITTER, U_AF, U_FINAL

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REC, TWIN = named_variants.RECOMMENDED_AMR, named_variants.RECOMMENDED_TWIN


def _results(rec_ratio=0.6, amr_shift=0.0):
    runs = {
        "uniform": summaries.runs(U_AF, U_FINAL),
        "amr": summaries.runs(U_AF + amr_shift + JITTER, U_FINAL + JITTER),
        REC: summaries.runs(rec_ratio * U_AF + JITTER, U_FINAL - 0.01 + JITTER),
        TWIN: summaries.runs(0.7 * U_AF - JITTER, U_FINAL - JITTER),
    }
    return {"benchmarks": {"text": summaries.entry(runs)}}


def test_the_paired_rows_are_the_seed_paired_differences():
    results = _results()
    s = results["benchmarks"]["text"]["strategies"]
    table = power_page.paired_rows(results["benchmarks"])
    rec_u = evidence.paired(s[REC], s["uniform"])
    assert rec_u["mean"] == pytest.approx(np.mean(-0.4 * U_AF + JITTER))
    (row,) = [line for line in table.splitlines() if line.startswith("| text |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:2] == ["text", "10"]
    assert cells[4] == f"**{rec_u['mean']:+.4f} ± {rec_u['ci95']:.4f}**"  # REC − uniform, significant
    # negative control: amr at uniform's forgetting plus a symmetric jitter is not significant, so not bold
    amr_u = evidence.paired(s["amr"], s["uniform"])
    assert not amr_u["excludes_zero"] and cells[2] == f"{amr_u['mean']:+.4f} ± {amr_u['ci95']:.4f}"


def test_a_missing_entry_is_a_dash_and_the_page_renders(tmp_path):
    results = _results()
    del results["benchmarks"]["text"]["strategies"][TWIN]
    row = power_page.paired_rows(results["benchmarks"]).splitlines()[-1]
    assert row.endswith("| — | — |")  # REC − TWIN: the twin did not run
    page = power_page.page(results, "power.json")
    assert "| text | `amr` |" in page and f"| text | `{REC}` |" in page
    assert "Code: not recorded for these runs." in page
    assert f"--benchmarks=text --strategies=uniform,amr,{REC} --seeds=0,1,2,3,4,5,6,7,8,9 " in page


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.power_page", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_cli_writes_the_page_and_names_a_missing_results_file(tmp_path):
    path, out = tmp_path / "power.json", tmp_path / "POWER.md"
    path.write_text(json.dumps(_results()))
    done = _cli(f"--results={path}", f"--out={out}")
    assert done.returncode == 0, done.stderr
    assert out.read_text().startswith("# The AMR entries at the seeds the power analysis asks for")
    missing = _cli(f"--results={tmp_path / 'absent.json'}", f"--out={tmp_path / 'other.md'}")
    assert missing.returncode != 0 and "absent.json" in missing.stderr and not (tmp_path / "other.md").exists()
