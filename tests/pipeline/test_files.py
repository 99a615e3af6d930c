"""Files apart from contents: every scanned or dropped path is its own result, identical
content is scored once, a path whose content changed shows its current result once, and a
store from before the files table upgrades in place without loss. Every command's JSON
output is checked against the shipped result schema."""

from __future__ import annotations

import csv
import io
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from images import image_bytes, write_images
from result_schema import SCHEMA, assert_results
from sqlalchemy import func, select

from aidetect.cli import main
from aidetect.result import RESULT_FIELDS
from aidetect.store import File, Image, Prediction, read_engine, session_scope
from aidetect.store.results import ResultFilter, fetch_page


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


def _predictions_per_image() -> dict[int, int]:
    with session_scope() as s:
        return dict(s.execute(select(Prediction.image_id, func.count()).group_by(Prediction.image_id)).all())


def test_schema_names_every_result_field() -> None:
    assert tuple(SCHEMA["required"]) == RESULT_FIELDS
    assert set(SCHEMA["properties"]) == set(RESULT_FIELDS)


def test_overlapping_folders_and_internal_duplicates(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    a = write_images(tmp_path / "A", 4)
    b_dir = tmp_path / "B"
    b = write_images(b_dir, 2, start=2)  # img_00002/3: the same bytes as two files of A
    b += write_images(b_dir, 1, start=50)
    inner = b_dir / "again_50.png"
    shutil.copy(b[-1], inner)  # a duplicate inside one scan
    code, out, err = _run(["scan", str(tmp_path / "A"), "--inline", "--json"], capsys)
    assert code == 0, err
    assert [r["path"] for r in assert_results(json.loads(out))] == [str(p) for p in a]
    export = tmp_path / "b.csv"
    code, out, err = _run(["scan", str(b_dir), "--inline", "--json", "--export", str(export)], capsys)
    assert code == 0, err
    rows_b = assert_results(json.loads(out))
    want_b = sorted([str(p) for p in b] + [str(inner)])
    assert sorted(r["path"] for r in rows_b) == want_b  # B's own paths, the inner duplicate too
    assert "4 files, 3 distinct" in err and "2 already scored" in err
    with export.open(newline="") as fh:
        records = list(csv.DictReader(fh))
    assert tuple(records[0]) == RESULT_FIELDS
    assert sorted(r["path"] for r in records) == want_b
    by_path = {r["path"]: r for r in rows_b}
    assert by_path[str(inner)]["sha256"] == by_path[str(b[-1])]["sha256"]
    assert by_path[str(inner)]["prob_ai"] == by_path[str(b[-1])]["prob_ai"]
    assert by_path[str(inner)]["file_id"] != by_path[str(b[-1])]["file_id"]

    code, out, _ = _run(["results", "--json", "--sort", "path"], capsys)
    everything = assert_results(json.loads(out))
    assert [r["path"] for r in everything] == sorted([str(p) for p in a] + want_b)
    assert all(r["status"] == "done" for r in everything)
    per_image = _predictions_per_image()
    assert len(per_image) == 5 and set(per_image.values()) == {1}  # each content scored once

    # the dashboard's view: every path listed, once per stored prediction
    shown = fetch_page(read_engine(), ResultFilter(), 0, 100)
    assert sorted(r.path for r in shown) == sorted(r["path"] for r in everything)
    assert len({r.key for r in shown}) == len(shown)


def test_path_whose_content_changed_shows_its_current_result_once(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "in"
    folder.mkdir()
    target = folder / "photo.jpg"
    whole = image_bytes(7, side=64, fmt="JPEG")
    target.write_bytes(whole[: len(whole) // 3])  # half-written
    code, out, _ = _run(["scan", str(folder), "--inline", "--json"], capsys)
    first = assert_results(json.loads(out))
    assert [r["status"] for r in first] == ["failed"]
    target.write_bytes(whole)  # completed
    code, out, _ = _run(["scan", str(folder), "--inline", "--json"], capsys)
    assert code == 0
    code, out, _ = _run(["results", "--json"], capsys)
    rows = assert_results(json.loads(out))
    assert len(rows) == 1 and rows[0]["status"] == "done" and rows[0]["path"] == str(target)
    assert len(fetch_page(read_engine(), ResultFilter(), 0, 100)) == 1  # the dashboard too
    with session_scope() as s:
        assert s.scalar(select(func.count(Image.id))) == 2  # the old content is kept, not shown


def test_predict_json_follows_the_schema(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    good = write_images(tmp_path, 2)
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    code, out, _ = _run(["predict", "--json", *map(str, good), str(bad)], capsys)
    rows = assert_results(json.loads(out))
    assert [r["status"] for r in rows] == ["done", "done", "failed"]
    assert rows[2]["error"] and rows[2]["label"] is None


def _store_at_0002(db: Path) -> None:
    """A store as revision 0002 left it, with the cases the upgrade must keep."""
    from alembic import command

    from aidetect.store.engine import get_engine
    from aidetect.store.migrate import alembic_config

    engine = get_engine(f"sqlite:///{db}")
    cfg = alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
    con = sqlite3.connect(db)
    t = "2026-11-30 10:00:00.000000"
    later = "2026-11-30 11:00:00.000000"
    con.executemany(
        "INSERT INTO images (id, key, sha256, path, size, first_seen, updated, status, error) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (1, "sha256:" + "a" * 64, "a" * 64, "/in/a.png", 10, t, t, "done", None),
            (2, "sha256:" + "b" * 64, "b" * 64, "/in/half.jpg", 5, t, t, "failed", "truncated"),
            (3, "sha256:" + "c" * 64, "c" * 64, "/in/half.jpg", 9, t, later, "done", None),  # completed since
            (4, "path:/in/gone.png", None, "/in/gone.png", None, t, t, "failed", "file not found"),
        ],
    )
    con.executemany(
        "INSERT INTO predictions (image_id, model_version, label, prob_ai, uncertain, heatmap_path, "
        "overlay_path, created, uncertain_reason) VALUES (?, 'v1', ?, ?, 0, ?, ?, ?, NULL)",
        [(1, "ai", 0.9, "/h/1.png", "/h/1o.png", t), (3, "real", 0.1, "/h/3.png", "/h/3o.png", later)],
    )
    con.commit()
    con.close()


def test_upgrade_of_a_populated_store_keeps_everything(aidetect_home: Path, capsys) -> None:  # noqa: ANN001
    db = aidetect_home / "aidetect.sqlite"
    _store_at_0002(db)
    from aidetect.store.engine import reset_engines

    reset_engines()
    code, out, _ = _run(["results", "--json", "--sort", "path"], capsys)  # upgrades in place
    assert code == 0
    rows = assert_results(json.loads(out))
    assert [(r["path"], r["status"], r["label"]) for r in rows] == [
        ("/in/a.png", "done", "ai"),
        ("/in/gone.png", "failed", None),
        ("/in/half.jpg", "done", "real"),  # its current content once, not the stale failure
    ]
    assert rows[0]["cam_path"] == "/h/1.png" and rows[0]["overlay_path"] == "/h/1o.png"
    con = sqlite3.connect(db)
    assert con.execute("SELECT count(*) FROM images").fetchone() == (4,)  # nothing deleted
    assert con.execute("SELECT count(*) FROM predictions").fetchone() == (2,)
    assert con.execute("SELECT version_num FROM alembic_version").fetchone()[0] >= "0003"
    con.close()
    with session_scope() as s:
        assert s.scalar(select(func.count(File.id))) == 3


def test_results_csv_and_dashboard_export_share_columns(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    from aidetect.store.results import export, iter_rows

    write_images(tmp_path / "s", 3)
    assert _run(["scan", str(tmp_path / "s"), "--inline"], capsys)[0] == 0
    code, out, _ = _run(["results", "--csv"], capsys)
    cli = list(csv.reader(io.StringIO(out)))
    target = tmp_path / "dash.csv"
    assert export(iter_rows(read_engine(), ResultFilter()), target) == 3
    dash = list(csv.reader(target.open(newline="")))
    assert cli[0] == dash[0] == list(RESULT_FIELDS)
    assert sorted(cli[1:]) == sorted(dash[1:])


def test_what_is_plainly_not_an_image_is_skipped(aidetect_home: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    folder = tmp_path / "mixed"
    write_images(folder, 2)
    (folder / "README.txt").write_text("notes about these pictures\n")
    (folder / "report.pdf").write_bytes(b"%PDF-1.7\n" + b"x" * 100)
    (folder / "export.dat").write_bytes(image_bytes(3))  # a PNG under another name: still an image
    (folder / "broken.jpg").write_text("not really a JPEG")  # an image name that does not decode: failed
    code, out, err = _run(["scan", str(folder), "--inline", "--json"], capsys)
    rows = assert_results(json.loads(out))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"img_00000.png", "img_00001.png", "export.dat", "broken.jpg"}
    assert by_name["export.dat"]["status"] == "done" and by_name["broken.jpg"]["status"] == "failed"
    assert "2 skipped (not images)" in err
    with session_scope() as s:
        assert s.scalar(select(func.count(File.id))) == 4  # skipped files leave no row
