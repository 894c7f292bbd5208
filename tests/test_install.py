"""Install hygiene: the replay library stays light, the package needs no repository folders,
setup.py installs `amr` only, under a distribution name of its own."""

import ast
import importlib.metadata
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import setuptools

ROOT = pathlib.Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow_datasets", "grain", "orbax", "matplotlib", "skimage", "sklearn", "scipy", "tensorflow")

_PROBE = """
import importlib, json, pkgutil, sys
for name in sys.argv[1].split(","):
    pkg = importlib.import_module(name)
    if sys.argv[2] == "all" and hasattr(pkg, "__path__"):  # every module of a package, not only its __init__
        for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            importlib.import_module(m.name)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules})))
"""


def _top_level_modules(module: str, which: str = "init") -> set[str]:
    """Top-level modules loaded by importing `module` in a fresh interpreter run from this clone."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, module, which],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("which", ["init", "all"])
def test_replay_library_imports_none_of_the_training_stack(which):
    loaded = _top_level_modules("amr.replay", which)
    assert "jax" in loaded or which == "init"
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_check_flags_a_module_that_pulls_in_the_stack():
    """Negative control: the same probe sees grain (and more) behind the experiment runner."""
    loaded = _top_level_modules("amr.runner.experiment")
    assert {"grain", "orbax", "matplotlib"} <= loaded & set(HEAVY)


def _requirement_closure(requirements) -> set[str]:
    """Installed distributions (normalised names) that `requirements` need, transitively, without extras."""
    seen, todo = set(), [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in requirements]
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        todo += [re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in reqs if "extra ==" not in r]
    return seen


def _setup_kwargs() -> dict:
    captured = {}
    code = compile((ROOT / "setup.py").read_text(), str(ROOT / "setup.py"), "exec")
    original = setuptools.setup
    setuptools.setup = lambda **kw: captured.update(kw)
    cwd = os.getcwd()
    try:
        os.chdir(ROOT)
        exec(code, {"__file__": str(ROOT / "setup.py"), "__name__": "__main__"})
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return captured


def test_setup_installs_amr_only_with_the_library_requirements():
    kw = _setup_kwargs()
    assert kw["name"] == "amr-replay"  # `amr` on the public index is an unrelated project
    assert kw["packages"] and all(p == "amr" or p.startswith("amr.") for p in kw["packages"])
    assert "amr.replay" in kw["packages"] and "amr.runner" in kw["packages"]
    names = {re.split(r"[<>=]", r)[0] for r in kw["install_requires"]}
    assert names == {"jax", "flax", "optax", "chex", "numpy"}
    assert set(kw["extras_require"]["train"]) <= set(kw["extras_require"]["test"])
    assert kw["entry_points"]["console_scripts"] == ["amr-train=amr.runner.cli:run"]
    # amr.replay loads no module beyond what its requirements load themselves (jax, for one, uses
    # cloudpickle when it is installed) and what their requirements install
    requirements = _top_level_modules("jax,flax,optax,chex,numpy")
    dists = importlib.metadata.packages_distributions()
    closure = _requirement_closure(kw["install_requires"])

    def uncovered(module):
        extra = _top_level_modules(module, "all") - requirements - set(sys.stdlib_module_names) - {"amr"}
        return {m for m in extra if not {re.sub(r"[-_.]+", "-", d).lower() for d in dists.get(m, [m])} & closure}

    assert not uncovered("amr.replay"), "amr.replay needs modules that install_requires does not bring"
    assert {"grain", "matplotlib"} <= uncovered("amr.runner.experiment")  # negative control


def _imports_of(source: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_the_package_does_not_import_the_repository_folders():
    """configs/ and experiments/ are not installed: nothing in amr/ may import them."""
    offenders = {
        str(p.relative_to(ROOT)): sorted(_imports_of(p.read_text()) & {"configs", "experiments"})
        for p in (ROOT / "amr").rglob("*.py")
    }
    assert not {p: m for p, m in offenders.items() if m}
    assert _imports_of("from configs import benchmarks\nimport experiments.main") == {"configs", "experiments"}
