"""The blob layer (aidetect.blobs) against real backends: the store on a SQLite file and on
PostgreSQL, a real redis-server, and a real S3-speaking HTTP server (moto's). Keys once, streams in chunks, TTLs, deletion, sweeps,
settings and unreachable backends as one line."""

from __future__ import annotations

import hashlib
import io
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from images import image_bytes, write_images

from aidetect.blobs import BlobLayer, BlobMissing, BlobsUnavailable, blob_layer
from aidetect.blobs.base import CHUNK_BYTES, image_key
from aidetect.errors import ConfigError, ImageLoadError


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-speaking HTTP server on a free localhost port (moto's ThreadedMotoServer,
    not its in-process mock); skips with the reason when moto is not installed."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"moto[server] is not installed ({exc.name}); pip install -e '.[test]' to test s3://")
    from redis_server import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _s3_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    """AWS settings for the test server and a fresh bucket; returns the bucket's name."""
    import boto3

    for var, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1"), ("AIDETECT_S3_ENDPOINT_URL", endpoint)):
        monkeypatch.setenv(var, value)
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(var, raising=False)
    bucket = f"aidetect-test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["store-sqlite", "store-postgresql", "redis", "s3"])
def layer(request: pytest.FixtureRequest, aidetect_home: Path, monkeypatch: pytest.MonkeyPatch) -> BlobLayer:
    from aidetect.store.engine import reset_engines

    kind = request.param
    if kind == "store-postgresql":
        monkeypatch.setenv("AIDETECT_DATABASE_URL", request.getfixturevalue("pg_url"))
    reset_engines()
    if kind == "redis":
        server = request.getfixturevalue("redis_server")
        monkeypatch.setenv("AIDETECT_BLOBS", server.url)
    elif kind == "s3":
        bucket = _s3_env(monkeypatch, request.getfixturevalue("s3_endpoint"))
        monkeypatch.setenv("AIDETECT_BLOBS", f"s3://{bucket}/some/prefix")
    else:
        monkeypatch.setenv("AIDETECT_BLOBS", "store")
    got = blob_layer()
    assert got is not None
    return got


def test_put_once_stream_in_chunks_delete(layer: BlobLayer) -> None:
    big = hashlib.sha256(b"x").digest() * ((3 * CHUNK_BYTES) // 32 + 1)  # > 3 chunks
    key = image_key(hashlib.sha256(big).hexdigest())
    assert not layer.staging.exists(key)
    assert layer.staging.put(key, io.BytesIO(big), ttl_s=600) is True

    class Boom(io.BytesIO):
        def read(self, *_a: object) -> bytes:  # a second put of the same key reads nothing
            raise AssertionError("read again")

    assert layer.staging.put(key, Boom(), ttl_s=600) is False
    with layer.staging.open(key) as fh:
        first = fh.read(1000)
        rest = fh.read()
    assert first + rest == big
    assert layer.staging.read(key) == big
    with pytest.raises(ImageLoadError, match="over the limit"):
        layer.staging.read(key, max_bytes=CHUNK_BYTES)
    assert layer.staging.put_bytes("img/" + "0" * 64, b"", ttl_s=600)
    assert layer.staging.read("img/" + "0" * 64) == b""
    assert sorted(layer.staging.keys("img/")) == sorted([key, "img/" + "0" * 64])
    assert layer.staging.delete([key, "img/" + "0" * 64]) == 2
    assert not layer.staging.exists(key)
    with pytest.raises(BlobMissing):
        layer.staging.open(key)
    # kept blobs (heatmaps, models) have no TTL
    assert layer.keeping.put_bytes("heatmaps/ab/x.cam.png", b"png")
    assert layer.keeping.read("heatmaps/ab/x.cam.png") == b"png"


def test_many_at_once(layer: BlobLayer) -> None:
    """A batch's heatmaps in one put_many (one transaction in the store), a batch's staged
    bytes in one read_many (pipelines in Redis): the same answers as one by one."""
    big = hashlib.sha256(b"y").digest() * ((2 * CHUNK_BYTES) // 32 + 1)  # 3 chunks
    assert layer.keeping.put_bytes("heatmaps/aa/there.png", b"old")
    items = [("heatmaps/aa/b.png", io.BytesIO(b"b")), ("heatmaps/aa/a.jpg", io.BytesIO(big)),
             ("heatmaps/aa/there.png", io.BytesIO(b"new")), ("heatmaps/aa/b.png", io.BytesIO(b"again"))]
    assert layer.keeping.put_many(items) == [True, True, False, False]
    assert layer.keeping.read("heatmaps/aa/a.jpg") == big and layer.keeping.read("heatmaps/aa/b.png") == b"b"
    assert layer.keeping.read("heatmaps/aa/there.png") == b"old"
    assert layer.keeping.put_many([]) == []

    keys = [image_key(hashlib.sha256(bytes([i])).hexdigest()) for i in range(3)]
    layer.staging.put(keys[0], io.BytesIO(big), ttl_s=600)
    layer.staging.put_bytes(keys[1], b"", ttl_s=600)
    got = layer.staging.read_many([*keys, keys[0]])
    assert set(got) == set(keys) and got[keys[0]] == big and got[keys[1]] == b""
    assert isinstance(got[keys[2]], BlobMissing)
    small = layer.staging.read_many(keys[:2], max_bytes=CHUNK_BYTES)
    assert isinstance(small[keys[0]], ImageLoadError) and "over the limit" in str(small[keys[0]])
    assert small[keys[1]] == b""
    assert layer.staging.delete([*keys, keys[0]]) == 2
    assert not any(layer.staging.exists(k) for k in keys)


def test_generations(layer: BlobLayer) -> None:
    """Every put and touch gives a blob a new generation; delete_if_unchanged deletes only a
    blob whose generation is the one read (a put again after a delete is a new one too)."""
    key = image_key("4" * 64)
    assert layer.staging.touch(key, 600) is False and layer.staging.generations([key]) == {}
    layer.staging.put_bytes(key, b"one", ttl_s=600)
    (g1,) = layer.staging.generations([key]).values()
    assert layer.staging.touch(key, 600) is True
    (g2,) = layer.staging.generations([key]).values()
    assert g2 != g1 and layer.staging.delete_if_unchanged({key: g1}) == 0 and layer.staging.exists(key)
    assert layer.staging.delete_if_unchanged({key: g2}) == 1 and not layer.staging.exists(key)
    layer.staging.put_bytes(key, b"two", ttl_s=600)
    assert layer.staging.delete_if_unchanged({key: g2}) == 0 and layer.staging.read(key) == b"two"


def test_ttl_expires_staged_bytes(layer: BlobLayer) -> None:
    key = image_key("1" * 64)
    layer.staging.put_bytes(key, b"abc", ttl_s=1)
    assert layer.staging.exists(key)
    time.sleep(2.2)
    assert not layer.staging.exists(key)
    assert layer.staging.put_bytes(key, b"abcd", ttl_s=60)  # staged again after expiry
    assert layer.staging.read(key) == b"abcd"


def test_stage_release_and_sweep(layer: BlobLayer, tmp_path: Path) -> None:
    from aidetect.blobs import staging
    from aidetect.ingest import register_files
    from aidetect.store import writes

    paths = write_images(tmp_path / "in", 4)
    dup = tmp_path / "in" / "dup.png"
    dup.write_bytes(paths[0].read_bytes())
    reg = register_files([*paths, dup])
    assert len(reg) == 4
    paths[3].unlink()  # gone before it was staged: failed with the reason, not queued
    out = staging.stage_images(list(reg), layer)
    assert (out.staged, out.present) == (3, 0) and list(out.failed.values()) == ["file not found (deleted before it was staged)"]
    assert staging.stage_images(list(reg), layer).present == 3  # nothing staged twice
    shas = {hashlib.sha256(p.read_bytes()).hexdigest() for p in paths[:3]}
    assert {k[4:] for k in layer.staging.keys("img/")} == shas
    assert staging.read_staged(sorted(shas)[0], layer)
    many = staging.read_staged_many([*sorted(shas), "3" * 64], layer)
    assert all(isinstance(many[s], bytes) and many[s] for s in shas)
    assert isinstance(many["3" * 64], ImageLoadError) and many["3" * 64].reason == staging.GONE
    # one content final, one still waiting: release deletes only the final one
    done_id, waiting_id = list(reg)[0], list(reg)[1]
    writes.mark_failed([done_id], "test")
    assert staging.release(shas, layer) == 1
    # a crash left bytes of a final content and of one never registered: the sweep removes them
    layer.staging.put_bytes(image_key("2" * 64), b"orphan", ttl_s=600)
    writes.mark_failed([list(reg)[2]], "test")
    assert staging.sweep(layer) == 2
    left = {k[4:] for k in layer.staging.keys("img/")}
    assert len(left) == 1 and waiting_id in list(reg)
    with pytest.raises(ImageLoadError, match="staged bytes are gone"):
        staging.read_staged("3" * 64, layer)


def test_changed_file_is_not_staged(layer: BlobLayer, tmp_path: Path) -> None:
    from aidetect.blobs import staging
    from aidetect.ingest import register_files

    (p,) = write_images(tmp_path / "in", 1)
    reg = register_files([p])
    p.write_bytes(image_bytes(777))
    out = staging.stage_images(list(reg), layer)
    assert list(out.failed.values()) == [staging.CHANGED]
    assert list(layer.staging.keys("img/")) == []


def test_settings_and_unreachable(aidetect_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis_server import free_port

    monkeypatch.setenv("AIDETECT_BLOBS", "file")
    assert blob_layer() is None
    monkeypatch.setenv("AIDETECT_BLOBS", "ftp://x")
    with pytest.raises(ConfigError, match="AIDETECT_BLOBS='ftp://x': expected file, store, redis"):
        blob_layer()
    monkeypatch.setenv("AIDETECT_BLOBS", "redis")  # the broker is the embedded one
    with pytest.raises(ConfigError, match="the broker is not Redis"):
        blob_layer()
    monkeypatch.setenv("AIDETECT_BLOBS", f"redis://:secret@127.0.0.1:{free_port()}/0")
    layer = blob_layer()
    assert layer is not None and "secret" not in layer.describe()
    with pytest.raises(BlobsUnavailable, match="blobs: Redis not reachable at redis://127.0.0.1") as err:
        layer.check()
    assert "\n" not in str(err.value) and "secret" not in str(err.value)


@pytest.mark.parametrize("when", ["between the check and the delete", "after the delete"])
def test_rescan_while_the_worker_releases(layer: BlobLayer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          when: str) -> None:
    """The race of issue 21: a worker releases a content's staged bytes (every row final) at
    the moment `scan --rescan` re-registers that content and stages it (the bytes are there
    already, so nothing is put). Provoked deterministically: the rescan runs inside the
    worker's release, after it read the rows' states and before (or after) it deletes. Then
    a host that cannot see the file scores the re-queued image: done, not "staged bytes
    are gone"; and the bytes are released once it is final."""
    from aidetect.blobs import staging
    from aidetect.ingest import register_files, stage_for_workers
    from aidetect.store.status import status_counts
    from aidetect.worker.scoring import BatchScorer

    paths = write_images(tmp_path / "in", 1, side=64)
    ids = list(register_files(paths))
    stage_for_workers(ids)
    rescanned: list[int] = []

    def rescan() -> None:
        again = register_files(paths, rescan=True)  # `scan --rescan`: queued again ...
        assert list(again) == ids and status_counts() == {"queued": 1}
        assert stage_for_workers(list(again)) == ids  # ... and staged (or found staged)
        rescanned.extend(again)

    real_states, real_delete = staging.sql.image_states, type(layer.staging).delete_if_unchanged

    def states_then_rescan(shas):  # noqa: ANN001, ANN202
        out = real_states(shas)  # the worker saw "done"
        if not rescanned and when.startswith("between"):
            rescan()
        return out

    def delete_then_rescan(self, tokens):  # noqa: ANN001, ANN202
        n = real_delete(self, tokens)
        if not rescanned and when.startswith("after"):
            assert n == 1
            rescan()
        return n

    monkeypatch.setattr(staging.sql, "image_states", states_then_rescan)
    monkeypatch.setattr(type(layer.staging), "delete_if_unchanged", delete_then_rescan)
    scorer = BatchScorer()
    first = scorer.score(ids)  # scored from the file; its release meets the rescan
    assert first.done == 1 and rescanned == ids
    assert status_counts() == {"queued": 1}
    assert len(list(layer.staging.keys("img/"))) == 1  # the rescan's bytes survived the release
    paths[0].unlink()  # from here on, a host that cannot see the file
    second = scorer.score(ids, force=True)  # the rescan's task (`--rescan` forces)
    assert (second.done, second.errors) == (1, {}), second.errors
    assert status_counts() == {"done": 1}
    assert list(layer.staging.keys("img/")) == []  # released once final


def test_s3_settings_large_blob_and_unreachable(aidetect_home: Path, monkeypatch: pytest.MonkeyPatch,
                                                s3_endpoint: str) -> None:
    """s3://: a blob over one multipart part travels in parts and reads back whole; a bad
    URL, a missing boto3 and an unreachable server are one line each."""
    from redis_server import free_port

    from aidetect.blobs import s3blobs

    bucket = _s3_env(monkeypatch, s3_endpoint)
    monkeypatch.setenv("AIDETECT_BLOBS", f"s3://{bucket}")
    layer = blob_layer()
    assert layer is not None and layer.staging is layer.keeping and f"s3://{bucket}/" in layer.describe()
    layer.check()
    big = hashlib.sha256(b"z").digest() * ((2 * s3blobs.PART_BYTES + 12345) // 32)  # 3 parts
    key = image_key(hashlib.sha256(big).hexdigest())
    assert layer.staging.put(key, io.BytesIO(big), ttl_s=600) is True
    assert layer.staging.put(key, io.BytesIO(big), ttl_s=600) is False
    # two writers that both saw no object: the server's conditional write keeps the first
    s3 = layer.staging
    assert s3._conditional(s3.client.put_object, Key=s3._name(key), Body=b"other", IfNoneMatch="*") is False  # type: ignore[attr-defined]
    assert layer.staging.read(key) == big
    assert layer.staging.delete([key]) == 1 and list(layer.staging.keys("")) == []

    monkeypatch.setenv("AIDETECT_BLOBS", "s3://No_Such")
    with pytest.raises(ConfigError, match="expected s3://BUCKET"):
        blob_layer()
    monkeypatch.setenv("AIDETECT_BLOBS", f"s3://{bucket}/x")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "boto3", None)  # not installed
        m.delitem(sys.modules, "aidetect.blobs.s3blobs")
        with pytest.raises(ConfigError, match=r"boto3, which is not installed \(pip install 'aidetect\[s3\]'\)"):
            blob_layer()
    monkeypatch.setenv("AIDETECT_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("AIDETECT_BLOBS", f"s3://{bucket}/y")
    layer = blob_layer()
    assert layer is not None
    with pytest.raises(BlobsUnavailable, match="blobs: S3 not reachable at s3://") as err:
        layer.check()
    assert "\n" not in str(err.value)
