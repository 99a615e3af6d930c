"""The Celery app. Importing this module does not import torch (the model is loaded in
each pool child by ``worker_process_init``, see :mod:`aidetect.worker.tasks`).

Broker from ``settings.broker_url``: ``redis://...`` (or any Celery broker URL), or the
embedded default ``filesystem://<dir>`` = kombu's filesystem transport with its folders under
``<dir>`` (queue/, processed/, control/), polled every 0.1 s. No result backend: results go
to the database.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from aidetect.config import Settings, get_settings
from aidetect.worker.broker import QUEUE, TASK_NAME, embedded_dirs, is_embedded

SOFT_TIME_LIMIT_S = 60  # a batch of 16 large tiled images takes a few seconds on one core
HARD_TIME_LIMIT_S = 90  # also the safety net when a pool loses track of a job (celery#2011)
VISIBILITY_TIMEOUT_S = HARD_TIME_LIMIT_S + 210  # must exceed the longest task
MAX_TASKS_PER_CHILD = 500
MAX_MEMORY_PER_CHILD_KB = 4_000_000  # a leak guard: a child scoring 512 px batches in fp32 (an AVX2 CPU) passed 2 GB
# A new pool child imports torch and loads the model before it reports "up" (worker_process_init):
# 9 s on a loaded 2-core AVX2 machine. Celery's default (4 s) killed every replacement child before
# it came up, again and again, and the queue stalled (seen in CI once children were recycled).
PROC_ALIVE_TIMEOUT_S = 120.0
EMBEDDED_POLL_S = 0.1


def celery_config(settings: Settings) -> dict[str, Any]:
    conf: dict[str, Any] = {
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": SOFT_TIME_LIMIT_S,
        "task_time_limit": HARD_TIME_LIMIT_S,
        "worker_max_tasks_per_child": MAX_TASKS_PER_CHILD,
        "worker_max_memory_per_child": MAX_MEMORY_PER_CHILD_KB,
        "worker_proc_alive_timeout": PROC_ALIVE_TIMEOUT_S,
        "task_default_queue": QUEUE,
        "task_routes": {TASK_NAME: {"queue": QUEUE}},
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
    }
    if is_embedded(settings):
        dirs = embedded_dirs(settings)
        for d in dirs.values():
            d.mkdir(parents=True, exist_ok=True)
        from aidetect.worker.fstransport import ALIAS, register

        register()
        conf["broker_url"] = f"{ALIAS}://localhost/"  # a host: kombu warns on every connection without one
        conf["broker_transport_options"] = {
            "data_folder_in": str(dirs["queue"]),
            "data_folder_out": str(dirs["queue"]),
            "processed_folder": str(dirs["processed"]),
            "store_processed": True,  # a same-filesystem move: atomic claim of a message
            "control_folder": str(dirs["control"]),
            "polling_interval": EMBEDDED_POLL_S,
        }
        conf["worker_enable_remote_control"] = False  # liveness is in the DB (worker_beats)
    else:
        conf["broker_url"] = settings.broker_url
        conf["broker_transport_options"] = {"visibility_timeout": VISIBILITY_TIMEOUT_S}
    return conf


def make_app(settings: Settings | None = None, include_tasks: bool = True) -> Celery:
    settings = settings or get_settings()
    app = Celery("aidetect", include=["aidetect.worker.tasks"] if include_tasks else [])
    app.conf.update(celery_config(settings))
    return app


_clients: dict[tuple[int, str, str], Celery] = {}


def client_app(settings: Settings | None = None) -> Celery:
    """A producer-side app for ``settings`` (cached per process and broker)."""
    settings = settings or get_settings()
    key = (os.getpid(), settings.broker_url, str(settings.home))
    app = _clients.get(key)
    if app is None:
        app = make_app(settings, include_tasks=False)
        _clients[key] = app
    return app


app = make_app()
