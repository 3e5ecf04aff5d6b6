"""The docstring examples run with the suite: every module holding a `>>>` example is in pytest's testpaths
(pyproject.toml), where `--doctest-modules` collects it."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_module_with_examples_is_collected():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "--doctest-modules" in options["addopts"].split()
    with_examples = {str(p.relative_to(ROOT)) for pkg in ("uvssm", "degrade", "models", "benchmarks")
                     for p in (ROOT / pkg).rglob("*.py") if ">>> " in p.read_text()}
    assert with_examples and with_examples <= set(options["testpaths"])
