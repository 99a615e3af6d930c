"""Score a batch of stored images: the one code path used by the Celery task and by
in-process scoring (``aidetect.ingest.score_inline``). Imports no Celery; imports torch
(through :mod:`aidetect.inference`) only when a :class:`BatchScorer` first loads a model.

Steps for a batch of image ids: pick up the active model version (switching models between
batches when it changed), skip images already scored by that version (a redelivered task
does no work twice), mark the rest ``processing``, classify with Grad-CAM, write heatmaps,
upsert one prediction per (image, model version), mark ``done`` or ``failed`` with a reason.
A bad file fails alone; the rest of the batch is scored.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aidetect.blobs import BlobLayer, blob_layer
from aidetect.config import get_settings
from aidetect.errors import ImageLoadError
from aidetect.store import writes
from aidetect.store.model_versions import active_model
from aidetect.store.tables import utcnow

log = logging.getLogger(__name__)


@dataclass
class BatchReport:
    done: int = 0
    failed: int = 0
    skipped: int = 0
    model_version: str = ""
    seconds: float = 0.0
    errors: dict[int, str] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the batch


def _one_line(exc: BaseException | str) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    if isinstance(exc, BaseException):
        msg = msg or type(exc).__name__
    return msg[:500]


class BatchScorer:
    """Holds one Detector for the active model version; reloads when the version changes."""

    def __init__(self) -> None:
        self.detector: Any = None
        self.version: str | None = None
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"

    def ensure_model(self) -> str:
        row = active_model()
        if self.detector is None or self.version != row.version:
            from aidetect.blobs.models import local_dir
            from aidetect.inference import Detector  # torch is imported here, not before

            t0 = time.perf_counter()
            folder = local_dir(row.version, row.path)  # fetched from the blob layer when not on this host
            self.detector = Detector(model_dir=folder)
            self.version = row.version
            log.info("loaded model %s from %s in %.2fs", row.version, folder, time.perf_counter() - t0)
        return row.version

    def _inputs(self, todo: list[tuple[int, str, str | None]], layer: BlobLayer | None) -> list[Any]:
        """What to classify for each claimed image: its path, or, where this host cannot see
        the path, the staged bytes, read for the whole batch at once (an
        :class:`_ErrorVerdict` when those cannot be read)."""
        if layer is None:  # AIDETECT_BLOBS=file: paths, as before the blob layer
            return [path for _i, path, _sha in todo]
        remote = {sha for _i, path, sha in todo if sha and not os.path.lexists(path)}
        staged: dict[str, Any] = {}
        if remote:
            from aidetect.blobs.staging import read_staged_many

            staged = read_staged_many(sorted(remote), layer)
        out: list[Any] = []
        for _image_id, path, sha in todo:
            got = staged.get(sha) if sha else None
            if got is None:
                out.append(path)
            elif isinstance(got, ImageLoadError):
                out.append(_ErrorVerdict(got.reason))
            else:
                out.append(got)
        return out

    @staticmethod
    def _keep_heatmaps(layer: BlobLayer, heatmap_dir: Path, preds: dict[int, dict[str, Any]]) -> None:
        """Put the batch's heatmap files into the blob layer in one go (the predictions then
        record ``blob:`` references); if that fails, image by image, so one bad file costs
        only its own heatmap (the verdict stands without it)."""
        from aidetect.blobs.heatmaps import keep

        paths = [p for pred in preds.values() for p in (pred["cam_path"], pred["overlay_path"])]
        try:
            refs = iter(keep(layer, heatmap_dir, *paths))
            for pred in preds.values():
                pred["cam_path"], pred["overlay_path"] = next(refs), next(refs)
            return
        except Exception as exc:  # noqa: BLE001 - retried one by one below
            log.warning("heatmaps of a batch not kept in one go (%s); keeping them one by one", _one_line(exc))
        for image_id, pred in preds.items():
            try:
                pred["cam_path"], pred["overlay_path"] = keep(layer, heatmap_dir, pred["cam_path"], pred["overlay_path"])
            except Exception as exc:  # noqa: BLE001 - the verdict stands without a heatmap
                pred["heatmap_error"] = f"heatmap not kept in the blob layer ({_one_line(exc)})"
                pred["cam_path"] = pred["overlay_path"] = None
                log.warning("heatmap for image %s not kept: %s", image_id, pred["heatmap_error"])

    def _classify(self, items: list[Any], heatmap_dir: Path) -> list[Any]:
        todo = [i for i, x in enumerate(items) if not isinstance(x, _ErrorVerdict)]
        verdicts = self._classify_all([items[i] for i in todo], heatmap_dir) if todo else []
        out = list(items)
        for i, v in zip(todo, verdicts, strict=True):
            out[i] = v
        return out

    def _classify_all(self, paths: list[Any], heatmap_dir: Path) -> list[Any]:
        try:
            return list(self.detector.classify(paths, explain=True, heatmap_dir=heatmap_dir))
        except Exception as exc:  # one item broke the whole batch: score one by one
            log.warning("batch classify failed (%s); retrying one by one", _one_line(exc))
        out = []
        for p in paths:
            try:
                out.extend(self.detector.classify([p], explain=True, heatmap_dir=heatmap_dir))
            except Exception as exc:  # noqa: BLE001 - recorded as this image's failure
                out.append(_ErrorVerdict(_one_line(exc)))
        return out

    def score(self, image_ids: Sequence[int], force: bool = False) -> BatchReport:
        t0 = time.perf_counter()
        version = self.ensure_model()
        report = BatchReport(model_version=version)
        t_claim = time.perf_counter()
        report.phases["model"] = t_claim - t0
        claim = writes.claim(image_ids, version, force=force)
        report.phases["claim"] = time.perf_counter() - t_claim
        report.skipped = claim.skipped
        todo = claim.todo
        if not todo:
            report.seconds = time.perf_counter() - t0
            return report

        # the heatmap folder is made (again) as files are written; if it cannot be (replaced by
        # a file, removed with its parent, disk full) each verdict is stored with heatmap_error
        settings = get_settings()
        heatmap_dir = settings.heatmap_dir
        layer = blob_layer(settings)  # None for AIDETECT_BLOBS=file: no blob work below
        t_in = time.perf_counter()
        inputs = self._inputs(todo, layer)
        t_inf = time.perf_counter()
        verdicts = self._classify(inputs, heatmap_dir)  # CAM files written here
        inf_s = time.perf_counter() - t_inf
        report.phases.update(inputs=t_inf - t_in, classify=inf_s)
        t_keep = time.perf_counter()
        outcomes: list[writes.ScoreRecord] = []
        to_keep: dict[int, dict[str, Any]] = {}  # image id -> its prediction, heatmaps to keep
        for (image_id, _path, sha), v in zip(todo, verdicts, strict=True):
            img_vals: dict[str, Any] = {}
            for attr in ("width", "height", "format"):
                val = getattr(v, attr, None)
                if val is not None:
                    img_vals[attr] = val
            if getattr(v, "error", None) or getattr(v, "label", None) is None:
                reason = v.error or "no verdict"
                img_vals.update(status="failed", error=reason)
                outcomes.append(writes.ScoreRecord(image_id, img_vals))
                report.failed += 1
                report.errors[image_id] = reason
                continue
            if v.sha256 and sha and v.sha256 != sha:
                reason = "file changed since it was registered (content hash differs)"
                img_vals.update(status="failed", error=reason)
                outcomes.append(writes.ScoreRecord(image_id, img_vals))
                report.failed += 1
                report.errors[image_id] = reason
                continue
            cam_path, overlay_path = getattr(v, "cam_path", None), getattr(v, "overlay_path", None)
            heatmap_error = getattr(v, "heatmap_error", None)
            if not (cam_path and overlay_path) and heatmap_error is None:
                try:
                    cam_p, ov_p = self.detector.save_heatmaps(v, heatmap_dir)
                    cam_path, overlay_path = str(cam_p), str(ov_p)
                except Exception as exc:  # noqa: BLE001 - the verdict stands without a heatmap
                    heatmap_error = f"{heatmap_dir}: heatmap not written ({_one_line(exc)})"
                    log.warning("heatmap for image %s not saved: %s", image_id, heatmap_error)
            timings = {k: round(float(x), 6) for k, x in (getattr(v, "timings", None) or {}).items()}
            timings["batch_s"] = round(inf_s, 4)
            timings["batch_size"] = len(todo)
            pred = {
                "model_version": v.model_version or version,
                "label": v.label,
                "decided_by": v.decided_by,
                "prob_ai": float(v.prob_ai),
                "uncertain": bool(v.uncertain),
                "uncertain_reason": v.uncertain_reason,
                "ood_score": v.ood_score,
                "scored_by": v.scored_by,
                "cam_path": cam_path,
                "overlay_path": overlay_path,
                "heatmap_error": heatmap_error,
                "branches": getattr(v, "branches", None),
                "timings": timings,
                "worker": self.worker_name,
                "created": utcnow(),
            }
            if layer is not None and cam_path and overlay_path:
                to_keep[image_id] = pred  # every host reads them from the blob layer
            img_vals.update(status="done", error=None, evidence=v.evidence)
            outcomes.append(writes.ScoreRecord(image_id, img_vals, pred))
            report.done += 1
        if layer is not None and to_keep:
            self._keep_heatmaps(layer, heatmap_dir, to_keep)
        t_rec = time.perf_counter()
        report.phases["heatmaps"] = t_rec - t_keep
        if layer is not None:
            outcomes = _drop_overtaken(outcomes, todo)
        writes.record(outcomes)
        t_rel = time.perf_counter()
        report.phases["record"] = t_rel - t_rec
        if layer is not None:  # the staged bytes of contents now final are not needed any more
            from aidetect.blobs.staging import release

            try:
                release([t[2] for t in todo if t[2]], layer)
            except Exception as exc:  # noqa: BLE001 - the sweep removes them later
                log.warning("staged bytes not released: %s", _one_line(exc))
            report.phases["release"] = time.perf_counter() - t_rel
        report.seconds = time.perf_counter() - t0
        return report


def _drop_overtaken(outcomes: list[writes.ScoreRecord], todo: list[tuple[int, str, str | None]]) -> list[writes.ScoreRecord]:
    """A redelivered batch that ran beside the first one may find the staged bytes already
    released by it: those images are done, not failed; leave their rows alone."""
    from aidetect.blobs.staging import GONE
    from aidetect.store.blobs import image_states

    gone = {o.image_id for o in outcomes if o.image.get("error") == GONE}
    if not gone:
        return outcomes
    shas = {i: sha for i, _p, sha in todo if i in gone and sha}
    states = image_states(shas.values())
    done = {i for i, sha in shas.items() if states.get(sha) == "done"}
    return [o for o in outcomes if o.image_id not in done]


class _ErrorVerdict:
    def __init__(self, error: str) -> None:
        self.error = error
        self.label = None
        self.sha256 = None
