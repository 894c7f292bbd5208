"""The code a run was made from: `provenance.code_version` on real git checkouts, the sweep's `same_code` check
and its line on the results page (each flagged case with its accepted counterpart)."""

import json
import os
import shutil
import subprocess

import chex
import pytest

from amr.analysis import provenance
from amr.runner import sweep
from configs import benchmarks
from experiments import results_page

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
A, B = "a" * 40, "b" * 40

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo, *args):
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A checkout with one commit: pkg/__init__.py and pkg/mod.py tracked."""
    root = tmp_path / "checkout"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    _git(root, "init", "-q")
    _git(root, "add", "pkg")
    _git(root, "commit", "-q", "-m", "first")
    return root


@needs_git
def test_code_version_of_a_clean_and_a_dirty_checkout(repo):
    head = _git(repo, "rev-parse", "HEAD")
    pkg = str(repo / "pkg")
    clean = {"commit": head, "dirty": False}
    chex.assert_trees_all_equal(provenance.code_version(pkg), clean)
    chex.assert_trees_all_equal(provenance.code_version(str(repo / "pkg" / "mod.py")), clean)  # a file inside
    (repo / "pkg" / "scratch.py").write_text("y = 2\n")  # untracked: not part of the version
    (repo / "notes.txt").write_text("n\n")
    chex.assert_trees_all_equal(provenance.code_version(pkg), clean)
    (repo / "pkg" / "mod.py").write_text("x = 2\n")  # a tracked file differs from HEAD
    chex.assert_trees_all_equal(provenance.code_version(pkg), {"commit": head, "dirty": True})
    _git(repo, "checkout", "--", "pkg/mod.py")
    _git(repo, "add", "notes.txt")  # staged, not committed: HEAD is not what the tree holds
    chex.assert_trees_all_equal(provenance.code_version(pkg), {"commit": head, "dirty": True})
    _git(repo, "commit", "-q", "-m", "notes")
    new_head = _git(repo, "rev-parse", "HEAD")
    assert new_head != head
    chex.assert_trees_all_equal(provenance.code_version(pkg), {"commit": new_head, "dirty": False})


@needs_git
def test_code_version_is_none_outside_a_checkout_or_without_git(repo, tmp_path, monkeypatch):
    outside = tmp_path / "outside"
    outside.mkdir()
    assert provenance.code_version(str(outside)) is None
    untracked = repo / "venv" / "site-packages" / "pkg"  # a package in an untracked dir of some other checkout
    untracked.mkdir(parents=True)
    assert provenance.code_version(str(untracked)) is None
    assert provenance.code_version(str(repo / "pkg")) is not None  # the accepted counterpart

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    assert provenance.code_version(str(repo / "pkg")) is None

    def hangs(*args, **kwargs):
        raise subprocess.TimeoutExpired(args[0], kwargs.get("timeout"))

    monkeypatch.setattr(provenance.subprocess, "run", hangs)
    assert provenance.code_version(str(repo / "pkg")) is None


@needs_git
def test_code_version_of_the_amr_package_is_its_checkouts_head_and_cached(monkeypatch):
    import amr

    package = os.path.dirname(os.path.abspath(amr.__file__))
    provenance._package_code_version.cache_clear()  # the checkout may have changed since an earlier test cached it
    version = provenance.code_version()
    assert version == provenance.code_version(package)  # the default is the imported package's checkout
    if os.path.exists(os.path.join(os.path.dirname(package), ".git")):  # run from a checkout (or a worktree)
        assert version is not None and version["commit"] == _git(package, "rev-parse", "HEAD")
        assert isinstance(version["dirty"], bool)
    monkeypatch.setattr(provenance, "_git", lambda *a, **k: pytest.fail("looked up again"))
    assert provenance.code_version() == version  # once per process


def _runs(*codes):
    runs = []
    for k, code in enumerate(codes):
        run = {"seed": k}
        if code != "missing":
            run["code"] = code
        runs.append(run)
    return runs


def test_same_code_of_synthetic_runs():
    clean_a, clean_b, dirty_a = (
        {"commit": A, "dirty": False},
        {"commit": B, "dirty": False},
        {"commit": A, "dirty": True},
    )
    one = provenance.same_code({"uniform": _runs(clean_a, clean_a), "amr": _runs(clean_a, clean_a)})
    chex.assert_trees_all_equal(one, {"ok": True, "versions": [clean_a], "runs": 4, "unrecorded": 0})
    two = provenance.same_code({"uniform": _runs(clean_b, clean_a), "uniform@1/32": _runs(clean_a)})
    assert not two["ok"] and two["versions"] == [clean_a, clean_b]  # sorted, both named
    dirty = provenance.same_code({"uniform": _runs(dirty_a), "amr": _runs(dirty_a)})
    assert not dirty["ok"] and dirty["versions"] == [dirty_a]  # one version, but not one that can be checked out
    mixed = provenance.same_code({"uniform": _runs(clean_a), "amr": _runs(dirty_a)})
    assert not mixed["ok"] and mixed["versions"] == [clean_a, dirty_a]
    old = provenance.same_code({"uniform": _runs("missing", clean_a), "amr": _runs(None, clean_a)})
    chex.assert_trees_all_equal(old, {"ok": True, "versions": [clean_a], "runs": 4, "unrecorded": 2})
    none = provenance.same_code({"uniform": _runs("missing"), "amr": _runs("missing")})
    chex.assert_trees_all_equal(none, {"ok": True, "versions": [], "runs": 2, "unrecorded": 2})


def _fake_sweep_runs(code_of):
    """Stands in for `train_and_evaluate`: writes run files carrying `code_of(workdir)` as their code."""

    def fake(config, workdir, progress=True):
        os.makedirs(os.path.join(workdir, "runs"), exist_ok=True)
        replay = int(round(config.replay.fraction * config.train.batch_size))
        for s in config.strategies:
            for seed in config.seeds:
                af = 0.3 + 0.01 * seed
                run = {
                    "seed": seed,
                    "avg_forgetting": af,
                    "max_forgetting": 2 * af,
                    "new_task_loss": 2.0,
                    "final_avg_loss": 2.0,
                    "forgetting_per_task": [af],
                    "loss_matrix": [[1.0, 2.0], [1.5, 2.0]],
                    "within_budget": True,
                    "flops": {"total": 10.0, "train_new": 8.0},
                    "plan": {"new_batch": config.train.batch_size - replay, "replay_batch": replay, "trimmed_rows": 0},
                    "init_losses": [3.0, 3.0],
                    "code": code_of(workdir),
                }
                with open(os.path.join(workdir, "runs", f"{s}_seed{seed}.json"), "w") as f:
                    json.dump(run, f)
        return {"tasks": ["a", "b"]}

    return fake


@pytest.mark.parametrize(
    "code_of, ok, versions",
    [
        (lambda w: {"commit": A, "dirty": False}, True, [{"commit": A, "dirty": False}]),  # the accepted case
        (
            lambda w: {"commit": B if "variants" in w else A, "dirty": False},  # the frontier's runs: other code
            False,
            [{"commit": A, "dirty": False}, {"commit": B, "dirty": False}],
        ),
    ],
)
def test_sweep_summary_checks_the_code_of_every_run_and_variant(tmp_path, monkeypatch, code_of, ok, versions):
    monkeypatch.setattr(sweep, "train_and_evaluate", _fake_sweep_runs(code_of))
    results = sweep.run_sweep(
        ["digits"], ["uniform"], [0, 1], str(tmp_path / "runs"), str(tmp_path / "r.json"),
        smoke=True, progress=False, get_config=benchmarks.get, frontier=(1,), headroom=(), same_split=False,
    )  # fmt: skip
    entry = results["benchmarks"]["digits"]
    assert set(entry["strategies"]) == {"uniform", "uniform@1/32"}
    chex.assert_trees_all_equal(entry["same_code"], {"ok": ok, "versions": versions, "runs": 4, "unrecorded": 0})
    assert json.loads((tmp_path / "r.json").read_text())["benchmarks"]["digits"]["same_code"] == entry["same_code"]


def test_results_page_code_line():
    clean_a, clean_b, dirty_a = (
        {"commit": A, "dirty": False},
        {"commit": B, "dirty": False},
        {"commit": A, "dirty": True},
    )

    def line(versions, runs=12, unrecorded=0):
        ok = len(versions) <= 1 and not any(v["dirty"] for v in versions)
        code = {"ok": ok, "versions": versions, "runs": runs, "unrecorded": unrecorded}
        return results_page.code_check({"same_code": code})

    assert line([clean_a]) == "Code: all 12 runs from commit `aaaaaaa`."
    assert line([clean_a], unrecorded=2) == "Code: 10 of 12 runs from commit `aaaaaaa`; not recorded for the other 2."
    two = line([clean_a, clean_b])
    assert two.startswith("**Caveat") and "`aaaaaaa`" in two and "`bbbbbbb`" in two and "dirty" not in two
    dirty = line([dirty_a])
    assert dirty.startswith("**Caveat") and "dirty tree of commit `aaaaaaa`" in dirty
    mixed = line([clean_a, dirty_a], unrecorded=1)
    assert "`aaaaaaa`, `aaaaaaa` (dirty tree)" in mixed and "1 of the 12 runs did not record" in mixed
    assert line([], unrecorded=12) == "Code: not recorded for these runs."
    assert results_page.code_check({}) == "Code: not recorded for these runs."  # results from before the field


def test_results_page_renders_docs_results_json_without_the_field(tmp_path, monkeypatch):
    with open(os.path.join(ROOT, "docs", "results.json"), encoding="utf-8") as f:
        results = json.load(f)
    for e in results["benchmarks"].values():  # as results written before summaries carried the field
        e.pop("same_code", None)
    monkeypatch.setattr(results_page.plots, "plot_forgetting_vs_flops", lambda *a, **k: None)  # no PNGs: text only
    monkeypatch.setattr(results_page, "_pareto_plot", lambda *a, **k: None)
    text = results_page.page(results, None, str(tmp_path))
    data_lines = [i for i, t in enumerate(text.splitlines()) if t.startswith("Data: ")]
    assert len(data_lines) == len(results["benchmarks"])
    for i in data_lines:  # the code line right after each data line
        assert text.splitlines()[i + 2] == "Code: not recorded for these runs."
