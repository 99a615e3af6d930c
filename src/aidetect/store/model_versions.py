"""Model-version registry: which model directory the workers should score with.

Reads ``card.json`` directly (no torch import), so the CLI, the watcher and the Celery
parent process can use it before forking. The shipped default model (or ``AIDETECT_MODEL``)
is registered and activated automatically the first time a store has no active version.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aidetect.config import get_settings
from aidetect.errors import AidetectError, ModelLoadError
from aidetect.jsonutil import clean_json
from aidetect.model.card import CARD_FILE, WEIGHTS_FILE, card_problem
from aidetect.store.engine import session_scope
from aidetect.store.migrate import init_db
from aidetect.store.tables import ModelVersion, utcnow


def read_card(model_dir: Path | str) -> dict[str, Any]:
    """The model card of ``model_dir`` as a dict; raises ModelLoadError with one line."""
    path = Path(model_dir).expanduser()
    card_path = path / CARD_FILE
    if not card_path.is_file() or not (path / WEIGHTS_FILE).is_file():
        raise ModelLoadError(f"{path}: not a model directory (needs {WEIGHTS_FILE} + {CARD_FILE})")
    try:
        card = clean_json(json.loads(card_path.read_text(encoding="utf-8")))  # NaN -> null (PostgreSQL JSON)
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{card_path}: invalid model card ({exc})") from exc
    if not isinstance(card, dict) or not card.get("version"):
        raise ModelLoadError(f"{card_path}: model card has no version")
    problem = card_problem(card)
    if problem:
        raise ModelLoadError(f"{card_path}: invalid model card: {problem}")
    return card


def _upsert_version(session: Session, model_dir: Path, card: dict[str, Any]) -> ModelVersion:
    row = session.scalar(select(ModelVersion).where(ModelVersion.version == card["version"]))
    if row is None:
        row = ModelVersion(version=card["version"], created=utcnow(), active=False)
        session.add(row)
    row.path = str(model_dir.resolve())
    row.architecture = card.get("architecture")
    row.metrics = card.get("metrics") or {}
    row.card = card
    session.flush()
    return row


def _activate(session: Session, version: str) -> None:
    session.execute(update(ModelVersion).where(ModelVersion.version != version).values(active=False))
    session.execute(update(ModelVersion).where(ModelVersion.version == version).values(active=True))


def publish_model(model_dir: Path | str, activate: bool = True) -> str:
    """Register ``model_dir`` (reads its card) and, by default, make it the active version.
    Returns the version id. Publishing the same version again updates its path/metrics."""
    init_db()
    path = Path(model_dir).expanduser()
    card = read_card(path)
    with session_scope() as s:
        _upsert_version(s, path, card)
        if activate:
            _activate(s, card["version"])
    return str(card["version"])


def promote(version: str) -> str:
    """Make a registered ``version`` the active one (workers switch between batches)."""
    init_db()
    with session_scope() as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.version == version))
        if row is None:
            known = ", ".join(s.scalars(select(ModelVersion.version)).all()) or "none"
            raise AidetectError(f"unknown model version {version!r} (registered: {known})")
        _activate(s, version)
    return version


def active_model() -> ModelVersion:
    """The active ModelVersion row; registers the configured default model on first use."""
    init_db()
    with session_scope() as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
        if row is not None:
            return row
    default = get_settings().model
    card = read_card(default)
    try:
        with session_scope() as s:
            if s.scalar(select(ModelVersion).where(ModelVersion.active.is_(True))) is None:
                _upsert_version(s, default, card)
                _activate(s, card["version"])
    except IntegrityError:
        pass  # another process registered it at the same moment
    with session_scope() as s:
        row = s.scalar(select(ModelVersion).where(ModelVersion.active.is_(True)))
        assert row is not None
        return row


def active_version() -> str:
    return active_model().version


def active_model_dir() -> Path:
    return Path(active_model().path)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.isoformat()


def list_versions() -> list[dict[str, Any]]:
    init_db()
    with session_scope() as s:
        rows = s.scalars(select(ModelVersion).order_by(ModelVersion.created)).all()
        return [
            {
                "version": r.version,
                "path": r.path,
                "architecture": r.architecture,
                "metrics": r.metrics or {},
                "created": _iso(r.created),
                "active": bool(r.active),
            }
            for r in rows
        ]
