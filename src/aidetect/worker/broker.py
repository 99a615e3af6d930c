"""The broker, seen from the rest of the pipeline: which one ``settings.broker_url`` names
(embedded or a server), how it is shown (credentials never), whether it answers, how many
batches wait on it, and sending batches to the workers.

The embedded broker is ``filesystem://<dir>`` (kombu's filesystem transport, no process to
run; the default under ``$AIDETECT_HOME/broker``); anything else is a Celery broker URL
(``redis://``, ``rediss://``, ``amqp://``, ``sqs://``, ...). Celery and kombu are imported
only when a message is sent or the broker is checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from aidetect.config import Settings, get_settings, redact_url
from aidetect.errors import AidetectError

QUEUE = "aidetect"
TASK_NAME = "aidetect.score_batch"


class BrokerUnavailable(AidetectError):
    """The configured broker cannot be reached."""


def is_embedded(settings: Settings) -> bool:
    """Whether the broker is the embedded filesystem one (``filesystem://``)."""
    return settings.broker_url.startswith("filesystem:")


def embedded_dirs(settings: Settings) -> dict[str, Path]:
    """Folders of the embedded (filesystem) broker for ``settings.broker_url``."""
    raw = settings.broker_url.split("://", 1)[1] if "://" in settings.broker_url else ""
    base = Path(raw).expanduser() if raw.strip("/") else settings.home / "broker"
    return {"queue": base / "queue", "processed": base / "processed", "control": base / "control"}


def describe(settings: Settings) -> str:
    """The broker as a person reads it: "embedded (filesystem, no server)" or its URL
    without credentials."""
    return "embedded (filesystem, no server)" if is_embedded(settings) else redact_url(settings.broker_url)


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def check(settings: Settings | None = None, timeout_s: float = 3.0) -> None:
    """Raise :class:`BrokerUnavailable` (one line) when the broker cannot be reached."""
    settings = settings or get_settings()
    from aidetect.worker.app import client_app

    app = client_app(settings)
    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 - any transport error means "down"
        raise BrokerUnavailable(
            f"broker not reachable at {describe(settings)} ({_first_line(exc)}); "
            "start it, or unset AIDETECT_BROKER_URL to use the embedded broker"
        ) from None


def batches(ids: Sequence[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(ids), size):
        yield [int(x) for x in ids[i : i + size]]


def enqueue(ids: Sequence[int], batch_size: int | None = None, force: bool = False) -> int:
    """Send ``ids`` to the workers in batches (task ``aidetect.score_batch`` by name).
    Returns the number of tasks sent. Raises :class:`BrokerUnavailable` if the broker is down."""
    if not ids:
        return 0
    settings = get_settings()
    size = max(1, batch_size or settings.task_batch_size)
    from aidetect.worker.app import client_app

    app = client_app(settings)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            for batch in batches(list(ids), size):
                app.send_task(
                    TASK_NAME, args=[batch], kwargs={"force": force}, queue=QUEUE, producer=producer,
                    retry=True, retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5},
                )
                sent += 1
    except AidetectError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise BrokerUnavailable(
            f"could not queue work on the broker at {describe(settings)} after {sent} tasks ({_first_line(exc)})"
        ) from None
    return sent


def queue_depth(settings: Settings | None = None) -> int | None:
    """Messages waiting on the broker (batches, not images); None if it cannot be read
    (a broker other than the embedded one or Redis, or one that does not answer)."""
    settings = settings or get_settings()
    if is_embedded(settings):
        try:
            return sum(1 for n in os.listdir(embedded_dirs(settings)["queue"]) if n.endswith(f".{QUEUE}.msg"))
        except OSError:
            return 0
    if settings.broker_url.startswith(("redis://", "rediss://")):
        try:
            import redis

            client = redis.Redis.from_url(settings.broker_url, socket_timeout=1, socket_connect_timeout=1)
            return int(client.llen(QUEUE))
        except Exception:  # noqa: BLE001
            return None
    return None
