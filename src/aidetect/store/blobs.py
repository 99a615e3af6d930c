"""Blobs kept in the store (tables ``blobs`` + ``blob_chunks``): the SQL behind the ``store``
backend of :mod:`aidetect.blobs`. A blob is written in one transaction (its row first, so
that a second writer of the same key waits and then finds it: nothing is stored twice) and
read one chunk per query, so a large image never sits in one value or one result set."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import BinaryIO

from sqlalchemy import bindparam, delete, select, update

from aidetect.store.engine import read_engine, session_scope
from aidetect.store.migrate import init_db
from aidetect.store.status import as_utc
from aidetect.store.tables import Blob, BlobChunk, Image, utcnow
from aidetect.store.writes import _insert, chunks


def put_blob(key: str, stream: BinaryIO, chunk_size: int, ttl_s: float | None = None) -> bool:
    """Store the bytes of ``stream`` under ``key`` in chunks of ``chunk_size``; False (and
    nothing read) when ``key`` is already there. ``ttl_s``: the blob expires (readers stop
    seeing it, :func:`delete_expired` removes it); None keeps it."""
    return put_blobs([(key, stream)], chunk_size, ttl_s)[0]


PENDING_BYTES = 16 << 20  # chunk rows sent per statement (executemany) up to this size: memory stays bounded


def put_blobs(items: Sequence[tuple[str, BinaryIO]], chunk_size: int, ttl_s: float | None = None) -> list[bool]:
    """:func:`put_blob` for several blobs in one transaction (a batch's heatmaps: one commit
    and a few statements, not five statements and a commit per file). Keys are taken in
    sorted order, so two writers of overlapping keys wait for each other, never deadlock.
    Returns, per item, whether it was stored now (False: there already, stream not read)."""
    if not items:
        return []
    init_db()
    now = utcnow()
    expires = now + timedelta(seconds=ttl_s) if ttl_s else None
    keys = sorted({k for k, _s in items})
    stored: set[str] = set()
    with session_scope() as s:
        for part in chunks(keys):
            s.execute(delete(Blob).where(Blob.key.in_(part), Blob.expires.is_not(None), Blob.expires <= now))
        ins = _insert(s)
        for part in chunks(keys):
            stmt = ins(Blob).values([{"key": k, "size": 0, "chunks": 0, "created": now, "expires": expires} for k in part])
            # a key there already (or being written by another transaction, which we wait for) is left alone
            stored.update(s.scalars(stmt.on_conflict_do_nothing(index_elements=["key"]).returning(Blob.key)).all())
        rows: list[dict[str, object]] = []
        pending = 0
        sizes: list[dict[str, object]] = []
        todo = set(stored)
        for key, stream in sorted(items, key=lambda kv: kv[0]):
            if key not in todo:
                continue
            todo.discard(key)  # a key given twice is stored once
            seq = size = 0
            while data := stream.read(chunk_size):
                rows.append({"key": key, "seq": seq, "data": data})
                seq += 1
                size += len(data)
                pending += len(data)
                if pending >= PENDING_BYTES:
                    s.execute(BlobChunk.__table__.insert(), rows)
                    rows, pending = [], 0
            sizes.append({"b_key": key, "b_size": size, "b_chunks": seq})
        if rows:
            s.execute(BlobChunk.__table__.insert(), rows)
        if sizes:
            blobs_t = Blob.__table__
            s.execute(
                update(blobs_t).where(blobs_t.c.key == bindparam("b_key"))
                .values(size=bindparam("b_size"), chunks=bindparam("b_chunks")),
                sizes,
            )
    seen: set[str] = set()
    out = []
    for key, _stream in items:
        out.append(key in stored and key not in seen)
        seen.add(key)
    return out


def blob_info(key: str) -> tuple[int, int] | None:
    """(size, chunks) of a live blob, or None."""
    init_db()
    now = utcnow()
    with read_engine().connect() as conn:
        row = conn.execute(select(Blob.size, Blob.chunks, Blob.expires).where(Blob.key == key)).first()
    if row is None or (row.expires is not None and as_utc(row.expires) <= now):
        return None
    return int(row.size), int(row.chunks)


def read_chunk(key: str, seq: int) -> bytes | None:
    with read_engine().connect() as conn:
        data = conn.execute(select(BlobChunk.data).where(BlobChunk.key == key, BlobChunk.seq == seq)).scalar()
    return bytes(data) if data is not None else None


def touch_blob(key: str, ttl_s: float | None = None) -> bool:
    """A new generation for a live blob (``created`` is the generation: set at every put and
    touch) and, with ``ttl_s``, a new expiry; False when there is none. On PostgreSQL this
    waits for a :func:`delete_if_unchanged` holding the row, then finds it gone."""
    init_db()
    now = utcnow()
    values: dict[str, object] = {"created": now}
    if ttl_s:
        values["expires"] = now + timedelta(seconds=ttl_s)
    with session_scope() as s:
        live = (Blob.expires.is_(None)) | (Blob.expires > now)
        return bool(s.execute(update(Blob).where(Blob.key == key, live).values(**values)).rowcount)


def generations(keys: Sequence[str]) -> dict[str, object]:
    """{key: generation} of the live blobs among ``keys``."""
    init_db()
    now = utcnow()
    out: dict[str, object] = {}
    with read_engine().connect() as conn:
        for part in chunks(sorted(set(keys))):
            rows = conn.execute(select(Blob.key, Blob.created, Blob.expires).where(Blob.key.in_(part))).all()
            out.update((r.key, r.created) for r in rows if r.expires is None or as_utc(r.expires) > now)
    return out


def delete_if_unchanged(tokens: Mapping[str, object]) -> int:
    """Delete the blobs whose generation is still ``tokens[key]``, in one transaction that
    locks their rows first (FOR UPDATE; SQLite's write transaction is exclusive anyway), so
    a concurrent :func:`touch_blob` either came first (kept) or waits and finds it gone."""
    if not tokens:
        return 0
    init_db()
    gone: list[str] = []
    with session_scope() as s:
        for part in chunks(sorted(tokens)):
            rows = s.execute(select(Blob.key, Blob.created).where(Blob.key.in_(part)).with_for_update()).all()
            gone.extend(r.key for r in rows if r.created == tokens[r.key])
        for part in chunks(gone):
            s.execute(delete(BlobChunk).where(BlobChunk.key.in_(part)))
            s.execute(delete(Blob).where(Blob.key.in_(part)))
    return len(gone)


def delete_blobs(keys: Sequence[str]) -> int:
    """Delete ``keys`` (their chunks with them); returns how many were there."""
    if not keys:
        return 0
    init_db()
    n = 0
    with session_scope() as s:
        for part in chunks(list(keys)):
            s.execute(delete(BlobChunk).where(BlobChunk.key.in_(part)))
            n += s.execute(delete(Blob).where(Blob.key.in_(part))).rowcount or 0
    return n


def blob_keys(prefix: str) -> Iterator[str]:
    """Keys starting with ``prefix`` (expired ones included: a sweep removes them)."""
    init_db()
    with read_engine().connect() as conn:
        rows = conn.execute(select(Blob.key).where(Blob.key.startswith(prefix, autoescape=True)).order_by(Blob.key))
        yield from (r[0] for r in rows.all())


def delete_expired() -> int:
    init_db()
    with session_scope() as s:
        keys = list(s.scalars(select(Blob.key).where(Blob.expires.is_not(None), Blob.expires <= utcnow())).all())
    return delete_blobs(keys)


def image_states(shas: Iterable[str]) -> dict[str, str]:
    """{sha256: status} of the stored images with these contents (missing ones left out)."""
    init_db()
    out: dict[str, str] = {}
    with read_engine().connect() as conn:
        for part in chunks(sorted(set(shas))):
            out.update(conn.execute(select(Image.sha256, Image.status).where(Image.sha256.in_(part))).all())
    return out


def image_sources(image_ids: Sequence[int]) -> list[tuple[int, str, str | None, str]]:
    """(image id, path, sha256, status) of ``image_ids``, in id order."""
    init_db()
    out: list[tuple[int, str, str | None, str]] = []
    with read_engine().connect() as conn:
        for part in chunks(sorted({int(i) for i in image_ids})):
            stmt = select(Image.id, Image.path, Image.sha256, Image.status).where(Image.id.in_(part))
            out.extend((int(r[0]), r[1], r[2], r[3]) for r in conn.execute(stmt).all())
    return out
