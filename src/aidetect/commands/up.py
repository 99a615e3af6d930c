"""``aidetect up``: the main job. Watch the inbox, run and supervise the workers, and shut
down cleanly.

- Broker: Redis when ``AIDETECT_BROKER_URL`` names one (checked at start), otherwise the
  embedded filesystem transport under ``$AIDETECT_HOME/broker`` (no process to run).
- Workers: one ``aidetect worker`` child process (Celery prefork, ``--workers`` processes),
  restarted if it dies.
- Shutdown (Ctrl-C / SIGTERM): the watcher hands off what is complete, the worker gets a
  warm shutdown (finishes its current batch; unfinished messages stay in the broker, as
  ``acks_late`` is on), and whatever landed in the inbox meanwhile is picked up at the next
  start by the start-up scan.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aidetect.config import get_settings, model_setting_note

if TYPE_CHECKING:
    from aidetect.watcher.pipeline import ResultReporter

log = logging.getLogger("aidetect.up")


def _default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def _pdeathsig() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the worker gets SIGTERM if `up` itself is killed, so no orphan keeps running."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


class WorkerProcess:
    """One ``aidetect worker`` child, restarted with back-off when it dies."""

    def __init__(
        self, concurrency: int, grace_s: float = 60.0, loglevel: str = "WARNING", log_path: Path | None = None
    ) -> None:
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.log_path = log_path  # the worker's output goes here (None: this terminal)
        self.grace_s = grace_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._started = 0.0
        self._next_start = 0.0

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "aidetect.cli",
            "worker",
            "-c",
            str(self.concurrency),
            "-l",
            self.loglevel,
        ]
        out = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,  # Ctrl-C reaches `up` only; `up` stops the worker
            preexec_fn=_pdeathsig if sys.platform.startswith("linux") else None,
        )
        if out is not None:
            out.close()  # the child holds its own descriptor
        self._started = time.monotonic()
        log.info("worker started (pid %d, %d processes)", self.proc.pid, self.concurrency)

    def check(self) -> None:
        """Restart the worker if it exited (back-off when it keeps dying at once)."""
        if self.proc is None or self.proc.poll() is None:
            return
        now = time.monotonic()
        if self._next_start == 0.0:
            code = self.proc.returncode
            quick = now - self._started < 10
            delay = min(30.0, 2.0 ** min(self.restarts, 5)) if quick else 0.5
            where = f" (its log: {self.log_path})" if self.log_path is not None else ""
            click.echo(
                f"aidetect up: worker exited with code {code}{where}; restarting in {delay:.0f} s",
                err=True,
            )
            self._next_start = now + delay
        if now >= self._next_start:
            self._next_start = 0.0
            self.restarts += 1
            self.start()
            click.echo(f"aidetect up: worker restarted (pid {self.pid})", err=True)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            # the Celery main process only: warm shutdown lets its pool finish the batch
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=self.grace_s)
        except subprocess.TimeoutExpired:
            click.echo(
                "aidetect up: worker did not stop in time; killing it (its tasks stay queued)",
                err=True,
            )
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _safe(fn, *args: object) -> object:  # noqa: ANN001
    """Run a housekeeping step; a busy store or a broker hiccup is retried next round."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001
        log.warning("%s failed: %s", getattr(fn, "__name__", fn), exc)
        return None


def _requeue_stranded(older_than_s: float = 0.0) -> int | None:
    """Rows left ``queued``/``processing`` whose message is gone (a worker killed while it
    held them, a broker that lost its data while we were down): enqueue them again. Only
    when the queue is empty, so a backlog is not doubled (a doubled task is harmless: the
    task skips what is already scored). Returns None while the queue is not empty."""
    from aidetect.ingest import queue_for_workers
    from aidetect.store.status import stranded_ids
    from aidetect.worker import broker

    depth = broker.queue_depth()
    if depth is None or depth > 0:  # live messages (or unknown): look again later
        return None
    ids = stranded_ids(older_than_s=older_than_s)
    if ids:
        queue_for_workers(ids)
        click.echo(f"aidetect up: re-queued {len(ids)} images whose batch was lost", err=True)
    return len(ids)


def _requeue_processing() -> int:
    """After our worker died: the images it was scoring (``processing``) lost their message
    (embedded broker) or wait for the visibility timeout (Redis); queue them now."""
    from aidetect.ingest import queue_for_workers
    from aidetect.store.status import stranded_ids

    ids = stranded_ids(status=("processing",))
    if ids:
        queue_for_workers(ids)
        click.echo(f"aidetect up: re-queued {len(ids)} images the dead worker held", err=True)
    return len(ids)


def _report(reporter: ResultReporter) -> None:
    """One line per file that got its result (name, verdict, confidence or reason)."""
    from aidetect.wording import word

    for path in reporter.newly_skipped():
        click.echo(f"  skipped   {Path(path).name}: not an image")
    for r in reporter.poll():
        said = word(r.label, r.prob_ai, r.uncertain, r.uncertain_reason, r.decided_by)
        text = f"{said.headline} · {said.detail}" if said else f"FAILED · {r.error or 'no verdict'}"
        click.echo(f"  {r.status:<9} {r.name}: {text}")
    sys.stdout.flush()


def _blobs_ready(version: str, path: str) -> str | None:
    """With a blob layer: check it answers (one line and exit 2 when not), stage the active
    model's files for worker hosts that lack them, and remove orphaned staged bytes. Returns
    the layer as a person reads it; None for ``AIDETECT_BLOBS=file``."""
    from aidetect.blobs import blob_layer, models, staging

    layer = blob_layer()
    if layer is None:
        return None
    layer.check()
    models.publish(version, path, layer)
    staging.sweep(layer)
    return layer.describe()


def _sweep_blobs() -> int:
    from aidetect.blobs.staging import sweep

    return sweep()


LOST_AFTER_S = 10.0  # a worker whose heartbeat (every 2 s) is this old has died
LOST_FORGET_S = 600.0  # ... and one silent this long was seen before or is long gone


def _lost_workers(seen: set[str]) -> list[str]:
    """Workers (on any host) whose heartbeat stopped without a clean shutdown (a clean one
    removes its row) since the last call; ``seen`` remembers those already reported."""
    from aidetect.store.status import worker_beats

    out = []
    for w in worker_beats():
        age = w["age_s"]
        if age is not None and LOST_AFTER_S <= age < LOST_FORGET_S and w["name"] not in seen:
            seen.add(w["name"])
            out.append(w["name"])
    return out


SWEEP_EVERY_S = 15.0  # how often `up` looks for stranded rows
BLOB_SWEEP_EVERY_S = 60.0  # how often `up` removes orphaned staged bytes
STRANDED_AFTER_S = 120.0  # ... left queued/processing this long with an empty queue


@click.command()
@click.option(
    "--inbox",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to watch (default: AIDETECT_INBOX or $AIDETECT_HOME/inbox).",
)
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes, 1 or more (default: the CPU count, at most 4; --no-workers for none).",
)
@click.option(
    "--no-workers",
    is_flag=True,
    help="Only watch and enqueue; workers run elsewhere (docker-compose `watcher`).",
)
@click.option(
    "--polling/--inotify",
    default=None,
    help="Polling observer (network shares, inotify limits). Default: AIDETECT_WATCH_POLLING.",
)
@click.option(
    "--move-scored",
    is_flag=True,
    help="Move scored files to processed/ and failed/ under the inbox.",
)
@click.option(
    "--heartbeat",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Touch this file every few seconds while healthy (container health checks).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every hand-off; the worker's log on this terminal.")
def up(
    inbox: Path | None,
    workers: int | None,
    no_workers: bool,
    polling: bool | None,
    move_scored: bool,
    heartbeat: Path | None,
    verbose: bool,
) -> None:
    """Run the main job: watch the inbox and score every image that lands in it."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    if inbox is not None:
        os.environ["AIDETECT_INBOX"] = str(inbox.expanduser().resolve())
    settings = get_settings()
    settings.ensure_dirs()

    from aidetect.store.migrate import init_db
    from aidetect.store.model_versions import active_model, read_card
    from aidetect.store.status import known_final_paths
    from aidetect.watcher.pipeline import RegisterAndEnqueue, ResultReporter, ScoredFileMover
    from aidetect.watcher.service import InboxWatcher
    from aidetect.worker import broker

    init_db()
    model = active_model()
    read_card(model.path)  # its card as it is now: one line and exit 2 when broken (a card broken later fails rows)
    note = model_setting_note(settings, model.path, model.version)
    if note:
        click.echo(f"aidetect up: warning: {note}", err=True)
    broker.check(settings)
    blobs = _blobs_ready(model.version, model.path)
    n_workers = 0 if no_workers else (workers or _default_workers())
    use_polling = settings.watch_polling if polling is None else polling

    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    worker_log = None if verbose else settings.home / "logs" / "worker.log"
    worker = (
        WorkerProcess(n_workers, loglevel="INFO" if verbose else "WARNING", log_path=worker_log)
        if n_workers
        else None
    )
    if worker:
        worker.start()
    requeued = _requeue_stranded() or 0
    sink = RegisterAndEnqueue(settings.inbox, track=move_scored)
    reporter = ResultReporter(sink)

    def make_watcher() -> InboxWatcher:
        return InboxWatcher(
            settings.inbox,
            sink,
            polling=use_polling,
            debounce_s=settings.watch_debounce_s,
            skip_output_dirs=True,
            # with --move-scored, scored files still in the inbox must pass through the sink
            known=None if move_scored else known_final_paths,
        )

    watcher = make_watcher()
    watcher.start()
    mover = ScoredFileMover(settings.inbox, sink) if move_scored else None

    where = broker.describe(settings)
    click.echo("aidetect up: the main job is running (Ctrl-C to stop)")
    click.echo(
        f"  inbox     {settings.inbox}   <- drop images here ({'polling' if use_polling else 'inotify'})"
    )
    click.echo(f"  database  {settings.database_url}")
    click.echo(f"  heatmaps  {settings.heatmap_dir}")
    click.echo(f"  broker    {where}")
    if blobs is not None:
        click.echo(f"  blobs     {blobs}   <- workers on other hosts read images and write heatmaps here")
    click.echo(f"  model     {model.version} ({model.path})")
    click.echo(
        f"  workers   {n_workers} process{'es' if n_workers != 1 else ''} (pid {worker.pid})"
        + (f", log {worker_log}" if worker_log else "")
        if worker
        else "  workers   none here (--no-workers)"
    )
    if requeued:
        click.echo(f"  re-queued {requeued} images left queued by an earlier run")
    click.echo("  results   aidetect results   |   aidetect gui", nl=True)
    sys.stdout.flush()

    last_beat = 0.0
    last_sweep = last_blob_sweep = last_lost_check = time.monotonic()
    lost_seen: set[str] = set()
    restarts_seen = 0
    after_crash = False
    try:
        while not stop.wait(0.5):
            now = time.monotonic()
            if worker:
                worker.check()
                if worker.restarts != restarts_seen and worker.running:
                    # the dead worker's batches are lost on the embedded broker (and wait for
                    # the visibility timeout on Redis): queue them again now, and the ones it
                    # had prefetched once the queue has drained
                    restarts_seen = worker.restarts
                    _safe(_requeue_processing)
                    after_crash = True
            if now - last_lost_check >= 2.0:
                last_lost_check = now
                lost = _safe(_lost_workers, lost_seen)
                if lost:
                    # a worker (on any host) stopped beating without saying goodbye: the
                    # batches it held are queued again now, the ones it had taken later
                    click.echo(f"aidetect up: worker {', '.join(sorted(lost))} stopped answering", err=True)
                    _safe(_requeue_processing)
                    after_crash = True
            if blobs is not None and now - last_blob_sweep >= BLOB_SWEEP_EVERY_S:
                last_blob_sweep = now
                _safe(_sweep_blobs)
            if after_crash and now - last_sweep >= 2.0:
                last_sweep = now
                if _safe(_requeue_stranded) is not None:
                    after_crash = False
            elif now - last_sweep >= SWEEP_EVERY_S:
                _safe(_requeue_stranded, STRANDED_AFTER_S)
                last_sweep = now
            if not watcher.alive:
                click.echo("aidetect up: watcher stopped unexpectedly; restarting it", err=True)
                watcher.stop(flush=True)
                watcher = make_watcher()
                watcher.start()
            _safe(_report, reporter)
            if mover is not None:
                try:
                    mover.run_once()
                except Exception as exc:  # the store may be busy; try again next round
                    log.warning("moving scored files failed: %s", exc)
            if heartbeat is not None and now - last_beat >= 5:
                heartbeat.parent.mkdir(parents=True, exist_ok=True)
                heartbeat.touch()
                last_beat = now
    finally:
        click.echo("aidetect up: stopping (queued work stays queued for the next start)")
        watcher.stop(flush=True)
        if worker:
            worker.stop()
        _safe(_report, reporter)
        click.echo(f"aidetect up: stopped. {reporter.summary()}")
