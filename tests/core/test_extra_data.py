"""``aidetect data build-extra`` (aidetect.trainer.extra_data) on a tiny repository made here, as
a bare git directory and as a working-tree clone; the group rules; and the format-only baseline
(aidetect.trainer.format_baseline) on synthetic files: separable when one class is PNG and the
other JPEG, near chance after normalisation."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aidetect.cli import main
from aidetect.errors import EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE
from aidetect.trainer import extra_data, format_baseline

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

REPO = "owner/tiny"
COLUMNS = ",".join(extra_data.MANIFEST_COLUMNS)


@pytest.fixture(autouse=True)
def _tiny_group_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiny repository keeps its outputs as muset-ai does: cases/N/*.output.K.*"""
    monkeypatch.setitem(extra_data.GROUP_RULES, REPO, extra_data.GROUP_RULES["muset-ai/awesome-nano-banana-pro"])


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args],
                          cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _upscaled(src: Path, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.open(src).convert("RGB").resize((256, 256), Image.Resampling.BICUBIC).save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tiny(mini_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A work tree with 4 small real images and one non-image named .jpg, committed; a bare
    clone under repos/owner+tiny/repo, a working-tree clone under clones/owner/tiny; a manifest
    with 4 good rows (one at a commit the copy lacks, one a second path of the same bytes), one
    SHA mismatch, one missing blob, one bad image and one row of a repository nobody has."""
    root = tmp_path_factory.mktemp("extra")
    work = root / "work"
    (work / "cases" / "7").mkdir(parents=True)
    ai = sorted((mini_dir / "ai").iterdir())
    real = sorted((mini_dir / "real").iterdir())
    files = {
        "cases/7/1.output.1.jpg": _upscaled(ai[0], "JPEG"),
        "cases/7/1.output.2.png": _upscaled(ai[1], "PNG"),
        "photos/a.jpg": _upscaled(real[0], "JPEG"),
        "photos/b.jpg": _upscaled(real[1], "JPEG"),
        "photos/copy_of_a.jpg": _upscaled(real[0], "JPEG"),
        "photos/broken.jpg": b"this is not an image at all\n" * 20,
    }
    for rel, data in files.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("commit", "-q", "-m", "images", cwd=work)
    commit = _git("rev-parse", "HEAD", cwd=work)
    bare = root / "repos" / "owner+tiny" / "repo"
    bare.parent.mkdir(parents=True)
    _git("clone", "-q", "--bare", str(work), str(bare), cwd=root)
    clones = root / "clones"
    (clones / "owner").mkdir(parents=True)
    _git("clone", "-q", str(work), str(clones / "owner" / "tiny"), cwd=root)

    def sha(rel: str) -> str:
        return hashlib.sha256(files[rel]).hexdigest()

    def line(label: str, rel: str, digest: str, at: str = commit, repo: str = REPO) -> str:
        return f"{label},gen-{label},{repo},{at},{rel},{digest},256,256,JPEG,{len(files.get(rel, b''))},CC0"

    rows = [
        line("ai", "cases/7/1.output.1.jpg", sha("cases/7/1.output.1.jpg")),
        line("ai", "cases/7/1.output.2.png", sha("cases/7/1.output.2.png"), at="0" * 40),  # commit absent
        line("real", "photos/a.jpg", sha("photos/a.jpg")),
        line("real", "photos/copy_of_a.jpg", sha("photos/copy_of_a.jpg")),  # same bytes as a.jpg
        line("real", "photos/b.jpg", "f" * 64),  # sha256 mismatch
        line("real", "photos/gone.jpg", "e" * 64),  # missing blob
        line("real", "photos/broken.jpg", sha("photos/broken.jpg")),  # not an image
        line("ai", "x.png", "d" * 64, repo="nobody/here"),  # repository missing
    ]
    manifest = root / "MANIFEST.csv"
    manifest.write_text(COLUMNS + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return {"root": root, "manifest": manifest, "bare": bare, "clones": clones, "files": files, "commit": commit}


def _build(tiny: dict, out: Path, *extra: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["data", "build-extra", "--manifest", str(tiny["manifest"]), "--out", str(out), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _index(out: Path) -> list[dict]:
    with (out / "index.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _check_build(tiny: dict, out: Path, report: dict) -> None:
    assert report["kept"] == 4 and report["skipped"] == 4 and report["manifest_rows"] == 8
    assert report["skip_reasons"] == {"repo missing": 1, "sha256 mismatch": 1, "blob missing": 1, "not an image": 1}
    assert report["per_label"] == {"ai": 2, "real": 2}
    assert report["per_repo"] == {REPO: 4}
    rows = _index(out)
    assert list(rows[0])[:10] == ["path", "label", "generator", "group", "source", "sha256", "width", "height",
                                  "format", "bytes"]
    by_src = {r["source_path"]: r for r in rows}
    assert set(by_src) == {"cases/7/1.output.1.jpg", "cases/7/1.output.2.png", "photos/a.jpg", "photos/copy_of_a.jpg"}
    for rel, r in by_src.items():
        data = tiny["files"][rel]
        assert (out / r["path"]).read_bytes() == data  # original bytes, unchanged
        assert r["path"] == f"images/{r['label']}/{r['sha256'][:16]}.{'png' if rel.endswith('png') else 'jpg'}"
        assert (r["width"], r["height"], r["bytes"], r["source"]) == ("256", "256", str(len(data)), REPO)
    assert by_src["cases/7/1.output.2.png"]["format"] == "PNG"
    assert by_src["photos/a.jpg"]["group"] == by_src["photos/copy_of_a.jpg"]["group"]  # same sha256, same group
    assert by_src["cases/7/1.output.1.jpg"]["group"] == by_src["cases/7/1.output.2.png"]["group"] == f"{REPO}:cases/7"
    with (out / "skipped.csv").open(newline="", encoding="utf-8") as fh:
        skipped = {r["source_path"]: r["reason"] for r in csv.DictReader(fh)}
    assert skipped == {"photos/b.jpg": "sha256 mismatch", "photos/gone.jpg": "blob missing",
                       "photos/broken.jpg": "not an image", "x.png": "repo missing"}
    with (out / "images" / "MANIFEST.csv").open(newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert {(m["path"], m["source_path"]) for m in manifest} == {(r["path"].removeprefix("images/"), r["group"]) for r in rows}


def test_build_from_a_bare_git_directory_then_again(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, report = _build(tiny, out, "--repos", str(tiny["root"] / "repos"), capsys=capsys)
    assert code == EXIT_SOME_FAILED  # files were skipped: 1, the rest built
    _check_build(tiny, out, report)
    assert report["repos"][REPO].startswith("bare git") and report["repos"]["nobody/here"] == "missing"
    assert report["commit_fallbacks"] == {REPO: f"{'0' * 40} absent; HEAD {tiny['commit']}"}
    assert report["written"] == 3 and report["reused"] == 1  # copy_of_a.jpg is a.jpg's file
    first = (out / "index.csv").read_text()

    code, again = _build(tiny, out, "--repos", str(tiny["root"] / "repos"), capsys=capsys)  # idempotent
    assert code == EXIT_SOME_FAILED and again["written"] == 0 and again["reused"] == 4
    assert (out / "index.csv").read_text() == first

    victim = out / _index(out)[0]["path"]  # a damaged file is written again
    victim.write_bytes(b"damaged")
    code, third = _build(tiny, out, "--repos", str(tiny["root"] / "repos"), "--quiet", capsys=capsys)
    assert third["written"] == 1 and (out / "index.csv").read_text() == first


def test_build_from_a_working_tree_clone(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code, report = _build(tiny, out, "--repos", str(tiny["clones"]), capsys=capsys)  # OWNER/NAME layout
    assert code == EXIT_SOME_FAILED
    _check_build(tiny, out, report)
    assert report["repos"][REPO].startswith("work tree")
    out2 = tmp_path / "out2"  # --repo OWNER/NAME=PATH, a plain folder without .git
    plain = tmp_path / "plain"
    shutil.copytree(tiny["clones"] / "owner" / "tiny", plain, ignore=shutil.ignore_patterns(".git"))
    code, report = _build(tiny, out2, "--repo", f"{REPO}={plain}", capsys=capsys)
    _check_build(tiny, out2, report)


def test_bad_manifest_out_or_repos_exit_2(tiny: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repos = ["--repos", str(tiny["root"] / "repos")]
    bad = tmp_path / "bad.csv"
    bad.write_text("label,repo\nai,x/y\n")
    cases = [
        (["--manifest", str(bad), "--out", str(tmp_path / "o"), *repos], "missing column"),
        (["--manifest", str(tmp_path / "none.csv"), "--out", str(tmp_path / "o"), *repos], "none.csv"),
        (["--manifest", str(tiny["manifest"]), "--out", str(tiny["manifest"] / "sub"), *repos], "not a writable folder"),
        (["--manifest", str(tiny["manifest"]), "--out", str(tiny["manifest"]), *repos], "is a file"),
        (["--manifest", str(tiny["manifest"]), "--out", str(tmp_path / "o"), "--repos", str(tmp_path)],
         "no repository of the manifest found"),
        (["--manifest", str(tiny["manifest"]), "--out", str(tmp_path / "o"), "--repo", "nonsense"], "OWNER/NAME=PATH"),
    ]
    for args, message in cases:
        assert main(["data", "build-extra", *args]) == EXIT_USAGE
        err = capsys.readouterr().err.strip()
        if err.startswith("aidetect: error:"):  # our errors: one line; click's usage errors: its own block
            assert len(err.splitlines()) == 1, err
        assert message in err, err
    assert not (tmp_path / "o").exists()  # nothing written when the inputs are bad


def test_group_rules_on_paths_of_the_real_manifest() -> None:
    g = extra_data.path_group
    assert g("songguoxs/gpt4o-image-prompts", "images/100-2.jpeg") == g("songguoxs/gpt4o-image-prompts", "images/100.png")
    assert g("songguoxs/gpt4o-image-prompts", "images/musk-in-the-park.jpg").endswith(":images/musk-in-the-park.jpg")
    y = "jyoung105/yetter"
    assert g(y, "control_group/fal/flux-1-dev/results/prompt_01_image_1.png") == \
        g(y, "model/qwen-image/results/prompt_01_image_1.png") == f"{y}:prompt_01"
    assert g(y, "control_group/runware/flux-1-kontext-dev/results/edit_08_image_1.png") == f"{y}:edit_08"
    p = "preangelleo/illustration-style-samples"
    assert g(p, "output/pressure_test_300concurrent/nano-banana/Pop_Art_nano-banana.jpg") == f"{p}:Pop_Art"
    assert g("Pixmind-io/awesome-midjourney-v7-example-prompts", "docs/x-twitter-images/artedeingenio_dino_3.jpg") \
        .endswith(":artedeingenio_dino")
    assert g("openMVG/SfM_quality_evaluation", "Benchmarking_Camera_Calibration_2008/castle-P19/images/0014.jpg") \
        .endswith(":Benchmarking_Camera_Calibration_2008/castle-P19")
    assert g("EliSchwartz/imagenet-sample-images", "n01440764_tench.JPEG") == \
        "EliSchwartz/imagenet-sample-images:n01440764_tench.JPEG"
    rows = [{"group": "r:a", "sha256": "1", "phash": "0" * 16}, {"group": "r:b", "sha256": "2", "phash": "0" * 15 + "7"},
            {"group": "r:c", "sha256": "3", "phash": "f" * 16}, {"group": "r:d", "sha256": "3", "phash": ""}]
    assert extra_data.assign_groups(rows, 10, confirm=lambda a, b: False) == (0, 1)
    assert [r["group"] for r in rows] == ["r:a", "r:b", "r:c", "r:c"]  # same sha256 joined, hash match refused
    assert extra_data.assign_groups(rows, 10) == (1, 0) and rows[1]["group"] == "r:a"


def test_build_extra_help_does_not_import_torch() -> None:
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "aidetect.cli", "data", "build-extra", "--help"],
                          capture_output=True, text=True, timeout=120)
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert proc.returncode == 0 and "--manifest" in proc.stdout
    assert "torch" not in imported and "sklearn" not in imported


# -- the format-only baseline -----------------------------------------------------------------
def _synthetic_folder(root: Path, n: int = 48) -> Path:
    """ai/ as PNG, real/ as JPEG q90, the same kind of content (smooth random fields) in both."""
    rng = np.random.default_rng(0)
    for label, fmt in (("ai", "PNG"), ("real", "JPEG")):
        (root / label).mkdir(parents=True)
        for i in range(n):
            w, h = (int(v) for v in rng.integers(96, 200, size=2))
            base = rng.random((h // 8 + 1, w // 8 + 1, 3)) * 255
            im = Image.fromarray(base.astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC)
            im.save(root / label / f"{i:03d}.{'png' if fmt == 'PNG' else 'jpg'}", fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return root


def test_format_baseline_separates_png_from_jpeg_and_not_after_normalising(tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = _synthetic_folder(tmp_path / "synthetic")
    rows = format_baseline.load_rows(folder)
    raw = format_baseline.format_baseline(rows, folds=4)
    assert raw.auc > 0.95 and raw.files == 96 and raw.labels == {"ai": 48, "real": 48}

    spec = format_baseline.Normalisation(long_side=(64, 128))
    normed = format_baseline.normalise_rows(rows, tmp_path / "normed", spec=spec)
    assert len(normed) == 96 and all(r["format"] == "JPEG" for r in normed)
    with Image.open(normed[0]["file"]) as im:
        assert im.format == "JPEG" and max(im.size) <= 128 and not im.info.get("exif")
    again = format_baseline.normalise_rows(rows, tmp_path / "normed2", spec=spec)  # seeded by the file: same bytes
    assert [r["sha256"] for r in again] == [r["sha256"] for r in normed]
    after = format_baseline.format_baseline(normed, folds=4)
    assert abs(after.auc - 0.5) < 0.2, after

    code = main(["data", "format-baseline", str(folder), "--folds", "3", "--json", "--quiet"])
    assert code in (None, EXIT_OK)
    assert json.loads(capsys.readouterr().out)["raw"]["auc"] > 0.95


def test_container_features_read_the_header() -> None:
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), "gray").save(buf, "JPEG", quality=75, subsampling=2)
    f = format_baseline.container_features(buf.getvalue())
    assert (f["is_jpeg"], f["width"], f["height"], f["aspect"], f["subsampling"]) == (1, 200, 100, 2.0, 2)
    assert f["jpeg_quality"] == 75 and f["has_exif"] == 0
    buf = io.BytesIO()
    Image.new("RGBA", (64, 64)).save(buf, "PNG")
    f = format_baseline.container_features(buf.getvalue())
    assert f["is_png"] == 1 and f["has_alpha"] == 1 and np.isnan(f["jpeg_quality"])
