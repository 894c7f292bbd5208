"""What a run was made from: digests of the exact data arrays and the versions of the software.

Every run's json and `results.json` carry

    "data_digests": {task: {"train": sha256, "test": sha256}}   # of the arrays the run trained / evaluated on
    "environment":  {"python", "jax", "jaxlib", "flax", "optax", "numpy", "platform", ...}

and every run's json also carries the code it was made from,

    "code": {"commit": git HEAD sha, "dirty": tracked files differ from HEAD}   # or null outside a git checkout

An array's digest is the sha256 of `"<dtype> <shape>\\n"` followed by its C-order bytes, so equal
digests mean the same values, dtype and shape. A run's *fingerprint* is the sha256 of its
`data_digests` (as sorted JSON). Runs whose fingerprints differ were made on different data and
are never compared: `check_runs` / `check_fingerprints` raise `DataMismatch` naming the
strategies, seeds and digests. Runs written before digests existed are reported as unverified.
`same_code` reports whether the runs of a benchmark came from one clean commit (runs written before
`code` existed are counted as unrecorded, not failed).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "ml_collections", "orbax-checkpoint")


class DataMismatch(ValueError):
    """Runs to be compared were made on different data."""


def array_digest(x) -> str:
    x = np.ascontiguousarray(np.asarray(x))
    h = hashlib.sha256(f"{x.dtype.str} {tuple(x.shape)}\n".encode())
    h.update(x.tobytes())
    return h.hexdigest()


def data_digests(tasks) -> dict[str, dict[str, str]]:
    """{task name: {"train": digest, "test": digest}} of `amr.data.Task`s, in task order."""
    return {str(t.name): {"train": array_digest(t.train), "test": array_digest(t.test)} for t in tasks}


def fingerprint(digests: Mapping | None) -> str | None:
    """One sha256 over a run's `data_digests` (None when the run has none)."""
    if not digests:
        return None
    return hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()


def environment() -> dict[str, Any]:
    """Python, the numeric packages' versions and the platform a run was made on."""
    env: dict[str, Any] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            env[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            env[name] = None
    env["platform"] = platform.platform()
    env["machine"] = platform.machine()
    return env


GIT_TIMEOUT_S = 5.0


def _git(args: Sequence[str], cwd: str) -> str | None:
    """stdout of `git <args>` in `cwd`; None when git is missing, fails or times out."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            # read-only: no index refresh written back (another git process may hold the lock)
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            check=False,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return out.stdout if out.returncode == 0 else None


def _code_version_at(path: str) -> dict[str, Any] | None:
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    root = _git(["rev-parse", "--show-toplevel"], directory)
    # `path` itself must be tracked there (not, say, an untracked virtualenv inside some other checkout)
    if not root or _git(["ls-files", "--error-unmatch", "--", os.path.abspath(path)], directory) is None:
        return None
    root = root.strip()
    commit = _git(["rev-parse", "--verify", "HEAD"], root)
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    if not commit or status is None:
        return None
    return {"commit": commit.strip(), "dirty": bool(status.strip())}


@functools.lru_cache(maxsize=1)
def _package_code_version() -> dict[str, Any] | None:
    return _code_version_at(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the `amr` package


def code_version(path: str | None = None) -> dict[str, Any] | None:
    """{"commit": HEAD sha, "dirty": tracked files differ from HEAD (untracked files ignored)} of the git
    checkout holding `path` (default: the imported `amr` package), or None when `path` is not tracked in a
    git checkout or git is unavailable; never raises. The package's answer is computed once per process
    (the code a process runs is the code it imported); an explicit `path` is looked up every call."""
    try:
        return _package_code_version() if path is None else _code_version_at(str(path))
    except Exception:  # provenance must never stop a run
        return None


def _version_key(code: Mapping) -> tuple[str, bool]:
    return (str(code.get("commit")), bool(code.get("dirty")))


def same_code(per_strategy: Mapping[str, Sequence[Mapping]]) -> dict[str, Any]:
    """Whether runs ({strategy: [run json, ...]}) were made from one clean commit.

    {"ok", "versions": sorted distinct [{"commit", "dirty"}], "runs": how many runs, "unrecorded": how many
    carry no `code`}. Not ok when the recorded runs come from more than one version or any from a dirty tree
    (modified tracked files are not a version anyone can check out again). Runs without `code` (written
    before it was recorded, or outside a git checkout) do not fail the check; they are counted."""
    runs = [r for rs in per_strategy.values() for r in rs]
    recorded = [r["code"] for r in runs if isinstance(r.get("code"), Mapping) and r["code"].get("commit")]
    keys = sorted({_version_key(c) for c in recorded})
    versions = [{"commit": c, "dirty": d} for c, d in keys]
    return {
        "ok": len(versions) <= 1 and not any(v["dirty"] for v in versions),
        "versions": versions,
        "runs": len(runs),
        "unrecorded": len(runs) - len(recorded),
    }


def _differing_tasks(a: Mapping, b: Mapping) -> list[str]:
    names = list(dict.fromkeys([*a, *b]))
    return [
        f"{n} ({part})"
        for n in names
        for part in ("train", "test")
        if (a.get(n) or {}).get(part) != (b.get(n) or {}).get(part)
    ]


def check_fingerprints(fingerprints: Mapping[str, Mapping], where: str = "runs") -> dict[str, Any]:
    """{strategy: {seed: fingerprint or None}} -> a summary; DataMismatch when one seed's runs differ.

    Runs of the same seed are paired in every comparison, so they must share their data; runs
    with no fingerprint (written before digests were recorded) are listed as unverified."""
    by_seed: dict[str, list[tuple[str, str]]] = {}
    unverified = []
    for strategy, per_seed in fingerprints.items():
        for seed, fp in per_seed.items():
            if fp is None:
                unverified.append(f"{strategy} seed {seed}")
            else:
                by_seed.setdefault(str(seed), []).append((str(strategy), str(fp)))
    for seed, runs in sorted(by_seed.items()):
        first_strategy, first = runs[0]
        for strategy, fp in runs[1:]:
            if fp != first:
                raise DataMismatch(
                    f"{where}: refusing to compare {first_strategy} seed {seed} (data fingerprint {first}) with "
                    f"{strategy} seed {seed} (data fingerprint {fp}): they were made on different data; rerun "
                    "them on the same data (e.g. in a fresh workdir)"
                )
    common = sorted({fp for runs in by_seed.values() for _, fp in runs})
    return {"verified": not unverified, "unverified_runs": unverified, "fingerprints": common}


def check_runs(per_strategy: Mapping[str, Sequence[Mapping]], where: str = "runs") -> dict[str, Any]:
    """`check_fingerprints` over finished runs ({strategy: [run json, ...]}), naming the tasks that differ."""
    first_of_seed: dict[int, tuple[str, Mapping]] = {}
    for strategy, runs in per_strategy.items():
        for r in runs:
            digests = r.get("data_digests")
            if not digests:
                continue
            seed = int(r["seed"])
            other_strategy, other = first_of_seed.setdefault(seed, (strategy, digests))
            if fingerprint(digests) != fingerprint(other):
                raise DataMismatch(
                    f"{where}: refusing to compare {other_strategy} seed {seed} with {strategy} seed {seed}: "
                    f"different data in {', '.join(_differing_tasks(other, digests))}; data fingerprints "
                    f"{fingerprint(other)} and {fingerprint(digests)}"
                )
    fps = {s: {int(r["seed"]): fingerprint(r.get("data_digests")) for r in runs} for s, runs in per_strategy.items()}
    return {**check_fingerprints(fps, where), "per_run": fps}


def require_run_data(result: Mapping, digests: Mapping, path: str) -> None:
    """A finished run loaded for reuse must have been made on the data this config gives now."""
    recorded = result.get("data_digests")
    if recorded and fingerprint(recorded) != fingerprint(digests):
        raise DataMismatch(
            f"{path}: this finished run was made on different data ({', '.join(_differing_tasks(recorded, digests))}; "
            f"data fingerprint {fingerprint(recorded)}, now {fingerprint(digests)}); it cannot be combined with "
            "new runs: use a fresh workdir or delete it"
        )
