"""metrics.jsonl (one JSON record per line, flushed) and TensorBoard events (tensorboardX)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from typing import Any

import tensorboardX


def _clean(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


class MetricsLog:
    def __init__(self, workdir: str, tensorboard: bool = True):
        os.makedirs(workdir, exist_ok=True)
        self._file = open(os.path.join(workdir, "metrics.jsonl"), "a", encoding="utf-8")
        self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tensorboard")) if tensorboard else None

    def write(self, record: dict[str, Any], scalars: Iterable[str] = ()) -> None:
        """Appends `record`; the keys in `scalars` also go to TensorBoard at record['step']."""
        self._file.write(json.dumps(_clean(record)) + "\n")
        self._file.flush()
        if self._tb is not None and "step" in record:
            prefix = f"{record.get('strategy', 'run')}/seed{record.get('seed', 0)}"
            for key in scalars:
                if record.get(key) is not None:
                    self._tb.add_scalar(f"{prefix}/{key}", record[key], record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
