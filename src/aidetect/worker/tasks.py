"""The Celery task and worker signals.

- ``worker_process_init`` (each pool child, after fork): forget inherited DB connections,
  ``torch.set_num_threads(1)``, load the active model once.
- ``worker_ready`` (main process): a heartbeat thread writes ``worker_beats`` every 2 s (the
  broker-independent answer to "is a worker alive?") and prunes the embedded broker's
  processed files.
- ``aidetect.score_batch(image_ids, force=False)``: thin; the work is in
  :mod:`aidetect.worker.scoring` and is idempotent, so a redelivered task is harmless.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import task_failure, worker_process_init, worker_ready, worker_shutdown

from aidetect.config import get_settings, redact_url
from aidetect.worker.app import HARD_TIME_LIMIT_S, SOFT_TIME_LIMIT_S
from aidetect.worker.broker import TASK_NAME, embedded_dirs, is_embedded

log = logging.getLogger(__name__)
HEARTBEAT_S = 2.0
READY_WAIT_S = 120.0

_scorer = None


def _get_scorer():  # noqa: ANN202
    global _scorer
    if _scorer is None:
        from aidetect.worker.scoring import BatchScorer

        _scorer = BatchScorer()
    return _scorer


@worker_process_init.connect
def _init_child(**_kwargs: object) -> None:
    from aidetect.store.engine import reset_engines

    reset_engines()
    import torch

    torch.set_num_threads(1)
    try:
        _get_scorer().ensure_model()
    except Exception as exc:  # noqa: BLE001 - retried on the first task, which records it
        log.error("could not load the model at start-up: %s", exc)
    try:  # tell the main process a child can score (its heartbeat starts then)
        path = _ready_file(os.getppid())
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass


def _ready_file(main_pid: int):  # noqa: ANN202
    return get_settings().home / "run" / f"worker-{main_pid}.ready"


@shared_task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
def score_batch(image_ids: list[int], force: bool = False) -> dict[str, int]:
    from aidetect.store.writes import mark_failed

    try:
        report = _get_scorer().score(image_ids, force=force)
    except SoftTimeLimitExceeded:
        mark_failed(
            image_ids,
            f"scoring took longer than the {SOFT_TIME_LIMIT_S} s time limit",
            only_status=("processing",),
        )
        raise
    except Exception as exc:
        from aidetect.errors import AidetectError

        if isinstance(exc, AidetectError):  # e.g. the model cannot be loaded
            mark_failed(image_ids, str(exc), only_status=("queued", "processing"))
            return {"done": 0, "failed": len(image_ids), "skipped": 0}
        raise
    log.info(
        "batch of %d: %d done, %d failed, %d skipped, model %s, %.2fs (%s)",
        len(image_ids), report.done, report.failed, report.skipped, report.model_version, report.seconds,
        " ".join(f"{k} {v:.3f}" for k, v in report.phases.items()),
    )
    return {"done": report.done, "failed": report.failed, "skipped": report.skipped}


@task_failure.connect
def _on_task_failure(sender=None, exception=None, args=None, kwargs=None, **_kw: object) -> None:  # noqa: ANN001
    """A batch killed by the hard time limit (or any unexpected error): its images that are
    still ``processing`` are recorded as failed with the reason, not left pending."""
    if getattr(sender, "name", None) != TASK_NAME:
        return
    ids = (args[0] if args else None) or (kwargs or {}).get("image_ids") or []
    try:
        from aidetect.store.writes import mark_failed

        reason = (
            f"scoring was stopped by the {HARD_TIME_LIMIT_S} s hard time limit"
            if type(exception).__name__ == "TimeLimitExceeded"
            else f"scoring failed: {type(exception).__name__}: {str(exception).splitlines()[0] if str(exception) else ''}"
        )
        mark_failed([int(i) for i in ids], reason, only_status=("processing",))
    except Exception as exc:  # noqa: BLE001
        log.warning("could not record the failure of a batch: %s", exc)


# -- heartbeat (main process) ---------------------------------------------------------------
_stop = threading.Event()


def _beat_loop(name: str, concurrency: int) -> None:
    from aidetect.store import writes
    from aidetect.store.migrate import init_db

    settings = get_settings()
    init_db()
    processed = embedded_dirs(settings)["processed"] if is_embedded(settings) else None
    # Report alive only once a pool child has loaded the model (or after READY_WAIT_S).
    ready = _ready_file(os.getpid())
    deadline = time.monotonic() + READY_WAIT_S
    while not ready.exists() and time.monotonic() < deadline and not _stop.is_set():
        _stop.wait(0.2)
    while not _stop.is_set():
        try:
            writes.beat(name, os.getpid(), concurrency, redact_url(settings.broker_url), socket.gethostname())
        except Exception as exc:  # noqa: BLE001 - a locked/unreachable DB must not kill the worker
            log.warning("heartbeat not written: %s", exc)
        if processed is not None:
            cutoff = time.time() - 60
            for f in processed.glob("*.msg"):
                try:
                    if f.stat().st_mtime < cutoff:
                        f.unlink()
                except OSError:
                    pass
        _stop.wait(HEARTBEAT_S)


@worker_ready.connect
def _start_heartbeat(sender=None, **_kwargs: object) -> None:  # noqa: ANN001
    name = getattr(sender, "hostname", None) or f"worker-{os.getpid()}"
    controller = getattr(sender, "controller", None)
    concurrency = int(getattr(controller, "concurrency", 0) or 0)
    pool = getattr(controller, "pool", None)
    if pool is not None and not type(pool).__module__.endswith("prefork"):
        # solo/threads pools have no worker_process_init: the model loads on the first task
        with contextlib.suppress(OSError):
            _ready_file(os.getpid()).parent.mkdir(parents=True, exist_ok=True)
            _ready_file(os.getpid()).touch()
    _stop.clear()
    threading.Thread(target=_beat_loop, args=(name, concurrency), daemon=True, name="aidetect-beat").start()


@worker_shutdown.connect
def _stop_heartbeat(sender=None, **_kwargs: object) -> None:  # noqa: ANN001
    _stop.set()
    with contextlib.suppress(OSError):
        _ready_file(os.getpid()).unlink(missing_ok=True)
    try:
        from aidetect.store.writes import forget_worker

        name = getattr(sender, "hostname", None)
        if name:
            forget_worker(name)
    except Exception:  # noqa: BLE001
        pass
