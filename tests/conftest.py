"""Shared fixtures. Area-specific fixtures live in each sub-folder's conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MINI = REPO / "tests" / "data" / "cifake_mini"  # 128 real + 128 ai CIFAKE validation images
SHARED_DATA = Path(os.environ.get("AIDETECT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def mini_dir() -> Path:
    """An image folder (real/, ai/) of 256 CIFAKE images shipped with the repo."""
    return MINI


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip with the reason when this checkout has none beside it."""
    if not (SHARED_DATA / "cifake" / "test.parquet").is_file():
        pytest.skip(f"needs ../shared/data (not found at {SHARED_DATA}); set AIDETECT_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def aidetect_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh AIDETECT_HOME (database, embedded broker, heatmaps, inbox) for one test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("AIDETECT_HOME", str(home))
    for var in ("AIDETECT_DATABASE_URL", "AIDETECT_BROKER_URL", "AIDETECT_INBOX", "AIDETECT_CONFIG", "AIDETECT_BLOBS"):
        monkeypatch.delenv(var, raising=False)
    return home
