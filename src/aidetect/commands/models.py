"""``aidetect models list|register|promote``: the model versions the workers score with.

Running workers check the active version between batches and switch without a restart
(see ``aidetect.worker``); every prediction records the version that made it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click

from aidetect.config import get_settings
from aidetect.errors import AidetectError


@click.group()
def models() -> None:
    """List, register and promote model versions."""


def _headline_metric(metrics: dict[str, Any]) -> str:
    for key in ("test_accuracy", "accuracy", "validation_accuracy", "val_accuracy"):
        value = metrics.get(key)
        if isinstance(value, int | float):
            return f"{key}={value:.4f}"
    test = metrics.get("test")
    if isinstance(test, dict) and isinstance(test.get("accuracy"), int | float):
        return f"test accuracy={test['accuracy']:.4f}"
    return ""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
def list_cmd(as_json: bool) -> None:
    """Registered model versions; the active one is marked."""
    from aidetect.store.model_versions import active_version, list_versions

    active_version()  # registers the shipped default on a fresh store
    rows = list_versions()
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="model versions")
    for col in ("", "version", "architecture", "metric", "created", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            "*" if r["active"] else "",
            r["version"],
            r["architecture"] or "",
            _headline_metric(r["metrics"]),
            (r["created"] or "")[:19],
            r["path"],
        )
    Console().print(table)


@models.command("register")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--activate", is_flag=True, help="Also make it the active version.")
@click.option(
    "--copy/--no-copy",
    default=True,
    show_default=True,
    help="Copy the directory under $AIDETECT_HOME/models/<version> so every worker "
    "(and container) sharing the data directory can read it.",
)
def register(model_dir: Path, activate: bool, copy: bool) -> None:
    """Register MODEL_DIR (weights + card) as a model version, checking that it loads."""
    from aidetect.model import load_model_dir
    from aidetect.store.model_versions import active_version, publish_model, read_card

    card = read_card(model_dir)
    load_model_dir(model_dir)  # refuse a directory a worker could not load
    target = model_dir
    if copy:
        target = get_settings().home / "models" / _safe(str(card["version"]))
        if target.resolve() != model_dir.resolve():
            if target.exists():
                existing = read_card(target)
                if existing.get("version") != card["version"]:
                    raise AidetectError(f"{target} exists and holds another model")
            else:
                tmp = target.with_name(target.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.copytree(model_dir, tmp)
                tmp.rename(target)
    version = publish_model(target, activate=activate)
    if activate:
        state = "registered and active"
    elif active_version() == version:
        state = "registered; already the active version"
    else:
        state = f"registered, not active (`aidetect models promote {version}` activates it)"
    click.echo(f"{version}: {state} at {target}")


@models.command("promote")
@click.argument("version")
def promote_cmd(version: str) -> None:
    """Make VERSION the active model; running workers switch between batches."""
    from aidetect.store.model_versions import promote

    promote(version)
    click.echo(f"{version}: active (running workers switch before their next batch)")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
