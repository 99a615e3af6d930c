"""The result layer's views, filters, sorting and paging in SQL, on both stores."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aidetect.store import read_engine
from aidetect.store.results import ResultFilter, count, fetch_page, iter_rows


def test_sql_filters_sort_and_paging(store_url: str) -> None:
    """The dashboard's view (``history``) on SQLite and on PostgreSQL (skipped with the reason
    when no server answers): paging covers every row once, from either end, with filters."""
    from sqlalchemy import insert

    from aidetect.store import File, Prediction, init_db
    from aidetect.store import Image as Img

    engine = init_db()
    now = datetime.now(UTC)
    n = 500
    with engine.begin() as conn:
        conn.execute(
            insert(Img),
            [
                dict(
                    id=i + 1,
                    key=f"sha256:{i:064x}",
                    sha256=f"{i:064x}",
                    path=f"/d/pic_{i:04d}.jpg",
                    first_seen=now,
                    updated=now - timedelta(minutes=n - i),
                    status="failed" if i % 10 == 0 else "done",
                    error="bad file" if i % 10 == 0 else None,
                )
                for i in range(n)
            ],
        )
        conn.execute(
            insert(Prediction),
            [
                dict(
                    image_id=i + 1,
                    model_version="v",
                    label="ai" if i % 3 else "real",
                    prob_ai=(i % 100) / 100,
                    uncertain=False,
                    created=now - timedelta(minutes=n - i),
                )
                for i in range(n)
                if i % 10
            ],
        )
        conn.execute(
            insert(File),
            [
                dict(path=f"/d/pic_{i:04d}.jpg", image_id=i + 1, first_seen=now, last_seen=now)
                for i in range(n)
            ],
        )
    eng = read_engine(store_url)
    everything = ResultFilter()
    assert count(eng, everything) == n
    pages = [fetch_page(eng, everything, off, 60) for off in range(0, n, 60)]
    keys = [r.key for p in pages for r in p]
    assert len(keys) == n == len(set(keys))  # paging covers every row exactly once
    assert [
        r.key for r in iter_rows(eng, everything, chunk=77)
    ] == keys  # the export's stream
    from_end = [fetch_page(eng, everything, off, 60, total=n) for off in range(0, n, 60)]
    assert [r.key for p in from_end for r in p] == keys  # back half read in reverse: same rows
    by_conf = ResultFilter(sort="confidence")
    assert [r.key for r in fetch_page(eng, by_conf, 430, 70, total=n)] == [
        r.key for r in fetch_page(eng, by_conf, 430, 70)
    ]
    times = [r.time for p in pages for r in p]
    assert times == sorted(times, reverse=True)
    failed = ResultFilter(status="failed")
    assert count(eng, failed) == 50
    assert all(
        r.error == "bad file" and r.label is None for r in fetch_page(eng, failed, 0, 100)
    )
    ai = ResultFilter(label="ai", conf_min=0.8, sort="confidence", descending=False)
    rows = fetch_page(eng, ai, 0, 1000)
    assert rows and all(r.label == "ai" and r.confidence >= 0.8 for r in rows)
    assert [r.confidence for r in rows] == sorted(r.confidence for r in rows)
    assert count(eng, ai) == len(rows)
    named = ResultFilter(text="PIC_012")  # case-insensitive substring of the name
    assert {r.name for r in fetch_page(eng, named, 0, 100)} == {
        f"pic_{i:04d}.jpg" for i in range(120, 130)
    }
    today = ResultFilter(
        since=(now - timedelta(days=3)).date(), until=(now + timedelta(days=1)).date()
    )
    assert count(eng, today) == n
    assert count(eng, ResultFilter(until=(now - timedelta(days=3)).date())) == 0
