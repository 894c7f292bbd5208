"""Sub-population tasks: each task mixes sources (the fixed text corpus's domains) in equal parts.

The paper's premise is that a model forgets "data sub-populations observed too long ago".
`data.domains` names the tasks in order, each the "+"-joined sources it mixes, e.g. the
default ("headers+docs", "stdlib+docs", "licenses+docs", "licenses"): `headers` vanishes
after the first task and `stdlib` after the second, `docs` recurs up to the third and
`licenses` up to the last. A source is a domain of `amr.data.python_text`
(the shipped snapshot by default, `data.text_source`).

Splits, per source and from the source's own seeded generator (`splits.domain_rng`):
its documents are permuted; the first ones hold `test_per_source` held-out windows, the
next ones the train windows of every task the source appears in (disjoint windows per
appearance: a recurring source brings new rows each time). No held-out window shares a
document with a train window, and train windows equal to any held-out window are dropped. Each task's train set holds `max_train_per_task // k` windows
of each of its k sources (seeded shuffle); its test set, the task's mixture, holds the first
`test_per_task // k` held-out windows of each source; `Task.sources` holds every one of its
sources' held-out windows (the same array wherever the source recurs), and `Task.train_groups` each
train window's source (its index in the task spec).
"""

from __future__ import annotations

import numpy as np

from amr.data import python_text, splits
from amr.data.tasks import Task

SEPARATOR = "+"


def parse_task(spec) -> tuple[str, ...]:
    """The sources of one task spec ("docs+stdlib"); ValueError naming `data.domains` otherwise."""
    parts = tuple(spec.split(SEPARATOR)) if isinstance(spec, str) else ()
    if not parts or any(p not in python_text.DOMAINS for p in parts) or len(set(parts)) != len(parts):
        raise ValueError(
            f"data.domains: mixture task {spec!r} must be distinct sources of {python_text.DOMAINS} "
            f"joined by {SEPARATOR!r} (e.g. 'docs+stdlib')."
        )
    return parts


def source_schedule(domains) -> dict[str, list[int]]:
    """source -> the indices of the tasks it appears in (in order of first appearance)."""
    out: dict[str, list[int]] = {}
    for t, spec in enumerate(domains):
        for s in parse_task(spec):
            out.setdefault(s, []).append(t)
    return out


def _check_sizes(cfg: dict, domains) -> None:
    for spec in domains:
        k = len(parse_task(spec))
        if cfg["max_train_per_task"] < k:
            raise ValueError(
                f"data.max_train_per_task: mixture task {spec!r} needs at least one train window per source "
                f"({k}), got {cfg['max_train_per_task']} (0 = all is not supported for mixtures)."
            )
        if not k <= cfg["test_per_task"] <= k * cfg["test_per_source"]:
            raise ValueError(
                f"data.test_per_task: mixture task {spec!r} takes test_per_task // {k} of each source's "
                f"{cfg['test_per_source']} held-out windows (data.test_per_source); need {k} <= "
                f"test_per_task <= {k * cfg['test_per_source']}, got {cfg['test_per_task']}."
            )


def mix(parts: list[np.ndarray], rng: np.random.Generator, held_out: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, groups): the sources' train windows `parts` shuffled together, without any window equal to a
    held-out one, and int32 each window's source (its index in `parts`)."""
    groups = np.repeat(np.arange(len(parts), dtype=np.int32), [len(p) for p in parts])
    order = splits.shuffle_cap(np.arange(len(groups)), 0, rng)  # the same draw as shuffling the rows themselves
    train, groups = np.concatenate(parts)[order], groups[order]
    keep = splits.unshared_rows(train, held_out)
    return train[keep], groups[keep]


def mixture_tasks(cfg: dict) -> list[Task]:
    domains = cfg["domains"]
    schedule = source_schedule(domains)  # every spec is checked before any data is read
    _check_sizes(cfg, domains)
    seq_len, source = cfg["seq_len"], cfg.get("text_source", "snapshot")
    per_task = {spec: cfg["max_train_per_task"] // len(parse_task(spec)) for spec in domains}
    train_parts: dict[tuple[str, int], np.ndarray] = {}
    held_out: dict[str, np.ndarray] = {}
    for name, appearances in schedule.items():
        readers = python_text.snapshot_readers(name) if source == "snapshot" else python_text.domain_readers(name)
        counts = [per_task[domains[t]] for t in appearances]
        train, test = splits.split_documents(
            "mixture/" + name, readers, seq_len, cfg["test_per_source"], sum(counts), cfg["seed"]
        )
        if len(train) < sum(counts):
            raise ValueError(
                f"data.max_train_per_task: source {name!r} holds {len(train)} train windows, fewer than the "
                f"{sum(counts)} its {len(appearances)} task(s) need ({counts}); lower data.max_train_per_task."
            )
        held_out[name] = test
        for t, lo, n in zip(appearances, np.cumsum([0] + counts[:-1]), counts):
            train_parts[(name, t)] = train[lo : lo + n]
    all_held = np.concatenate(list(held_out.values()))
    tasks = []
    for t, spec in enumerate(domains):
        names = parse_task(spec)
        rng = splits.domain_rng(cfg["seed"], "mixture-task", spec)
        train, groups = mix([train_parts[(s, t)] for s in names], rng, all_held)
        n_test = cfg["test_per_task"] // len(names)
        test = np.concatenate([held_out[s][:n_test] for s in names])
        tasks.append(Task(spec, train, test, {s: held_out[s] for s in names}, train_groups=groups))
    return tasks
