"""Uploading from the dashboard: expand the chosen files and folders to image files, then
hand them to the pipeline's one submit path (``aidetect.ingest.submit``): queued for the
workers when one is alive, else scored in the window's helper process. :func:`run_upload`
runs on the ``score`` lane."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aidetect.errors import AidetectError
from aidetect.gui.inline import InlineScorer
from aidetect.ingest import iter_files

__all__ = ["UploadResult", "expand_paths", "run_upload", "upload_summary"]


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded (recursively) to the image files inside them."""
    out: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        out.extend(iter_files(path, recursive=True, images_only=True) if path.is_dir() else [path])
    return out


@dataclass
class UploadResult:
    file_ids: list[int]  # the store's file row of every uploaded path, in order
    mode: str  # "workers" | "inline" | "known"
    files: int
    counts: dict[str, int] = field(default_factory=dict)  # {status: files}, read afterwards


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def upload_summary(res: UploadResult) -> str:
    """The activity line after an upload, from the statuses its files have now (``counts``):
    how many were scored and how many failed, not just how many were sent."""
    counts = res.counts
    total = sum(counts.values()) or res.files
    done, failed = counts.get("done", 0), counts.get("failed", 0)
    waiting = total - done - failed
    if res.mode == "workers":
        text = f"Sent {_images(total)} to the workers; results appear as they finish"
        if done or failed:
            text += f" ({done} done, {failed} failed so far)"
        return text
    if res.mode == "known":
        text = f"{_images(total)} already in the store"
        return text + (f"; {failed} of them failed (see the table)" if failed else "")
    if not counts or done == total:
        return f"Scored {_images(total)} in this window (no worker running)"
    bits = [f"{failed} failed"] if failed else []
    if waiting:
        bits.append(f"{waiting} not scored")
    return f"Scored {done} of {_images(total)}; {', '.join(bits)} (see the table)"


def run_upload(
    paths: Sequence[Path], progress: Callable[[int, int], None], scorer: InlineScorer
) -> UploadResult:
    """Runs on the score lane: submit the files (same pipeline as the inbox); the workers
    score them if any is alive, else ``scorer`` (the same ``score_inline`` code, in the
    dashboard's helper process)."""
    from aidetect.ingest import submit

    files = [str(p.resolve()) for p in paths]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise AidetectError(
            f"not a file: {missing[0]}"
            + (f" (+{len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    total = 0
    done = 0

    def routed(reg: list[int], route: str, _workers: int) -> None:
        nonlocal total
        total = len(reg)
        if route == "inline":
            progress(0, total)

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    sub = submit(
        files, route="auto", on_route=routed, progress=step,
        scorer=lambda ids, prog: scorer.score(ids, progress=prog),
    )
    file_ids = list(dict.fromkeys(sub.registration.file_ids))
    return UploadResult(file_ids, sub.route, len(files))
