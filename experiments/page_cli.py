"""The command line shared by the pages made from one compare.py JSON (ABLATIONS.md, POWER.md)."""

from __future__ import annotations

import argparse
import json
import os


def parse(argv, doc: str, results: str, out: str, sweep: str) -> tuple[argparse.Namespace, dict]:
    """--results (default `results`) and --out (default `out`), and the results loaded; exits with an error naming
    the file when it does not exist (run `sweep` first) or holds no benchmarks, before anything is written."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--results", default=results, help=f"compare.py's JSON of the {sweep}")
    ap.add_argument("--out", default=out, help="the page")
    args = ap.parse_args(argv)
    if not os.path.exists(args.results):
        ap.error(f"results: {args.results!r} does not exist (run the {sweep} first)")
    with open(args.results, encoding="utf-8") as f:
        loaded = json.load(f)
    if not loaded.get("benchmarks"):
        ap.error(f"results: {args.results!r} has no benchmarks")
    return args, loaded
