"""Writes the quickstart's results table into README.md (between the quickstart-table markers).

    python -m experiments.main --config=configs/quickstart.py --workdir=runs/quickstart
    python -m experiments.update_readme --results=runs/quickstart/results.json
"""

import argparse
import json
import os
import re

from amr import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START, END = "<!-- quickstart-table -->", "<!-- /quickstart-table -->"


def render(results: dict, results_path: str) -> str:
    seeds = sorted({s for e in results["strategies"].values() for s in e["seeds"]})
    lines = [report.summary_table(results), "",
             f"Generated from `{results_path}` (seeds {', '.join(map(str, seeds))}) by "
             "`python -m experiments.update_readme`; per-seed values are in `runs/*.json` of the workdir."]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", required=True, help="results.json written by experiments.main")
    parser.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    args = parser.parse_args()
    with open(args.results, encoding="utf-8") as f:
        results = json.load(f)
    with open(args.readme, encoding="utf-8") as f:
        readme = f.read()
    if START not in readme or END not in readme:
        raise SystemExit(f"--readme: {args.readme} has no {START} ... {END} block")
    block = f"{START}\n{render(results, os.path.relpath(args.results, ROOT))}\n{END}"
    readme = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, readme, flags=re.S)
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(readme)
    print(block)


if __name__ == "__main__":
    main()
