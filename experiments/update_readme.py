"""Writes a results table into README.md, between the `<!-- BLOCK-table -->` markers.

python -m experiments.main --config=configs/quickstart.py --workdir=runs/quickstart
python -m experiments.update_readme --results=runs/quickstart/results.json --block=quickstart
python -m experiments.update_readme --results=docs/results.json --block=stands   # the sweep's summary
"""

import argparse
import json
import os
import re

from amr.analysis import report, stats
from amr.runner.named_variants import RECOMMENDED_AMR as RECOMMENDED
from amr.runner.named_variants import RECOMMENDED_TWIN as TWIN

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _per_seed(name: str, entry: dict) -> str:
    values = entry.get("avg_forgetting_per_seed") or []
    std = f" (std {stats.std(values):.4f})" if values else ""
    return f"{name}: " + ", ".join(f"{v:.4f}" for v in values) + std


def render(results: dict, results_path: str) -> str:
    seeds = sorted({s for e in results["strategies"].values() for s in e["seeds"]})
    per_seed = "; ".join(_per_seed(name, e) for name, e in results["strategies"].items())
    lines = [
        report.summary_table(results),
        "",
        f"Average forgetting per seed ({', '.join(map(str, seeds))}) — {per_seed}. "
        f"Written from `{results_path}` by `python -m experiments.update_readme`.",
    ]
    return "\n".join(lines)


def _vs(e: dict | None) -> str:
    vs = (e or {}).get("vs_uniform")
    if not vs:
        return "not run"
    ratio = vs["forgetting_ratio"]
    text = f"{ratio:.2f}× ({vs['forgetting_diff_mean']:+.4f} ± {vs['forgetting_diff_ci95']:.4f})"
    excludes = abs(vs["forgetting_diff_mean"]) > vs["forgetting_diff_ci95"]
    return f"**{text}**" if excludes else text


def _check(entry: dict, name: str) -> str:
    c = (entry.get("regime_checks") or {}).get(name) or {}
    if "pass" not in c:
        return "n/a"
    value = f"{c['ratio']:.2f}×" if "ratio" in c else f"{c['over_sd']:.1f}× sd"
    return value + (" pass" if c["pass"] else " **FAIL**")


def render_stands(results: dict, results_path: str) -> str:
    """Per benchmark of the sweep: the regime checks, AMR and every named variant against uniform (the recommended
    AMR and its uniform twin first), the best fixed allocation over past tasks, and uniform at 4/32 against its
    default share (bold: paired interval excludes 0)."""
    named = {
        n
        for e in results["benchmarks"].values()
        for n, v in e["strategies"].items()
        if (v.get("variant") or {}).get("kind") == "named"
    }
    first = [n for n in (RECOMMENDED, TWIN) if n in named]  # the recommended AMR and its uniform twin lead
    named = first + sorted(named - set(first))
    head = ["benchmark", "replay matters", "forgetting real", "amr / uniform (Δ ± CI)"]
    head += [f"`{n}`{' (recommended)' if n == RECOMMENDED else ''} / uniform" for n in named]
    head += ["best fixed allocation / uniform", "uniform 4/32 / default"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for bench, entry in results["benchmarks"].items():
        s = entry["strategies"]
        h = entry.get("headroom") or {}
        best = f"{_vs(s.get(h['best']))} `{h['best']}`" if h.get("best") else "not run"
        share = s.get("uniform@4/32") or s.get("uniform")
        four = share["avg_forgetting_mean"] / s["uniform"]["avg_forgetting_mean"] if "uniform" in s else float("nan")
        cells = [bench, _check(entry, "replay_matters"), _check(entry, "forgetting_is_real"), _vs(s.get("amr"))]
        cells += [_vs(s.get(n)) for n in named] + [best, f"{four:.2f}×"]
        rows.append("| " + " | ".join(cells) + " |")
    seeds = sorted({k for e in results["benchmarks"].values() for k in e["seeds"]})
    rows += ["", f"{len(seeds)} paired seeds; written from `{results_path}` by `python -m experiments.update_readme`."]
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="results.json written by experiments.main")
    parser.add_argument("--block", default="quickstart", help="README block: <!-- BLOCK-table --> ... ")
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = parser.parse_args()
    start, end = f"<!-- {args.block}-table -->", f"<!-- /{args.block}-table -->"
    with open(args.results, encoding="utf-8") as f:
        results = json.load(f)
    with open(args.readme, encoding="utf-8") as f:
        readme = f.read()
    if start not in readme or end not in readme:
        raise SystemExit(f"--block: {args.readme} has no {start} ... {end} block")
    fn = render_stands if args.block == "stands" else render
    block = f"{start}\n{fn(results, os.path.relpath(args.results, ROOT))}\n{end}"
    readme = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, readme, flags=re.S)
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(readme)
    print(block)


if __name__ == "__main__":
    main()
