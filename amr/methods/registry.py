"""Methods by name: `make_methods(cfg, model)` builds `cfg.methods` from the hyperparameters in `cfg.method`.

Adding a method: a module with a factory returning a `Method`, an entry in `_FACTORIES`, its
hyperparameters in `configs/base.py`'s `c.method` and their checks in `_CHECKS`.
"""

from __future__ import annotations

from amr.methods.base import Method
from amr.methods.distill import distill
from amr.methods.ema import ema
from amr.methods.ewc import ewc
from amr.methods.gere import gere
from amr.methods.hft import hft
from amr.methods.l2sp import l2sp
from amr.methods.lines import lines
from amr.methods.migu import migu
from amr.methods.slow_learner import slow_learner

_FACTORIES = {
    "l2sp": lambda m, model: l2sp(m.l2sp_lambda),
    "ewc": lambda m, model: ewc(model, m.ewc_lambda, m.ewc_gamma, m.ewc_rows),
    "ema": lambda m, model: ema(m.ema_beta, m.ema_adaptive),
    "lines": lambda m, model: lines(m.lines_alpha, m.lines_beta),
    "hft": lambda m, model: hft(m.hft_seed),
    "slow_learner": lambda m, model: slow_learner(m.slow_lr_ratio),
    "distill": lambda m, model: distill(model, m.distill_temperature, m.distill_lambda),
    "gere": lambda m, model: gere(model, m.gere_lambda, m.gere_rows, m.gere_batch),
    "migu": lambda m, model: migu(m.migu_fraction),
}
METHODS = tuple(_FACTORIES)


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# key in c.method -> (check, what it must be)
_CHECKS = {
    "l2sp_lambda": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "ewc_lambda": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "ewc_gamma": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "ewc_rows": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "ema_beta": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "ema_adaptive": (lambda v: isinstance(v, bool), "True or False"),
    "lines_alpha": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "lines_beta": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "hft_seed": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32,
        "an integer in [0, 2**32)",
    ),
    "slow_lr_ratio": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "distill_temperature": (lambda v: _number(v) and v > 0, "a number > 0"),
    "distill_lambda": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "gere_lambda": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "gere_rows": (lambda v: _count(v) and v >= 1, "an integer >= 1"),
    "gere_batch": (lambda v: _count(v) and v >= 1, "an integer >= 1"),
    "migu_fraction": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
}


def configured(cfg) -> tuple[str, ...]:
    """`cfg.methods` (() when the config predates the key)."""
    return tuple(cfg.get("methods", ()))


def check_config(cfg) -> None:
    """ValueError naming the key: an unknown or repeated method name, a missing or bad hyperparameter."""
    names = configured(cfg)
    for name in names:
        if name not in _FACTORIES:
            raise ValueError(f"methods: unknown method {name!r}; expected some of {METHODS}")
    if len(set(names)) != len(names):
        raise ValueError(f"methods: duplicates in {names}")
    if not names:
        return
    hp = cfg.get("method")
    for key, (ok, what) in _CHECKS.items():
        if hp is None or key not in hp:
            raise ValueError(f"method.{key}: missing from the config")
        if not ok(hp[key]):
            raise ValueError(f"method.{key}: must be {what}, got {hp[key]!r}")


def make_methods(cfg, model) -> tuple[Method, ...]:
    """The configured methods, in the configured order (() without any)."""
    check_config(cfg)
    methods = tuple(_FACTORIES[name](cfg.method, model) for name in configured(cfg))
    changing_eval = [m.name for m in methods if m.eval_params is not None]
    if len(changing_eval) > 1:
        raise ValueError(f"methods: {changing_eval} each choose the evaluation parameters; keep at most one")
    return methods
