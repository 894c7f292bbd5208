"""Writes a results table into README.md, between the `<!-- BLOCK-table -->` markers.

python -m experiments.main --config=configs/quickstart.py --workdir=runs/quickstart
python -m experiments.update_readme --results=runs/quickstart/results.json --block=quickstart
"""

import argparse
import json
import os
import re

from amr.analysis import report, stats

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
    block = f"{start}\n{render(results, os.path.relpath(args.results, ROOT))}\n{end}"
    readme = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, readme, flags=re.S)
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(readme)
    print(block)


if __name__ == "__main__":
    main()
