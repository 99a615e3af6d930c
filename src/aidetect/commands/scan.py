"""``aidetect scan DIR`` (bulk scoring through the workers) and ``aidetect results``."""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
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
from rich.text import Text

from aidetect.errors import EXIT_SOME_FAILED, AidetectError

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


def _summary(
    console: Console, rows: list[dict[str, Any]], seconds: float, mode: str, queued: Sequence[int] = ()
) -> None:
    """The closing lines of a scan. ``queued``: the image ids this run sent for scoring; the
    rate counts only those that were scored (not what an earlier run had scored already)."""
    status = Counter(r["status"] for r in rows)
    labels = Counter(r["label"] for r in rows if r["status"] == "done")
    uncertain = sum(1 for r in rows if r["status"] == "done" and r["uncertain"])
    sent = set(queued)
    scored = len({r["image_id"] for r in rows if r["status"] == "done" and r["image_id"] in sent})
    rate = f", {scored} scored in this run, {scored / seconds:.1f} images/s" if seconds > 0 and scored else ""
    console.print(
        f"[bold]{len(rows)}[/] images ({mode}, {seconds:.1f}s{rate}): "
        f"[red]ai {labels.get('ai', 0)}[/], [green]real {labels.get('real', 0)}[/], "
        f"uncertain {uncertain}, failed {status.get('failed', 0)}"
        + (f", still pending {status.get('queued', 0) + status.get('processing', 0)}" if status.get("queued") or status.get("processing") else "")
    )
    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        table = Table("failed file", "reason", title=f"{len(failed)} failed", title_justify="left")
        budget = max(24, (console.width - 7) // 2)  # borders and padding of two columns
        for r in failed[:50]:
            table.add_row(Text(elide_path(r["path"], budget)), Text(r["error"] or ""))
        if len(failed) > 50:
            table.add_row(f"... and {len(failed) - 50} more", "(see aidetect results --status failed)")
        console.print(table)


def _wait_for_results(
    console: Console, ids: list[int], batch_size: int, force: bool, stall_timeout: float, quiet: bool
) -> None:
    """Poll the store until every id is done or failed; re-send images whose tasks seem lost
    (no progress for ``stall_timeout`` s while work is pending and a worker is alive)."""
    from aidetect.store.status import live_workers, pending_ids

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
                    from aidetect.ingest import queue_for_workers

                    n = queue_for_workers(pend, batch_size=batch_size, force=force)
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
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Images per task (default: settings.task_batch_size).")
@click.option("--inline", is_flag=True, help="Score in this process instead of the workers.")
@click.option("--no-fallback", is_flag=True,
              help="Never score in-process: queue the work and wait for workers even if none is alive.")
@click.option("--worker-wait", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Seconds to wait for a worker before scoring in-process.")
@click.option("--stall-timeout", type=click.FloatRange(min=0, min_open=True), default=60.0, show_default=True,
              help="Re-send pending images after this many seconds without progress.")
def scan(
    folder: Path | None, recursive: bool, rescan: bool, rescore: bool, export: Path | None, as_json: bool, batch_size: int | None,
    inline: bool, no_fallback: bool, worker_wait: float, stall_timeout: float,
) -> None:
    """Score every image in FOLDER through the workers, with a progress bar and a summary.

    Images are registered by content hash: one already scored by the active model is not
    scored again unless --rescan. With no worker alive, scan scores in this process (and
    says so) unless --no-fallback.

    Exit code 0 when every file was scored (or had been), 1 when some failed (listed with
    their reasons), 2 for a usage, configuration or broker error.
    """
    if folder is None and not rescore:  # before any import: usage errors are instant
        raise click.UsageError("missing FOLDER (or use --rescore to re-score the store)")
    from aidetect.config import get_settings, model_setting_note
    from aidetect.ingest import dispatch, iter_files, submit
    from aidetect.store import read_engine, writes
    from aidetect.store.migrate import init_db
    from aidetect.store.model_versions import active_model, read_card
    from aidetect.store.results import rows_for_files, to_json
    from aidetect.store.status import files_of
    from aidetect.worker import broker

    console = Console(stderr=True)
    settings = get_settings()
    settings.ensure_dirs()
    init_db()
    active = active_model()
    read_card(active.path)  # its card as it is now (edited since it was registered?): one line if broken
    version = active.version
    note = model_setting_note(settings, active.path, version)
    if note:
        console.print(f"warning: {note}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    size = batch_size or settings.task_batch_size
    t0 = time.monotonic()
    if not inline:
        broker.check(settings)  # before anything is registered: a broker that is down leaves nothing queued
    bar = _progress(console)
    bar_task: list[Any] = []

    hashing = console.status("finding and hashing files...")

    def routed(reg: writes.Registration, route: str, workers: int) -> None:
        hashing.stop()
        distinct = reg.distinct
        skipped = f", {len(reg.skipped)} skipped (not images)" if reg.skipped else ""
        console.print(
            f"{len(reg.ids)} files, {len(distinct)} distinct: {len(reg)} to score with model {version}, "
            f"{len(reg.already_done)} already scored, {len(reg.failed)} failed (unreadable, or failed before){skipped}"
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
            sub = dispatch(reg, route="inline" if inline else "workers", force=rescan, batch_size=size,
                           progress=advance, on_route=routed)
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
    _summary(console, [r.as_json() for r in found], time.monotonic() - t0, mode, list(reg))
    if export or as_json:
        from aidetect.blobs.heatmaps import localize

        found = localize(found)  # heatmaps kept in the blob layer: paths on this host
    if export:
        _write_export(found, export)
        console.print(f"wrote {len(found)} results to {export}")
    if as_json:
        sys.stdout.write(to_json(found) + "\n")
    if any(r.status == "failed" for r in found):
        sys.stdout.flush()
        raise click.exceptions.Exit(EXIT_SOME_FAILED)


SORT_KEYS = ("time", "id", "path", "name", "first_seen", "status", "label", "prob_ai", "confidence", "model_version")
_NEWEST_FIRST = ("time", "first_seen")
WIDE = 120  # columns from which the results table shows every column and whole paths
_REASON_SHORT = {"low confidence": "low conf.", "outside training data": "unfamiliar"}


def _elide_middle(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    keep = max(1, width - 1)
    return text[: (keep + 1) // 2] + "…" + (text[len(text) - keep // 2 :] if keep // 2 else "")


def elide_path(path: str, width: int) -> str:
    """``path`` in at most ``width`` characters: the file name whole (its middle elided only
    when the name alone is too long), after as much of the folder as fits, elided in the
    middle and keeping its last part when there is room (``/home/me/pi…/ai/ai_000.jpg``)."""
    if len(path) <= width:
        return path
    folder, sep, name = path.rpartition("/")
    if not sep or len(name) + 3 > width:
        return _elide_middle(name, width)
    room = width - len(name) - 2  # characters of the folder kept, beside "…" and the last "/"
    parent = "/" + folder.rpartition("/")[2] if "/" in folder else ""
    tail = parent if len(parent) <= room // 2 else ""
    return f"{folder[: room - len(tail)]}…{tail}/{name}"


def _when(value: datetime | None, wide: bool) -> str:
    if value is None:
        return ""
    text = value.isoformat().replace("T", " ")
    return text[:19] if wide else text[5:16]  # 2026-12-02 10:00:01 | 12-02 10:00


def _results_table(rows: list[Any], width: int) -> Table:
    """The ``aidetect results`` table for a terminal ``width`` columns wide: every column with
    whole paths from :data:`WIDE` on; below, the file name with its folder shortened, the
    uncertainty reason abbreviated, the model left out (the footer names it) and a failed
    row's reason under its file name."""
    from aidetect.wording import short_label

    wide = width >= WIDE

    def verdict(r: Any) -> str:
        return short_label(r.label, r.prob_ai, r.uncertain, r.decided_by) if r.label else ""

    def reason(r: Any) -> str:
        if not r.uncertain:
            return ""
        why = r.uncertain_reason or "yes"
        return why if wide else _REASON_SHORT.get(why, why)

    if wide:
        table = Table("id", "status", "label", "prob_ai", "uncertain", "model", "error/time")
        table.add_column("path", overflow="fold", ratio=1)
        for r in rows:
            table.add_row(*map(Text, (
                str(r.file_id), r.status, verdict(r), f"{r.prob_ai:.3f}" if r.prob_ai is not None else "",
                reason(r), r.model_version or "", r.error or _when(r.time, True), r.path,
            )))
        return table
    any_uncertain = any(r.uncertain for r in rows)  # the column only when a row needs it
    heads = ["id", "verdict", "p(ai)", *(["uncertain"] if any_uncertain else []), "time"]
    cells = [
        [str(r.file_id), r.status if r.status != "done" else verdict(r) or "done",
         f"{r.prob_ai:.2f}" if r.prob_ai is not None else "", *([reason(r)] if any_uncertain else []),
         _when(r.time, False)]
        for r in rows
    ]

    def room_left() -> int:  # what is left for the file column: borders and padding apart
        used = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(heads)]
        return width - sum(used) - 3 * (len(heads) + 1) - 1

    if room_left() < 24:  # very narrow: the file matters more than the time
        heads.pop()
        cells = [c[:-1] for c in cells]
    room = max(16, room_left())
    table = Table(*heads[:2])
    table.add_column(heads[2], justify="right")
    for h in heads[3:]:
        table.add_column(h)
    table.add_column("file", overflow="fold")
    for r, c in zip(rows, cells, strict=True):
        name = elide_path(r.path, room) + (f"\n{r.error}" if r.error else "")  # the reason under its file
        table.add_row(*map(Text, c), Text(name))
    return table


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
@click.option("--decided-by", type=click.Choice(["model", "provenance"]), default=None,
              help="Only verdicts the pixel model decided, or the file's provenance (C2PA, XMP, ...).")
@click.option("--sort", "order_by", type=click.Choice(SORT_KEYS), default="time", show_default=True,
              help="Sort key (time: when scored, or the last status change).")
@click.option("--desc/--asc", "desc", default=None,
              help="Descending / ascending (default: newest first for time and first_seen, else ascending).")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N rows (table default: 100).")
@click.option("--json", "as_json", is_flag=True, help="JSON array on stdout.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV on stdout.")
@click.option("--export", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write FILE.csv|.json.")
def results(
    label: str | None, status: tuple[str, ...], prob_min: float | None, prob_max: float | None, since: str | None,
    until: str | None, path_glob: str | None, text: str | None, uncertain: bool | None, model_version: str | None,
    decided_by: str | None,
    order_by: str, desc: bool | None, limit: int | None, as_json: bool, as_csv: bool, export: Path | None,
) -> None:
    """Query stored results with filters (one row per file), newest first; print a table,
    JSON or CSV. The table fits the terminal (COLUMNS): at narrow widths it shows each file's
    name with its folder shortened and leaves the model out; --json/--csv keep full paths."""
    from aidetect.store import read_engine
    from aidetect.store.migrate import init_db
    from aidetect.store.results import ResultFilter, count, fetch_page, iter_rows, to_csv, to_json

    f = ResultFilter(
        label=label, status=tuple(status) or None, prob_min=prob_min, prob_max=prob_max,
        since=_parse_when(since, "--since"), until=_parse_when(until, "--until"), path_glob=path_glob,
        text=text or "", uncertain=uncertain, model_version=model_version, decided_by=decided_by, sort=order_by,
        descending=desc if desc is not None else order_by in _NEWEST_FIRST,
    )
    init_db()
    table_mode = not (as_json or as_csv or export)
    eff_limit = limit if limit is not None else (100 if table_mode else None)
    engine = read_engine()
    if eff_limit is None:
        rows = list(iter_rows(engine, f, view="latest"))
    else:
        rows = fetch_page(engine, f, 0, eff_limit, view="latest") if eff_limit > 0 else []
    total = count(engine, f, view="latest") if table_mode else len(rows)
    if not table_mode:
        from aidetect.blobs.heatmaps import localize

        rows = localize(rows)  # heatmaps kept in the blob layer: paths on this host
    if export:
        _write_export(rows, export)
        click.echo(f"wrote {len(rows)} results to {export}", err=True)
    if as_json:
        sys.stdout.write(to_json(rows) + "\n")
    elif as_csv:
        sys.stdout.write(to_csv(rows))
    elif table_mode:
        console = Console()
        console.print(_results_table(rows, console.width))
        if order_by in _NEWEST_FIRST:
            order = "newest first" if f.descending else "oldest first"
        else:
            order = f"by {order_by}" + (", descending" if f.descending else "")
        models = {r.model_version for r in rows if r.model_version}
        shown_model = f"; model {models.pop()}" if len(models) == 1 and console.width < WIDE else ""
        console.print(f"{len(rows)} of {total} matching results, {order}{shown_model}", highlight=False,
                      soft_wrap=True)
