"""Fixtures for the detector core: the shipped 256 CIFAKE images in every source layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def _rows(mini: Path, names: dict[str, str]) -> tuple[list[dict], list[str]]:
    """Rows {image: {bytes, path}, label: int} with class order ``names`` values."""
    order = sorted(set(names.values()))
    rows = []
    for folder, cname in names.items():
        for f in sorted((mini / folder).iterdir()):
            rows.append({"image": {"bytes": f.read_bytes(), "path": f.name}, "label": order.index(cname)})
    return rows, order


def _dataset(mini: Path, names: dict[str, str]):
    import datasets

    rows, order = _rows(mini, names)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=order)})
    return datasets.Dataset.from_list(rows, features=features)


@pytest.fixture(scope="session")
def parquet_dir(mini_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Hub layout parquet: data/train-*.parquet + data/test-*.parquet, ClassLabel
    ['FAKE', 'REAL'] (FAKE = 0, as in the shared CIFAKE copy)."""
    root = tmp_path_factory.mktemp("parquet") / "cifake_pq"
    (root / "data").mkdir(parents=True)
    ds = _dataset(mini_dir, {"ai": "FAKE", "real": "REAL"}).shuffle(seed=0)
    parts = ds.train_test_split(test_size=0.25, seed=0, stratify_by_column="label")
    parts["train"].to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    parts["test"].to_parquet(str(root / "data" / "test-00000-of-00001.parquet"))
    return root


@pytest.fixture(scope="session")
def hemg_folder(mini_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Image folder with Hemg's class names: AiArtData/ and RealArt/."""
    root = tmp_path_factory.mktemp("hemg") / "hemg_like"
    shutil.copytree(mini_dir / "ai", root / "AiArtData")
    shutil.copytree(mini_dir / "real", root / "RealArt")
    return root


@pytest.fixture(scope="session")
def disk_dir(mini_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A save_to_disk folder (single Dataset) with ClassLabel ['AiArtData', 'RealArt']
    (AI = 0, as on Hemg's card)."""
    root = tmp_path_factory.mktemp("disk") / "saved"
    _dataset(mini_dir, {"ai": "AiArtData", "real": "RealArt"}).save_to_disk(str(root))
    return root
