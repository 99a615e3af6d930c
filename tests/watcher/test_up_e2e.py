"""`aidetect up` end to end, as a user runs it: a child process in a fresh AIDETECT_HOME
(embedded broker, SQLite, the shipped model), real files landing in the inbox in every
way a writer delivers them, a model promoted mid-flow, a stop and a restart."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from aidetect.cli import main as cli_main
from aidetect.config import FAST_MODEL_DIR

pytestmark = pytest.mark.timeout(400)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _copy_in(data: bytes, staging: Path, dest: Path) -> None:
    """`cp`: a complete file elsewhere, copied into the inbox (created, written, closed)."""
    src = staging / dest.name
    src.write_bytes(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dest)


def _rename_in(data: bytes, dest: Path) -> None:
    """Write under a .part name in the inbox, then rename into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    part.write_bytes(data)
    os.rename(part, dest)


def _slow_write(data: bytes, dest: Path, seconds: float = 2.0, chunks: int = 20) -> None:
    step = len(data) // chunks + 1
    with dest.open("wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            time.sleep(seconds / chunks)


def _bad_files(make_image_bytes) -> dict[str, bytes]:
    """20 distinct bad inputs with image names: empty, truncated, random bytes, text."""
    import random

    rnd = random.Random(7)
    bad: dict[str, bytes] = {"empty.jpg": b""}
    for i in range(6):
        full = make_image_bytes(10_000 + i, "JPEG" if i % 2 else "PNG", side=64)
        bad[f"truncated_{i}.{'jpg' if i % 2 else 'png'}"] = full[: len(full) // 2]
    for i in range(6):
        bad[f"noise_{i}.jpg"] = rnd.randbytes(200 + i * 37)
    for i in range(7):
        bad[f"text_{i}.png"] = f"this is not an image #{i}\n".encode() * (i + 1)
    assert len(bad) == 20
    return bad


@pytest.fixture
def up_env(up_env: dict[str, str]) -> dict[str, str]:
    """These tests are about the pipeline (hundreds of files, restarts, a model refresh): scored by
    the shipped CNN (`fast`), 2x quicker than the fused default on this 2-core machine."""
    return {**up_env, "AIDETECT_MODEL": str(FAST_MODEL_DIR)}


def _second_model(tmp: Path) -> tuple[Path, str]:
    """The shipped model under a new version id (same weights): a 'new training run'."""
    d = tmp / "model_v2"
    shutil.copytree(FAST_MODEL_DIR, d)
    card = json.loads((d / "card.json").read_text())
    version = card["version"] + "-v2"
    card["version"] = version
    (d / "card.json").write_text(json.dumps(card))
    return d, version


def test_up_scores_every_file_once_survives_restart_and_model_refresh(
    aidetect_home: Path, run_up, store, tmp_path: Path, make_image_bytes
) -> None:
    inbox = aidetect_home / "inbox"
    staging = tmp_path / "staging"
    staging.mkdir()
    v1 = json.loads((FAST_MODEL_DIR / "card.json").read_text())["version"]
    model2, v2 = _second_model(tmp_path)

    t_start = time.monotonic()

    def phase(name: str) -> None:
        print(f"[{time.monotonic() - t_start:6.1f} s] {name}", flush=True)

    up = run_up("--workers", "2")
    phase("up started")
    assert str(inbox) in up.output and "aidetect.sqlite" in up.output and "heatmaps" in up.output

    good: dict[str, str] = {}  # sha -> how it arrived
    dup_sources: list[bytes] = []

    # 1. 120 files by cp (PNG and JPEG), into the inbox and a unicode sub-folder
    for i in range(120):
        fmt = "JPEG" if i % 3 == 0 else "PNG"
        data = make_image_bytes(i, fmt)
        sub = inbox / "caméra 1" if i % 4 == 0 else inbox
        _copy_in(data, staging, sub / f"img_{i:03d}.{'jpg' if fmt == 'JPEG' else 'png'}")
        good[_sha(data)] = "cp"
        if i < 25:
            dup_sources.append(data)
    phase("120 copied")
    store.wait_final(set(good), timeout=120)
    phase("120 final")

    # 2. while files keep flowing: a slow chunked write (2 s), 60 write-then-rename,
    #    and the new model promoted half-way
    slow_data = make_image_bytes(5000, "PNG", side=256)
    slow = threading.Thread(target=_slow_write, args=(slow_data, inbox / "slow upload.png"))
    slow.start()
    good[_sha(slow_data)] = "slow"
    for i in range(60):
        data = make_image_bytes(1000 + i, "PNG")
        _rename_in(data, inbox / "renamed" / f"ünï_{i:02d}.png")
        good[_sha(data)] = "rename"
        if i == 30:
            assert cli_main(["models", "register", str(model2), "--activate"]) == 0
        time.sleep(0.02)
    slow.join()
    # 20 bad files and 25 exact duplicates (same bytes, other names)
    bad = _bad_files(make_image_bytes)
    for name, data in bad.items():
        _copy_in(data, staging, inbox / "bad" / name)
    for j, data in enumerate(dup_sources):
        _copy_in(data, staging, inbox / "dups" / f"copy_of_{j}.img.png")
    # 60 more copies over ~3 s: workers switch between batches, so these may get either
    # version; from then on only v2
    for i in range(60):
        data = make_image_bytes(1500 + i, "PNG")
        _copy_in(data, staging, inbox / "transition" / f"t_{i:02d}.png")
        good[_sha(data)] = "transition"
        time.sleep(0.05)

    # 3. later files: all must carry the new version
    later: set[str] = set()
    for i in range(59):
        data = make_image_bytes(2000 + i, "JPEG")
        _copy_in(data, staging, inbox / f"later_{i:02d}.jpg")
        good[_sha(data)] = "later"
        later.add(_sha(data))
    for j, data in enumerate(dup_sources):
        _rename_in(data, inbox / "dups" / f"again_{j}.png")
    last_write = time.monotonic()

    phase("all written")
    bad_shas = {_sha(d) for d in bad.values()}
    dup_shas = {_sha(d) for d in dup_sources}
    assert len(good) == 300 and len(bad_shas) == 20
    rows = store.wait_final(set(good) | bad_shas, timeout=120)
    settle = time.monotonic() - last_write
    time.sleep(2.0)  # nothing more arrives afterwards
    rows = store.rows()

    by_sha: dict[str, list[dict]] = {}
    for r in rows:
        by_sha.setdefault(r["sha256"], []).append(r)
    # every distinct file: exactly one image row, final, and never two results by one model
    assert set(by_sha) == set(good) | bad_shas, "unexpected or missing rows"
    for sha, rs in by_sha.items():
        assert len(rs) == 1, f"{good.get(sha, 'bad')} file has {len(rs)} rows"
        versions = [p["model_version"] for p in rs[0]["predictions"]]
        assert len(versions) == len(set(versions)), f"scored twice by one model: {rs[0]}"
    for sha in good:
        (r,) = by_sha[sha]
        assert r["status"] == "done" and r["label"] in ("ai", "real"), (good[sha], r)
        assert {p["model_version"] for p in r["predictions"]} <= {v1, v2}
        # one result, except an exact duplicate dropped after the refresh: the new model's
        assert len(r["predictions"]) == 1 or (sha in dup_shas and r["model_version"] == v2), r
    for sha in bad_shas:
        (r,) = by_sha[sha]
        assert r["status"] == "failed" and r["error"] and not r["predictions"], r
    assert not any(r["path"].endswith(".part") for r in rows)
    # the model refresh: the first 120 were scored by v1, everything later by v2, none lost
    first_versions = [by_sha[s][0]["predictions"][0]["model_version"] for s in good]
    assert first_versions.count(v1) >= 120
    assert all(by_sha[s][0]["model_version"] == v2 for s in later), (
        "a later file used the old model"
    )
    print(f"\nall 320 distinct files final {settle:.1f} s after the last write")
    results_before = {r["sha256"]: len(r["predictions"]) for r in rows}

    # 4. stop (SIGTERM): clean exit, the worker child is gone
    phase("checked")
    assert up.stop(signal.SIGTERM) == 0, up.output
    phase("stopped")
    assert "stopped" in up.text

    # 5. files dropped while nothing runs are picked up at the next start; one file queued
    #    by a watcher-only run and deleted before any worker saw it ends as failed
    offline: set[str] = set()
    for i in range(50):
        data = make_image_bytes(3000 + i, "PNG")
        _copy_in(data, staging, inbox / "offline" / f"while_down_{i:02d}.png")
        offline.add(_sha(data))
    watch_only = run_up("--no-workers")
    phase("watch-only started")
    doomed_data = make_image_bytes(4242, "PNG")
    doomed = inbox / "doomed.png"
    _copy_in(doomed_data, staging, doomed)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        queued = {r["sha256"] for r in store.rows() if r["status"] == "queued"}
        if offline | {_sha(doomed_data)} <= queued:
            break
        time.sleep(0.2)
    else:
        raise AssertionError("watcher-only run did not queue the offline files")
    doomed.unlink()
    assert watch_only.stop(signal.SIGTERM) == 0, watch_only.output

    phase("watch-only stopped")
    up2 = run_up("--workers", "2")
    phase("restarted")
    # 6. the worker dies (SIGKILL to its whole process group) as soon as it is scoring:
    #    `up` restarts it and re-queues what it held; nothing is lost or doubled
    worker_pid = int(re.search(r"pid (\d+)\)", up2.output).group(1))
    for i in range(100):  # more work in flight while the worker dies
        data = make_image_bytes(6000 + i, "PNG")
        _copy_in(data, staging, inbox / "after" / f"a_{i:03d}.png")
        offline.add(_sha(data))
    done_before = store.count_done()
    end = time.monotonic() + 120
    while time.monotonic() < end and store.count_done() == done_before:
        time.sleep(0.01)
    # a batch that dies with the worker, made deterministic: 10 images queued in the store
    # whose message never reaches the broker; only `up`'s crash recovery can finish them
    from aidetect.ingest import register_files

    lost_dir = tmp_path / "lost"
    lost_dir.mkdir()
    lost: set[str] = set()
    for i in range(10):
        data = make_image_bytes(7000 + i, "PNG")
        (lost_dir / f"lost_{i}.png").write_bytes(data)
        lost.add(_sha(data))
    assert len(register_files(sorted(lost_dir.iterdir()), root=lost_dir)) == 10
    os.killpg(worker_pid, signal.SIGKILL)
    n_final = sum(
        r["status"] in ("done", "failed") and r["sha256"] in offline for r in store.rows()
    )
    phase(f"worker killed with {n_final}/150 final")
    end = time.monotonic() + 30
    while time.monotonic() < end and "worker restarted" not in up2.output:
        time.sleep(0.1)
    assert "worker restarted" in up2.text, up2.output
    rows = store.wait_final(offline | lost | {_sha(doomed_data)}, timeout=180)
    assert "re-queued" in up2.text
    print("\n".join(line for line in up2.lines if "re-queued" in line or "restart" in line))
    by_sha = {}
    for r in rows:
        by_sha.setdefault(r["sha256"], []).append(r)
    for sha in offline | lost:
        assert len(by_sha[sha]) == 1 and by_sha[sha][0]["status"] == "done"
        assert by_sha[sha][0]["model_version"] == v2
    (gone,) = by_sha[_sha(doomed_data)]
    assert gone["status"] == "failed" and gone["error"], gone
    # nothing from the first run was scored again (not even by the newer model: that is
    # `aidetect scan --rescore`) or doubled by the restarts
    assert len(rows) == 320 + 150 + 10 + 1
    assert {
        r["sha256"]: len(r["predictions"]) for r in rows if r["sha256"] in results_before
    } == results_before
    phase("offline files final")
    assert up2.stop(signal.SIGINT) == 0, up2.output
    phase("stopped again")
