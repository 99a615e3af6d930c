"""``aidetect scan DIR`` (bulk scoring through the workers) and ``aidetect results``."""

from __future__ import annotations

import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from aidetect.errors import AidetectError

POLL_S = 0.25


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _write_export(rows: list[Any], out: Path) -> None:
    """Write result rows (``aidetect.store.results.ResultRow``) to ``out`` (.csv or .json)."""
    from aidetect.store.results import export

    if out.suffix.lower() not in (".csv", ".json"):
        raise AidetectError(f"{out}: export must end in .csv or .json")
    try:
        export(rows, out)
    except OSError as exc:
        raise AidetectError(f"{out}: cannot write the export ({exc.strerror or exc})") from None


def _summary(console: Console, rows: list[dict[str, Any]], seconds: float, mode: str) -> None:
    status = Counter(r["status"] for r in rows)
    labels = Counter(r["label"] for r in rows if r["status"] == "done")
    uncertain = sum(1 for r in rows if r["status"] == "done" and r["uncertain"])
    done = status.get("done", 0)
    rate = f", {done / seconds:.1f} images/s" if seconds > 0 and done else ""
    console.print(
        f"[bold]{len(rows)}[/] images ({mode}, {seconds:.1f}s{rate}): "
        f"[red]ai {labels.get('ai', 0)}[/], [green]real {labels.get('real', 0)}[/], "
        f"uncertain {uncertain}, failed {status.get('failed', 0)}"
        + (f", still pending {status.get('queued', 0) + status.get('processing', 0)}" if status.get("queued") or status.get("processing") else "")
    )
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        table = Table("failed file", "reason", title=f"{len(failed)} failed", title_justify="left")
        for r in failed[:50]:
            table.add_row(r["path"], r["error"] or "")
        if len(failed) > 50:
            table.add_row(f"... and {len(failed) - 50} more", "(see aidetect results --status failed)")
        console.print(table)


def _wait_for_results(
    console: Console, ids: list[int], batch_size: int, force: bool, stall_timeout: float, quiet: bool
) -> None:
    """Poll the store until every id is done or failed; re-send images whose tasks seem lost
    (no progress for ``stall_timeout`` s while work is pending and a worker is alive)."""
    from aidetect.store.status import live_workers, pending_ids
    from aidetect.worker.broker import enqueue

    total = len(ids)
    t0 = time.monotonic()
    last_change = time.monotonic()
    last_finished = -1
    warned_no_worker = False
    with _progress(console) as bar:
        task = bar.add_task("scoring", total=total, rate="", visible=not quiet)
        while True:
            counts = _image_counts(ids)
            finished = counts.get("done", 0) + counts.get("failed", 0)
            elapsed = time.monotonic() - t0
            bar.update(task, completed=finished, rate=f"{finished / elapsed:.1f}/s" if elapsed > 0 else "")
            if finished >= total:
                return
            now = time.monotonic()
            if finished != last_finished:
                last_finished, last_change = finished, now
            elif now - last_change > stall_timeout:
                alive = len(live_workers())
                if alive:
                    pend = pending_ids(ids)
                    n = enqueue(pend, batch_size=batch_size, force=force)
                    console.print(f"no progress for {stall_timeout:.0f}s: re-sent {len(pend)} pending images ({n} tasks)")
                elif not warned_no_worker:
                    console.print("[yellow]no worker is alive: start one with `aidetect worker` (the queued work waits)")
                    warned_no_worker = True
                last_change = now
            time.sleep(POLL_S)


def _image_counts(ids: list[int]) -> dict[str, int]:
    """{status: number of images} over image ``ids``."""
    from aidetect.store.status import image_statuses

    return dict(Counter(image_statuses(ids).values()))


@click.command()
@click.argument("folder", type=click.Path(exists=True, path_type=Path), required=False)
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option("--rescan", is_flag=True, help="Score again images already scored by the active model.")
@click.option("--rescore", is_flag=True,
              help="Re-score stored images whose results come from an older model version "
              "(all of them, or those under FOLDER).")
@click.option("--export", "export", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the results to FILE.csv or FILE.json.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as a JSON array on stdout.")
@click.option("--batch-size", type=int, default=None, help="Images per task (default: settings.task_batch_size).")
@click.option("--inline", is_flag=True, help="Score in this process instead of the workers.")
@click.option("--no-fallback", is_flag=True,
              help="Never score in-process: queue the work and wait for workers even if none is alive.")
@click.option("--worker-wait", type=float, default=3.0, show_default=True,
              help="Seconds to wait for a worker before scoring in-process.")
@click.option("--stall-timeout", type=float, default=60.0, show_default=True,
              help="Re-send pending images after this many seconds without progress.")
def scan(
    folder: Path | None, recursive: bool, rescan: bool, rescore: bool, export: Path | None, as_json: bool, batch_size: int | None,
    inline: bool, no_fallback: bool, worker_wait: float, stall_timeout: float,
) -> None:
    """Score every image in FOLDER through the workers, with a progress bar and a summary.

    Images are registered by content hash: one already scored by the active model is not
    scored again unless --rescan. With no worker alive, scan scores in this process (and
    says so) unless --no-fallback.
    """
    from aidetect.config import get_settings
    from aidetect.ingest import Submission, iter_files, score_inline, submit
    from aidetect.store import read_engine, writes
    from aidetect.store.migrate import init_db
    from aidetect.store.model_versions import active_version
    from aidetect.store.results import rows_for_files, to_json
    from aidetect.store.status import files_of
    from aidetect.worker import broker

    console = Console(stderr=True)
    settings = get_settings()
    settings.ensure_dirs()
    init_db()
    version = active_version()
    size = batch_size or settings.task_batch_size
    t0 = time.monotonic()
    if folder is None and not rescore:
        raise click.UsageError("missing FOLDER (or use --rescore to re-score the store)")
    if not inline:
        broker.check(settings)  # before anything is registered: a broker that is down leaves nothing queued
    bar = _progress(console)
    bar_task: list[Any] = []

    hashing = console.status("finding and hashing files...")

    def routed(reg: writes.Registration, route: str, workers: int) -> None:
        hashing.stop()
        distinct = reg.distinct
        console.print(
            f"{len(reg.ids)} files, {len(distinct)} distinct: {len(reg)} to score with model {version}, "
            f"{len(reg.already_done)} already scored, {len(reg.failed)} failed (unreadable or not an image)"
        )
        if route == "workers":
            console.print(f"queueing {len(reg)} images for {workers or 'no'} worker(s)")
        elif route == "inline":
            if not inline:
                console.print(
                    f"[yellow]no worker alive after {worker_wait:.0f}s: scoring in this process "
                    "(run `aidetect worker` to use workers)"
                )
            bar.start()
            bar_task.append(bar.add_task("scoring in-process", total=len(reg), rate=""))

    t_in = time.monotonic()

    def advance(n: int) -> None:
        bar.advance(bar_task[0], n)
        done = bar.tasks[0].completed
        bar.update(bar_task[0], rate=f"{done / max(1e-6, time.monotonic() - t_in):.1f}/s")

    hashing.start()
    try:
        if rescore:  # images in the store scored by an older model version
            reg = writes.Registration()
            reg.extend(writes.requeue_stale(version, str(folder.absolute()) if folder else None))
            reg.file_ids = files_of(list(reg))
            reg.ids = list(reg)
            sub = Submission(reg, "workers" if not inline else "inline")
            routed(reg, sub.route, 0)
            if inline:
                score_inline(list(reg), batch_size=size, force=rescan, progress=advance)
            else:
                broker.enqueue(list(reg), batch_size=size, force=rescan)
        else:
            files = list(iter_files(folder, recursive=recursive))
            route = "inline" if inline else "workers" if no_fallback else "auto"
            sub = submit(
                files, root=folder if folder.is_dir() else None, rescan=rescan, route=route,
                worker_wait_s=worker_wait, batch_size=size, progress=advance, on_route=routed,
            )
    finally:
        hashing.stop()
        bar.stop()
    reg = sub.registration
    mode = {"inline": "in-process", "known": "nothing to score"}.get(sub.route, f"{sub.workers} worker(s)")
    if sub.route == "workers" and reg:
        if not sub.workers:
            mode = "queued, waiting for workers"
        _wait_for_results(console, list(reg), size, rescan, stall_timeout, quiet=False)
    found = rows_for_files(read_engine(), reg.file_ids)  # every file under its own path
    _summary(console, [r.as_json() for r in found], time.monotonic() - t0, mode)
    if export:
        _write_export(found, export)
        console.print(f"wrote {len(found)} results to {export}")
    if as_json:
        sys.stdout.write(to_json(found) + "\n")


def _parse_when(value: str | None, option: str) -> str | None:
    """Check an ISO date or date-time from the command line (one line when it is not)."""
    if not value:
        return None
    try:
        (date if len(value.strip()) == 10 else datetime).fromisoformat(value.strip())
    except ValueError:
        raise AidetectError(
            f"{option}: bad date {value!r}: use ISO format, e.g. 2026-11-25 or 2026-11-25T10:00"
        ) from None
    return value.strip()


@click.command()
@click.option("--label", type=click.Choice(["ai", "real"]), default=None)
@click.option("--status", type=click.Choice(["queued", "processing", "done", "failed"]), multiple=True)
@click.option("--prob-min", type=float, default=None, help="Lowest prob_ai.")
@click.option("--prob-max", type=float, default=None, help="Highest prob_ai.")
@click.option("--since", default=None, help="Scored/updated at or after (ISO date or date-time, UTC; a date is the whole day).")
@click.option("--until", default=None, help="Scored/updated at or before (ISO date or date-time, UTC; a date is the whole day).")
@click.option("--path", "path_glob", default=None, help="Path glob, e.g. '*/inbox/*.jpg'.")
@click.option("--text", default=None, help="Substring of the path (case-insensitive).")
@click.option("--uncertain/--certain", default=None, help="Only uncertain / only certain verdicts.")
@click.option("--model-version", default=None)
@click.option("--sort", "order_by", type=click.Choice(["id", "time", "path", "status", "label", "prob_ai", "confidence"]), default="id")
@click.option("--desc", is_flag=True, help="Sort descending.")
@click.option("--limit", type=int, default=None, help="At most N rows (table default: 100).")
@click.option("--json", "as_json", is_flag=True, help="JSON array on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout.")
@click.option("--export", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write FILE.csv|.json.")
def results(
    label: str | None, status: tuple[str, ...], prob_min: float | None, prob_max: float | None, since: str | None,
    until: str | None, path_glob: str | None, text: str | None, uncertain: bool | None, model_version: str | None,
    order_by: str, desc: bool, limit: int | None, as_json: bool, as_csv: bool, export: Path | None,
) -> None:
    """Query stored results with filters (one row per file); print a table, JSON or CSV."""
    from aidetect.store import read_engine
    from aidetect.store.migrate import init_db
    from aidetect.store.results import ResultFilter, count, fetch_page, iter_rows, to_csv, to_json

    init_db()
    f = ResultFilter(
        label=label, status=tuple(status) or None, prob_min=prob_min, prob_max=prob_max,
        since=_parse_when(since, "--since"), until=_parse_when(until, "--until"), path_glob=path_glob,
        text=text or "", uncertain=uncertain, model_version=model_version, sort=order_by, descending=desc,
    )
    table_mode = not (as_json or as_csv or export)
    eff_limit = limit if limit is not None else (100 if table_mode else None)
    engine = read_engine()
    if eff_limit is None:
        rows = list(iter_rows(engine, f, view="latest"))
    else:
        rows = fetch_page(engine, f, 0, eff_limit, view="latest") if eff_limit > 0 else []
    total = count(engine, f, view="latest") if table_mode else len(rows)
    if export:
        _write_export(rows, export)
        click.echo(f"wrote {len(rows)} results to {export}", err=True)
    if as_json:
        sys.stdout.write(to_json(rows) + "\n")
    elif as_csv:
        sys.stdout.write(to_csv(rows))
    elif table_mode:
        from aidetect.wording import short_label

        console = Console()
        table = Table("id", "status", "label", "prob_ai", "uncertain", "model", "error/time")
        table.add_column("path", overflow="fold", ratio=1)
        for r in rows:
            table.add_row(
                str(r.file_id), r.status, short_label(r.label, r.prob_ai, r.uncertain) if r.label else "",
                f"{r.prob_ai:.3f}" if r.prob_ai is not None else "",
                (r.uncertain_reason or "yes") if r.uncertain else "", r.model_version or "",
                r.error or (r.time.isoformat() if r.time else "")[:19].replace("T", " "), r.path,
            )
        console.print(table)
        console.print(f"{len(rows)} of {total} matching results")
