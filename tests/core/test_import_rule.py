"""The import rule (README, Architecture): only ``worker/`` imports Celery or kombu, only it and
``blobs/`` import redis, only ``blobs/`` imports boto3/botocore,
only ``store/`` imports SQLAlchemy or Alembic, only ``gui/`` imports Tk; the core (``model``,
``explain``, ``inference``) imports none of them; and nothing imports upward: a package
imports only the layers below it (and itself), never a sibling of its own layer.

Read from the source with ``ast`` (every ``import`` statement, also those inside functions),
so a lazy import breaks the rule as much as a top-level one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "aidetect"

# Layers, bottom first. A package may import its own modules and any package of a lower layer.
LAYERS: list[tuple[str, ...]] = [
    ("config", "errors", "jsonutil", "result", "runtime", "wording"),  # base: anyone may use them
    ("model",),
    ("provenance",),
    ("explain",),
    ("inference",),
    ("store", "trainer"),
    ("blobs",),
    ("worker",),
    ("ingest",),
    ("watcher",),
    ("gui",),
    ("commands", "cli", "__main__"),
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}
ONLY_IN = {  # third-party top-level package -> the aidetect packages allowed to import it
    "celery": "worker",
    "kombu": "worker",
    "redis": ("worker", "blobs"),  # the broker; staged image bytes
    "boto3": "blobs",  # AIDETECT_BLOBS=s3://... (the optional extra aidetect[s3])
    "botocore": "blobs",
    "sqlalchemy": "store",
    "alembic": "store",
    "tkinter": "gui",
    "ttkbootstrap": "gui",
    "tkinterdnd2": "gui",
}
CORE = ("model", "provenance", "explain", "inference")


def _allowed(top: str) -> tuple[str, ...]:
    who = ONLY_IN[top]
    return who if isinstance(who, tuple) else (who,)


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise AssertionError(f"{path}:{node.lineno}: relative import (use aidetect.<package>)")
            if node.module:
                out.extend(
                    (node.lineno, f"{node.module}.{a.name}" if node.module == "aidetect" else node.module)
                    for a in node.names
                )
    return out


MODULES = sorted(p for p in SRC.rglob("*.py") if "migrations" not in p.parts or p.name == "env.py")


def test_every_package_has_a_layer() -> None:
    packages = {_package(p) for p in MODULES} - {""}
    assert packages <= set(RANK), sorted(packages - set(RANK))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_import_rule(path: Path) -> None:
    pkg = _package(path)
    broken = []
    for line, name in _imports(path):
        top, _, rest = name.partition(".")
        if top == "aidetect":
            target = rest.split(".")[0]
            is_module = (SRC / target).is_dir() or (SRC / f"{target}.py").is_file()
            if not is_module or target == pkg or pkg == "":  # aidetect.__version__, own package
                continue
            if RANK[target] >= RANK[pkg] and not (RANK[target] == RANK[pkg] == 0):
                broken.append(f"line {line}: {pkg} imports {target} (not a lower layer)")
        elif top in ONLY_IN and pkg not in _allowed(top):
            broken.append(f"line {line}: {pkg} imports {top} (only {'/, '.join(_allowed(top))}/ may)")
        if pkg in CORE and top in ONLY_IN:
            broken.append(f"line {line}: the core imports {top}")
    assert not broken, f"{path.relative_to(SRC)}: " + "; ".join(broken)
