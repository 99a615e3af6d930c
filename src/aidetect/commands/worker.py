"""``aidetect worker``: a Celery worker (prefork) that scores queued images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from aidetect.config import Settings


@click.command()
@click.option("-c", "--concurrency", type=click.IntRange(min=1), default=None,
              help="Pool processes, 1 or more (default: CPU cores).")
@click.option("-P", "--pool", type=click.Choice(["prefork", "solo", "threads"]), default="prefork", show_default=True,
              help="Celery pool.")
@click.option("-n", "--name", default=None, help="Worker node name (default: aidetect-<pid>@<host>).")
@click.option("-l", "--loglevel", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], case_sensitive=False),
              default="INFO", show_default=True)
@click.option("--max-tasks-per-child", type=click.IntRange(min=1), default=None,
              help="Recycle a child after N batches.")
def worker(concurrency: int | None, pool: str, name: str | None, loglevel: str, max_tasks_per_child: int | None) -> None:
    """Start a worker on the configured broker (AIDETECT_BROKER_URL; embedded by default).

    Each pool process loads the active model once, with one torch thread, and switches
    to a newly promoted model between batches. Results go to the database.
    """
    from aidetect.config import get_settings, model_setting_note
    from aidetect.store.migrate import init_db
    from aidetect.store.model_versions import active_model
    from aidetect.worker import broker

    settings = get_settings()
    settings.ensure_dirs()
    init_db()
    row = active_model()  # registers the shipped model on first use (no torch here)
    note = model_setting_note(settings, row.path, row.version)
    if note:
        click.echo(f"aidetect worker: warning: {note}", err=True)
    broker.check(settings)
    blobs = _blobs_ready(settings, row.version, row.path)
    from aidetect.worker.app import QUEUE, app

    conc = concurrency or os.cpu_count() or 1
    argv = [
        "worker",
        "-P", pool,
        "-c", str(conc),
        "-Q", QUEUE,
        "-l", loglevel,
        "-n", name or f"aidetect-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    if max_tasks_per_child:
        argv += ["--max-tasks-per-child", str(max_tasks_per_child)]
    where = broker.describe(settings)
    click.echo(
        f"aidetect worker: {conc} x {pool} on {where}; model {row.version}; "
        f"database {settings.database_url.split('@')[-1]}; "
        + (f"heatmaps {settings.heatmap_dir}" if blobs is None else f"blobs {blobs}"),
        err=True,
    )
    app.worker_main(argv)


def _blobs_ready(settings: Settings, version: str, path: str) -> str | None:
    """With a blob layer: check it answers (one line and exit 2 when not), remove orphaned
    staged bytes, and fetch the active model's files when they are not on this host (once,
    before the pool forks). Returns the layer as a person reads it, None for ``file``."""
    from aidetect.blobs import blob_layer
    from aidetect.blobs.models import local_dir
    from aidetect.blobs.staging import sweep

    layer = blob_layer(settings)
    if layer is None:
        return None
    layer.check()
    sweep(layer)
    folder = local_dir(version, path, layer)
    if folder != Path(path):
        click.echo(f"aidetect worker: model {version} is not at {path} on this host; "
                   f"fetched from the blob layer into {folder}", err=True)
    return layer.describe()
