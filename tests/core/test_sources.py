"""Data sources: parquet (hub layout), image folder, save_to_disk, combined, hub offline;
label mapping through the alias table; splits recorded with a hash."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from aidetect.cli import main
from aidetect.errors import DataSourceError
from aidetect.trainer.sources import (
    eval_selection,
    load_source,
    load_sources,
    map_class_name,
    parse_label_map,
    train_val_split,
)


def _truth(sel, mini_dir: Path) -> list[int]:
    """The label each selected image really has, from the shipped folder it came from."""
    real = {f.read_bytes() for f in (mini_dir / "real").iterdir()}
    out = []
    for i in range(len(sel)):
        data, path = sel.image_bytes(i)
        data = data or Path(path).read_bytes()
        out.append(0 if data in real else 1)
    return out


def test_parquet_hub_layout_fake_real(parquet_dir: Path, mini_dir: Path) -> None:
    src = load_source(str(parquet_dir))
    assert src.kind == "parquet"
    assert set(src.splits) == {"train", "test"}
    assert src.value_names == {0: "FAKE", 1: "REAL"}
    assert src.value_to_class == {0: "ai", 1: "real"}  # FAKE = 0 is AI: never assume 0 = real
    sel, rec = eval_selection([src])
    assert rec["sources"][0]["evaluated_splits"] == ["test"]
    assert len(sel) == 64
    assert sel.labels.tolist() == _truth(sel, mini_dir)


def test_single_parquet_file_split_from_name(parquet_dir: Path) -> None:
    src = load_source(str(parquet_dir / "data" / "test-00000-of-00001.parquet"))
    assert list(src.splits) == ["test"] and len(src.splits["test"]) == 64


def test_imagefolder_hemg_names(hemg_folder: Path, mini_dir: Path) -> None:
    src = load_source(str(hemg_folder))
    assert src.kind == "imagefolder"
    assert sorted(src.value_names.values()) == ["AiArtData", "RealArt"]
    sel, _ = eval_selection([src])
    assert len(sel) == 256
    assert sel.labels.tolist() == _truth(sel, mini_dir)


def test_save_to_disk_aiartdata_is_zero(disk_dir: Path, mini_dir: Path) -> None:
    src = load_source(str(disk_dir))
    assert src.kind == "disk"
    assert src.value_names == {0: "AiArtData", 1: "RealArt"}
    assert src.value_to_class == {0: "ai", 1: "real"}
    sel, _ = eval_selection([src])
    assert sel.labels.tolist() == _truth(sel, mini_dir)
    assert sel.labels.sum() == 128


def test_combined_sources_split_and_groups(parquet_dir: Path, hemg_folder: Path, disk_dir: Path) -> None:
    sources = load_sources([f"pq={parquet_dir}", str(hemg_folder), str(disk_dir)])
    train, val, rec = train_val_split(sources, val_fraction=0.25, seed=3)
    # parquet: its train split (192) minus a stratified quarter; folder and disk: 256 minus a quarter
    assert len(train) + len(val) == 192 + 256 + 256
    assert set(train.groups) == {"pq", "hemg_like", "saved"}
    for g in ("pq", "hemg_like", "saved"):  # stratified: both classes in each source's validation part
        labels = val.labels[np.array(val.groups) == g]
        assert 0 < labels.sum() < len(labels)
    assert "seeded stratified" in rec["sources"][1]["split"]
    # the same seed gives the same split (and hash); another seed another one
    _, _, rec2 = train_val_split(sources, val_fraction=0.25, seed=3)
    _, _, rec3 = train_val_split(sources, val_fraction=0.25, seed=4)
    assert rec["split_hash"] == rec2["split_hash"] != rec3["split_hash"]
    # the test split is never trained on
    assert all(it.split != "test" for it in train.items + val.items)


def test_unknown_class_names_name_the_flag(tmp_path: Path, mini_dir: Path) -> None:
    root = tmp_path / "odd"
    shutil.copytree(mini_dir / "ai", root / "midjourney")
    shutil.copytree(mini_dir / "real", root / "camera")
    with pytest.raises(DataSourceError) as err:
        load_source(str(root))
    msg = str(err.value)
    assert "'midjourney'" in msg and "'camera'" in msg and "--label-map" in msg
    src = load_source(str(root), parse_label_map(["midjourney=ai", "Camera=real"]))
    sel, _ = eval_selection([src])
    assert sel.labels.sum() == 128


def test_cli_reports_unknown_labels_in_one_line(tmp_path: Path, mini_dir: Path, capsys) -> None:
    root = tmp_path / "odd"
    shutil.copytree(mini_dir / "ai", root / "dalle")
    shutil.copytree(mini_dir / "real", root / "real")
    rc = main(["evaluate", "--data", str(root), "--json"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "'dalle'" in err and "--label-map" in err


def test_alias_table() -> None:
    for name in ("REAL", "real", "RealArt", "Real_Art", "realart"):
        assert map_class_name(name) == "real"
    for name in ("FAKE", "fake", "AiArtData", "ai", "AI-generated"):
        assert map_class_name(name) == "ai"
    assert map_class_name("cats") is None
    with pytest.raises(DataSourceError):
        parse_label_map(["cats=dog"])


def test_integer_labels_without_names_refused(tmp_path: Path, mini_dir: Path) -> None:
    import datasets

    files = sorted((mini_dir / "ai").iterdir())[:4] + sorted((mini_dir / "real").iterdir())[:4]
    ds = datasets.Dataset.from_dict(
        {"image": [{"bytes": f.read_bytes(), "path": f.name} for f in files], "label": [0] * 4 + [1] * 4},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")}),
    )
    ds.to_parquet(str(tmp_path / "train.parquet"))
    with pytest.raises(DataSourceError, match="never guesses"):
        load_source(str(tmp_path / "train.parquet"))


def test_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="no such file"):
        load_source(str(tmp_path / "nope"))


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "unreachable endpoint"])
def test_hub_offline_fails_fast_in_one_line(how: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf" / "datasets"))
    if how == "HF_HUB_OFFLINE":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    t0 = time.perf_counter()
    with pytest.raises(DataSourceError):
        load_source("Hemg/AI-Generated-vs-Real-Images-Datasets")
    assert time.perf_counter() - t0 < 5  # no 25 s retry loop
    rc = main(["train", "--out", str(tmp_path / "m"), "--quiet"])  # default source: the Hemg hub id
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert "Hemg/AI-Generated-vs-Real-Images-Datasets" in err
    assert "--data" in err and "local copy" in err
    if how == "unreachable endpoint":
        assert "cannot reach the Hugging Face hub" in err
    else:
        assert "HF_HUB_OFFLINE is set" in err
