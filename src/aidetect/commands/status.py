"""``aidetect status``: the live workers by host with their throughput, the queue, the
images by status, and where the broker, the store and the blobs are. Reads the store
(heartbeats every 2 s, each prediction's ``worker``) and the broker's queue length."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

LIVE_S = 10.0  # a heartbeat at most this old is a live worker


def gather(window_s: float) -> dict[str, Any]:
    """Everything ``status`` shows, as JSON-friendly values."""
    from aidetect.blobs import describe as blobs_describe
    from aidetect.config import get_settings, redact_url
    from aidetect.store.migrate import init_db
    from aidetect.store.status import status_counts, throughput_by_host, worker_beats
    from aidetect.worker import broker

    settings = get_settings()
    init_db()
    hosts: dict[str, dict[str, Any]] = {}
    for b in worker_beats():
        if b["age_s"] is None or b["age_s"] > LIVE_S:
            continue
        h = hosts.setdefault(b["host"] or "?", {"host": b["host"] or "?", "workers": [], "processes": 0,
                                                "last_beat_s": b["age_s"]})
        h["workers"].append(b["name"])
        h["processes"] += int(b["concurrency"] or 0)
        h["last_beat_s"] = min(h["last_beat_s"], b["age_s"])
    for host, tp in throughput_by_host(window_s).items():
        h = hosts.setdefault(host, {"host": host, "workers": [], "processes": 0, "last_beat_s": None})
        h["scored_window"] = int(tp["window"])
        h["images_per_s"] = round(tp["window"] / window_s, 3)
        h["scored_total"] = int(tp["total"])
    for h in hosts.values():
        h.setdefault("scored_window", 0)
        h.setdefault("images_per_s", 0.0)
        h.setdefault("scored_total", 0)
        h["live"] = bool(h["workers"])
    return {
        "database": redact_url(settings.database_url),
        "broker": broker.describe(settings),
        "queue": broker.queue_depth(settings),
        "blobs": blobs_describe(settings),
        "images": status_counts(),
        "window_s": window_s,
        "hosts": sorted(hosts.values(), key=lambda h: (not h["live"], h["host"])),
    }


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@click.option("--window", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Throughput over the last SECONDS.")
def status(as_json: bool, window: float) -> None:
    """Live workers by host with their throughput, the queue, images by status."""
    info = gather(window)
    if as_json:
        sys.stdout.write(json.dumps(info) + "\n")
        return
    queue = "unknown" if info["queue"] is None else f"{info['queue']} batches waiting"
    images = ", ".join(f"{k} {v}" for k, v in sorted(info["images"].items())) or "none yet"
    live = [h for h in info["hosts"] if h["live"]]
    click.echo(f"  database  {info['database']}")
    click.echo(f"  broker    {info['broker']} ({queue})")
    click.echo(f"  blobs     {info['blobs']}")
    click.echo(f"  images    {images}")
    n_workers = sum(len(h["workers"]) for h in live)
    click.echo(f"  workers   {n_workers} live on {len(live)} host{'s' if len(live) != 1 else ''}")
    if not info["hosts"]:
        return
    w = max(4, *(len(h["host"]) for h in info["hosts"]))
    click.echo(f"  {'host':<{w}}  workers  processes  last beat  scored {window:.0f} s  images/s  scored in all")
    for h in info["hosts"]:
        beat = f"{h['last_beat_s']:.1f} s ago" if h["live"] else "gone"
        click.echo(
            f"  {h['host']:<{w}}  {len(h['workers']):>7}  {h['processes']:>9}  {beat:>9}  "
            f"{h['scored_window']:>{9 + len(f'{window:.0f}')}}  {h['images_per_s']:>8.2f}  {h['scored_total']:>13}"
        )
