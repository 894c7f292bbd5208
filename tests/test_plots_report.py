"""Tests for amr/analysis/plots.py (PNG figures) and amr/analysis/report.py (markdown, JSON files)."""

import json
import math
import os

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amr.analysis import plots, report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
L3 = [[1.0, 3.0, 4.0], [1.5, 0.75, 3.5], [2.0, 1.25, 0.5]]


def _assert_png(path, returned):
    assert returned == str(path)
    with open(path, "rb") as f:
        assert f.read(8) == PNG_MAGIC
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert np.var(img[..., :3]) > 1e-3  # not a blank canvas
    # Something besides the white background and black text/axes was drawn.
    rgb = img[..., :3]
    colored = np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max(axis=-1) > 0.1
    assert colored.mean() > 0.002


# ---------------------------------------------------------------- plots


def test_plots_keep_the_global_backend(tmp_path):
    before = matplotlib.get_backend()
    plots.plot_loss_matrix(L3, ["a", "b", "c"], tmp_path / "m.png")
    assert matplotlib.get_backend() == before


@pytest.mark.parametrize("matrix", [L3, [[1.0, np.nan], [2.0, 0.5]]], ids=["full", "partial"])
def test_plot_loss_matrix(tmp_path, matrix):
    names = [f"task {i}" for i in range(len(matrix))]
    path = tmp_path / "sub" / "loss_matrix.png"  # parent created
    _assert_png(path, plots.plot_loss_matrix(np.asarray(matrix), names, path))


def test_plot_loss_matrix_bad_input(tmp_path):
    with pytest.raises(ValueError, match="task_names"):
        plots.plot_loss_matrix(L3, ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="loss_matrix"):
        plots.plot_loss_matrix([[1.0, 2.0]], ["a"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="loss_matrix"):
        plots.plot_loss_matrix([[np.inf]], ["a"], tmp_path / "x.png")
    assert not os.listdir(tmp_path)


def test_plot_forgetting_curves(tmp_path):
    steps = np.arange(0, 200, 10)
    per_task = np.stack(
        [np.where(steps >= 50, 0.01 * (steps - 50), np.nan), np.where(steps >= 120, 0.02 * (steps - 120), np.nan)],
        axis=1,
    )
    curves = {
        "naive": {"steps": steps, "forgetting": per_task},
        "uniform": {"steps": steps.tolist(), "forgetting": (0.5 * per_task).tolist(), "labels": ["prose", "stdlib"]},
        "amr": {"steps": steps, "forgetting": np.nan_to_num(per_task[:, 0])},  # 1-D: one line
        "mir": {"steps": steps, "forgetting": 0.4 * per_task, "task_names": ["p", "s"]},  # 2nd row
    }
    path = tmp_path / "curves.png"
    _assert_png(path, plots.plot_forgetting_curves(curves, path))


@pytest.mark.parametrize(
    "curves, match",
    [
        ({}, "curves"),
        ({"a": {"steps": [1, 2]}}, "curves"),
        ({"a": {"steps": [1, 2], "forgetting": [0.1, 0.2, 0.3]}}, "curves"),
        ({"a": {"steps": [1, 2], "forgetting": [[0.1], [0.2]], "labels": ["x", "y"]}}, "labels"),
        ({"a": {"steps": [1, 2], "forgetting": [[0.1], [0.2]], "task_names": []}}, "task_names"),
        ({"a": {"steps": [1, 2], "forgetting": [[0.1], [np.inf]]}}, "forgetting"),
    ],
)
def test_plot_forgetting_curves_bad_input(tmp_path, curves, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_forgetting_curves(curves, tmp_path / "x.png")


def test_plot_arm_probs(tmp_path):
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=30)
    probs[:5] = 0.0  # no active arm during the first task
    path = tmp_path / "arms.png"
    _assert_png(path, plots.plot_arm_probs(np.arange(30) * 8, probs, ["t0", "t1", "t2", "t3"], path))


@pytest.mark.parametrize(
    "probs, labels, match",
    [
        (np.full((3, 2), 0.5), ["a"], "arm_labels"),
        (np.full((4, 2), 0.5), ["a", "b"], "probs_SxK"),  # 4 rows, 3 steps
        (np.full((3, 2), 0.4), ["a", "b"], "probs_SxK"),  # rows sum to 0.8
        (np.array([[1.5, -0.5]] * 3), ["a", "b"], "probs_SxK"),
        (np.full(3, 1.0), ["a"], "probs_SxK"),
    ],
)
def test_plot_arm_probs_bad_input(tmp_path, probs, labels, match):
    with pytest.raises(ValueError, match=match):
        plots.plot_arm_probs([0, 1, 2], probs, labels, tmp_path / "x.png")


def test_plot_forgetting_vs_flops(tmp_path):
    points = {
        "naive": (1e12, 0.55, 0.02),
        "uniform": (1e12, 0.21, 0.01),
        "amr": (1e12, 0.19, 0.015),
        "mir": (3e13, 0.17, 0.02),
    }
    path = tmp_path / "flops.png"
    _assert_png(path, plots.plot_forgetting_vs_flops(points, path))
    with pytest.raises(ValueError, match="points"):
        plots.plot_forgetting_vs_flops({"a": (1.0, 0.1)}, path)
    with pytest.raises(ValueError, match="points"):
        plots.plot_forgetting_vs_flops({"a": (1.0, 0.1, -0.1)}, path)
    with pytest.raises(ValueError, match="points"):
        plots.plot_forgetting_vs_flops({}, path)


def test_log_scale_rule():
    assert plots._log_scale([1e12, 3e13], 10.0)
    assert not plots._log_scale([1e12, 1.01e12], 10.0)
    assert not plots._log_scale([0.0, 1e12], 10.0)
    assert not plots._log_scale([5.0], 10.0)


@pytest.mark.parametrize(
    "xs", [[0.1, 1.0, 10.0, 0.3], ["task", "kmeans", "hier", "flat"]], ids=["numeric", "categorical"]
)
def test_plot_ablation(tmp_path, xs):
    path = tmp_path / "ablation.png"
    out = plots.plot_ablation(
        xs,
        [0.2, 0.18, 0.22, 0.19],
        [0.01, 0.02, 0.015, 0.0],
        path,
        xlabel="temperature",
        ylabel="avg forgetting",
        title="Temperature",
        baselines={"uniform": 0.215, "naive": 0.25},
    )
    _assert_png(path, out)


def test_plot_ablation_bad_input(tmp_path):
    kw = dict(path=tmp_path / "x.png", xlabel="x", ylabel="y", title="t")
    with pytest.raises(ValueError, match="ys_mean"):
        plots.plot_ablation([1, 2], [0.1], [0.1, 0.1], **kw)
    with pytest.raises(ValueError, match="ys_ci"):
        plots.plot_ablation([1, 2], [0.1, 0.2], [0.1, -0.1], **kw)
    with pytest.raises(ValueError, match="xs"):
        plots.plot_ablation([], [], [], **kw)
    with pytest.raises(ValueError, match="baselines"):
        plots.plot_ablation([1, 2], [0.1, 0.2], [0.1, 0.1], baselines={"u": float("nan")}, **kw)


def test_plot_paired_forest(tmp_path):
    path = tmp_path / "forest.png"
    panels = {"text": [(-0.01, 0.004), (0.002, 0.005), None], "styles": [(0.01, 0.003), None, (-0.02, 0.01)]}
    out = plots.plot_paired_forest(panels, ["a", "b", "c"], path, xlabel="Δ", title="t")
    _assert_png(path, out)


def test_plot_paired_forest_bad_input(tmp_path):
    kw = dict(path=tmp_path / "x.png", xlabel="x", title="t")
    with pytest.raises(ValueError, match=r"panels\['text'\] has 1 values for 2 rows"):
        plots.plot_paired_forest({"text": [(0.1, 0.1)]}, ["a", "b"], **kw)
    with pytest.raises(ValueError, match=r"panels\['text'\]\[0\] must be \(mean, ci half-width\)"):
        plots.plot_paired_forest({"text": [(0.1, 0.1, 0.2)]}, ["a"], **kw)
    with pytest.raises(ValueError, match="half-widths must be >= 0"):
        plots.plot_paired_forest({"text": [(0.1, -0.1)]}, ["a"], **kw)
    with pytest.raises(ValueError, match="rows"):
        plots.plot_paired_forest({"text": []}, [], **kw)
    with pytest.raises(ValueError, match="panels"):
        plots.plot_paired_forest({}, ["a"], **kw)
    assert not (tmp_path / "x.png").exists()


# ---------------------------------------------------------------- markdown


def test_markdown_table_exact():
    rows = [{"name": "amr", "f": 0.123456, "ci": 0.01, "n": 3, "ok": True}, {"name": "a|b", "f": float("nan"), "n": 12}]
    cols = [("name", "strategy"), (("f", "ci"), "forgetting"), ("n", "seeds"), ("ok", "ok?")]
    assert report.markdown_table(rows, cols, float_fmt="{:.3f}") == (
        "| strategy | forgetting | seeds | ok? |\n"
        "| --- | ---: | ---: | --- |\n"
        "| amr | 0.123 ± 0.010 | 3 | True |\n"
        "| a\\|b | nan | 12 | — |"
    )


def test_markdown_table_defaults_and_empty():
    assert report.markdown_table([{"x": 1.5}], [("x", "X")]) == "| X |\n| ---: |\n| 1.5000 |"
    assert report.markdown_table([], [("x", "X")]) == "| X |\n| --- |"


@pytest.mark.parametrize(
    "columns, fmt, match",
    [
        ([], "{:.4f}", "columns"),
        ([("x",)], "{:.4f}", "columns"),
        ([(("a", "b", "c"), "X")], "{:.4f}", "columns"),
        ([("x", 3)], "{:.4f}", "columns"),
        ([("x", "X")], "{:.4d}", "float_fmt"),
        ([("x", "X")], "{0} {1}", "float_fmt"),
    ],
)
def test_markdown_table_bad_input(columns, fmt, match):
    with pytest.raises(ValueError, match=match):
        report.markdown_table([{"x": 1.0}], columns, float_fmt=fmt)


def test_markdown_table_bad_rows():
    with pytest.raises(ValueError, match="rows"):
        report.markdown_table([1.0], [("x", "X")])


_cell_values = st.one_of(
    st.none(), st.integers(-(10**6), 10**6), st.floats(allow_nan=True), st.text(max_size=8), st.booleans()
)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from("abc"), _cell_values), max_size=5))
def test_markdown_table_shape(rows):
    cols = [("a", "A"), (("b", "c"), "B ± C")]
    lines = report.markdown_table(rows, cols).split("\n")
    assert len(lines) == len(rows) + 2
    for line in lines:  # one cell per column: unescaped pipes delimit exactly 2 cells
        assert line.replace("\\|", "").count("|") == len(cols) + 1
        assert line.startswith("| ") and line.endswith(" |")


def _results():
    flops = {"total": 1.5e15, "train_new": 1.2e15, "train_replay": 0.2e15, "selection": 0.1e15, "eval": 1e13}
    entry = lambda f, std, **kw: {
        "seeds": [0, 1, 2],
        "loss_matrix": L3,
        "avg_forgetting": f,
        "avg_forgetting_std": std,
        "avg_forgetting_ci95": 2 * std,
        "final_avg_loss": 1.25,
        "new_task_loss": 0.75,
        "flops": flops,
        **kw,
    }
    return {
        "config": {"seed": 0},
        "tasks": ["a", "b", "c"],
        "strategies": {
            "naive": entry(0.8, 0.02),
            "uniform": entry(0.4, 0.01, max_forgetting=0.6, new_task_loss_excl_first=0.7),
            "amr": entry(0.36, 0.03, bwt=-0.36),
        },
    }


def test_summary_table():
    lines = report.summary_table(_results()).split("\n")
    assert lines[0] == (
        "| strategy | avg forgetting (mean ± 95% CI) | max forgetting | new-task loss (tasks 2..T) "
        "| final avg loss | total FLOPs | vs uniform (× forgetting) |"
    )
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    # naive's max forgetting and new-task loss over tasks 2..T come from its loss matrix (1.0 and
    # (0.75 + 0.5) / 2, not the whole diagonal's 0.75); uniform's are read (0.6, 0.7).
    assert lines[2] == "| naive | 0.8000 ± 0.0400 | 1.0000 | 0.6250 | 1.2500 | 1.5e+15 | 2.00× |"
    assert lines[3] == "| uniform | 0.4000 ± 0.0200 | 0.6000 | 0.7000 | 1.2500 | 1.5e+15 | 1.00× |"
    assert lines[4] == "| amr | 0.3600 ± 0.0600 | 1.0000 | 0.6250 | 1.2500 | 1.5e+15 | 0.90× |"
    assert len(lines) == 5


def test_summary_table_baseline_choice():
    res = _results()
    assert report.summary_table(res, baseline="naive").split("\n")[4].endswith("| 0.45× |")
    res["strategies"]["naive"]["avg_forgetting"] = 0.0  # a baseline that does not forget
    assert report.summary_table(res, baseline="naive").split("\n")[4].endswith("| n/a |")
    del res["strategies"]["uniform"]
    no_baseline = report.summary_table(res).split("\n")
    assert no_baseline[0].endswith("| vs baseline |") and no_baseline[2].endswith("| — |")


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: r.pop("strategies"), "results"),
        (lambda r: r["strategies"].clear(), "results"),
        (lambda r: r["strategies"]["amr"].pop("loss_matrix"), "loss_matrix"),
        (lambda r: r["strategies"]["amr"].pop("flops"), "flops"),
        (lambda r: r["strategies"]["amr"].update(flops={"eval": 1.0}), "flops"),
        (lambda r: r.update(baseline="mir"), "baseline"),
    ],
)
def test_summary_table_bad_input(mutate, match):
    res = _results()
    mutate(res)
    with pytest.raises(ValueError, match=match):
        report.summary_table(res)


# ---------------------------------------------------------------- json files


def test_write_json_atomic_round_trip(tmp_path):
    path = tmp_path / "out" / "results.json"
    obj = {
        **_results(),
        "nan": float("nan"),
        "inf": -math.inf,
        "arr": np.array([[1.0, np.nan], [2.0, 3.0]], dtype=np.float32),
        "np_scalars": [np.int64(3), np.float32(0.5), np.bool_(True)],
        7: "int key",
    }
    report.write_json_atomic(path, obj)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert "[1.0, null]" in text  # rows of numbers stay on one line
    back = json.loads(text)
    assert back["nan"] is None and back["inf"] is None
    assert back["arr"] == [[1.0, None], [2.0, 3.0]]
    assert back["np_scalars"] == [3, 0.5, True]
    assert back["7"] == "int key"
    assert back["strategies"]["amr"]["loss_matrix"] == L3
    assert os.listdir(path.parent) == ["results.json"]  # no temporary file left


def test_write_json_atomic_accepts_jax_arrays(tmp_path):
    import jax.numpy as jnp

    path = tmp_path / "r.json"
    report.write_json_atomic(path, {"x": jnp.arange(3.0), "y": jnp.float32(jnp.nan)})
    assert json.loads(path.read_text()) == {"x": [0.0, 1.0, 2.0], "y": None}


def test_write_json_atomic_keeps_old_file_when_serialisation_fails(tmp_path):
    path = tmp_path / "results.json"
    report.write_json_atomic(path, {"version": 1})
    old = path.read_bytes()
    with pytest.raises(ValueError, match=r"obj\['strategies'\]\['amr'\]\['bad'\]"):
        report.write_json_atomic(path, {"version": 2, "strategies": {"amr": {"bad": object()}}})
    assert path.read_bytes() == old
    with pytest.raises(ValueError, match="key"):
        report.write_json_atomic(path, {("a", "b"): 1})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["results.json"]


def test_write_json_atomic_keeps_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    report.write_json_atomic(path, {"version": 1})
    old = path.read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        report.write_json_atomic(path, {"version": 2})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["results.json"]
