"""``aidetect gui``: open the desktop dashboard."""

from __future__ import annotations

import os
from pathlib import Path

import click

from aidetect.errors import AidetectError


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--theme", default="bootstrap-light", show_default=True, help="ttkbootstrap theme name.")
@click.option(
    "--page-size",
    default=100,
    show_default=True,
    type=click.IntRange(10, 2000),
    help="Rows per table page.",
)
def gui(paths: tuple[Path, ...], theme: str, page_size: int) -> None:
    """Open the desktop dashboard: upload images (files or folders given here are uploaded at
    start), see verdicts with Grad-CAM heatmaps, browse, filter and export stored results."""
    if os.name != "nt" and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        raise AidetectError("no display: set DISPLAY (or run under xvfb-run) to open the dashboard")
    from aidetect.gui import open_dashboard

    app = open_dashboard(theme=theme, page_size=page_size)
    if paths:
        app.root.after(300, lambda: app.upload_paths(list(paths)))
    app.run()
