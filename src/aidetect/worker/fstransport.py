"""kombu's filesystem transport, driven by Celery's event loop.

Celery runs a non-asynchronous transport (such as ``filesystem://``) with its fallback
blocking loop and billiard's threaded pool, whose pool children share one job-queue lock:
a child SIGKILLed while it holds that lock (an idle child waits for work holding it)
deadlocks the whole worker (measured here; see also celery#2011). Declaring the transport
asynchronous and polling it from the event loop makes Celery use its AsynPool (one pipe
per child, no shared lock), which survives a killed child exactly as it does on Redis.
Messages, folders and options are those of ``kombu.transport.filesystem``.
"""

from __future__ import annotations

from kombu.transport import TRANSPORT_ALIASES, filesystem

ALIAS = "aidetectfs"


class Transport(filesystem.Transport):
    implements = filesystem.Transport.implements.extend(asynchronous=True)

    def register_with_event_loop(self, connection, loop):  # noqa: ANN001, ANN201
        def poll() -> None:
            for _ in range(64):  # QoS (prefetch) still limits what is taken
                try:
                    self.drain_events(connection, timeout=0)
                except TimeoutError:  # socket.timeout
                    return

        loop.call_repeatedly(self.polling_interval or 0.1, poll)


def register() -> None:
    TRANSPORT_ALIASES.setdefault(ALIAS, f"{__name__}:Transport")
