"""Provenance everywhere a result goes: files whose metadata says AI are decided by it (label
ai, decided_by provenance, the evidence listed) in `predict --json`, `scan --json/--export`,
`results --json` and the store; the same pixels without metadata are left to the model;
camera EXIF alone decides nothing but is listed."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import provenance_fixtures as fx
import pytest
from result_schema import assert_results

from aidetect.cli import main


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, " ".join(out.err.split())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    arr = fx.pixels(5, 64)
    (d / "a1111.png").write_bytes(fx.png_with_text(
        {"parameters": "a cat, photo\nSteps: 30, Sampler: Euler a, CFG scale: 7, Seed: 1, Model: sd15"}, arr))
    (d / "stripped.png").write_bytes(fx.encode(arr, "PNG"))  # the same pixels, no metadata
    (d / "xmp_ai.jpg").write_bytes(fx.jpeg_with_xmp(fx.xmp_packet("trainedAlgorithmicMedia"), fx.pixels(6, 64)))
    (d / "camera.jpg").write_bytes(fx.jpeg_with_exif(fx.exif_bytes("Canon", "Canon EOS R5"), fx.pixels(7, 64)))
    (d / "named_wrong.jpg").write_bytes(fx.png_with_text({"parameters": "Steps: 20, Seed: 2"}, fx.pixels(8, 64)))
    signed = fx.c2pa_sign(fx.encode(fx.pixels(9, 64), "PNG"), "image/png",
                          fx.manifest("trainedAlgorithmicMedia", "ChatGPT"), fx.make_pki())
    (d / "chatgpt.png").write_bytes(signed)
    return d


def test_scan_results_and_exports_carry_evidence_and_who_decided(aidetect_home: Path, folder: Path, tmp_path: Path, capsys) -> None:  # noqa: ANN001
    export = tmp_path / "out.csv"
    code, out, err = _run(["scan", str(folder), "--inline", "--json", "--export", str(export)], capsys)
    assert code == 0, err
    rows = {Path(r["path"]).name: r for r in assert_results(json.loads(out))}
    for name in ("a1111.png", "xmp_ai.jpg", "named_wrong.jpg", "chatgpt.png"):
        r = rows[name]
        assert r["label"] == "ai" and r["decided_by"] == "provenance" and r["uncertain"] is False, r
        assert any(e["says"] == "ai" for e in r["evidence"]), r
        assert 0.0 <= r["prob_ai"] <= 1.0  # the model's probability is kept beside it
    c2pa = next(e for e in rows["chatgpt.png"]["evidence"] if e["kind"] == "c2pa")
    assert "ChatGPT" in c2pa["detail"] and "untrusted" in c2pa["detail"].lower(), c2pa
    assert rows["stripped.png"]["decided_by"] == "model"
    assert not any(e["says"] == "ai" for e in rows["stripped.png"]["evidence"])
    cam = rows["camera.jpg"]
    assert cam["decided_by"] == "model" and cam["evidence"], cam
    assert all(e["says"] == "none" for e in cam["evidence"]) and "Canon EOS R5" in json.dumps(cam["evidence"])
    with export.open(newline="") as fh:
        by_name = {Path(r["path"]).name: r for r in csv.DictReader(fh)}
    assert by_name["a1111.png"]["decided_by"] == "provenance"
    assert json.loads(by_name["a1111.png"]["evidence"])[0]["kind"] == "png-text"
    code, out, _ = _run(["results", "--json"], capsys)
    stored = {Path(r["path"]).name: r for r in assert_results(json.loads(out))}
    assert stored["a1111.png"]["evidence"] == rows["a1111.png"]["evidence"]
    code, out, _ = _run(["results", "--json", "--decided-by", "provenance"], capsys)
    assert sorted(Path(r["path"]).name for r in json.loads(out)) == ["a1111.png", "chatgpt.png", "named_wrong.jpg", "xmp_ai.jpg"]
    code, out, _ = _run(["results"], capsys)
    assert "ai (file)" in out  # the table shows when the file decided


def test_predict_json_says_who_decided(aidetect_home: Path, folder: Path, capsys) -> None:  # noqa: ANN001
    code, out, _ = _run(["predict", "--json", str(folder / "a1111.png"), str(folder / "stripped.png")], capsys)
    assert code == 0
    a, b = assert_results(json.loads(out))
    assert (a["decided_by"], a["label"]) == ("provenance", "ai")
    assert a["evidence"][0]["generator"]
    assert b["decided_by"] == "model"
    code, out, _ = _run(["predict", str(folder / "a1111.png")], capsys)
    assert "provenance" in out


def test_a_trusted_capture_manifest_decides_real_only_with_configured_anchors(
    aidetect_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys  # noqa: ANN001
) -> None:
    pki = fx.make_pki()
    photo = tmp_path / "capture.jpg"
    photo.write_bytes(fx.c2pa_sign(fx.encode(fx.pixels(11, 64), "JPEG"), "image/jpeg",
                                   fx.manifest("digitalCapture", "Test Camera App"), pki))
    code, out, _ = _run(["predict", "--json", str(photo)], capsys)
    (untrusted,) = assert_results(json.loads(out))
    assert untrusted["decided_by"] == "model"  # no anchors configured: a capture claim proves nothing
    anchors = tmp_path / "roots.pem"
    anchors.write_bytes(pki.root_pem)
    monkeypatch.setenv("AIDETECT_C2PA_TRUST_ANCHORS", str(anchors))
    code, out, _ = _run(["predict", "--json", str(photo)], capsys)
    (trusted,) = assert_results(json.loads(out))
    assert (trusted["decided_by"], trusted["label"]) == ("provenance", "real"), trusted
    monkeypatch.setenv("AIDETECT_C2PA_TRUST_ANCHORS", str(tmp_path / "nope.pem"))
    code, _, err = _run(["predict", "--json", str(photo)], capsys)
    assert code == 2 and "AIDETECT_C2PA_TRUST_ANCHORS" in err and "Traceback" not in err
