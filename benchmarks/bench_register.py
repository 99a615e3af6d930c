"""Registration cost (``aidetect.store.writes.register``) for 1k / 10k / 100k files, on SQLite.

For each N, in a fresh store: the first registration of N new files (all queued), then a
``--rescan`` of the same N files once every one has a prediction of the active version (the
case that locked out a running ``up``: every row re-queued). Hashing is not measured (the
facts are made up: distinct sha256 per path); the figures are the store's own work.

Printed per N: seconds for each of the two registrations, microseconds per file, and the
longest single write transaction (how long another writer, e.g. the running inbox, may wait
for the lock: the goal is well under the 30 s busy timeout whatever N is).

    python benchmarks/bench_register.py                 # 1000 10000 100000
    python benchmarks/bench_register.py --n 1000 10000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def facts_for(n: int, root: str):  # noqa: ANN201 - FileFacts list
    from aidetect.store.writes import FileFacts

    return [
        FileFacts(f"{root}/img_{i:06d}.png", hashlib.sha256(f"{root}/{i}".encode()).hexdigest(), size=1000 + i, mtime=1.0)
        for i in range(n)
    ]


def mark_all_scored(version: str) -> None:
    """Give every image a prediction of ``version`` and status done (as after a finished scan)."""
    from sqlalchemy import insert, select, update

    from aidetect.store.engine import session_scope
    from aidetect.store.tables import Image, Prediction, utcnow

    with session_scope() as s:
        ids = list(s.scalars(select(Image.id)).all())
        now = utcnow()
        for i in range(0, len(ids), 5000):
            s.execute(insert(Prediction), [
                {"image_id": j, "model_version": version, "label": "real", "prob_ai": 0.1, "uncertain": False, "created": now}
                for j in ids[i : i + 5000]
            ])
        s.execute(update(Image).values(status="done"))


class LongestTransaction:
    """The longest BEGIN -> COMMIT of the writer engine while active (SQLAlchemy events)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._t0: float | None = None

    def __enter__(self) -> LongestTransaction:
        from sqlalchemy import event

        from aidetect.store.engine import get_engine

        self.engine = get_engine()
        event.listen(self.engine, "begin", self._begin)
        event.listen(self.engine, "commit", self._end)
        event.listen(self.engine, "rollback", self._end)
        return self

    def _begin(self, _conn) -> None:  # noqa: ANN001
        self._t0 = time.perf_counter()

    def _end(self, _conn) -> None:  # noqa: ANN001
        if self._t0 is not None:
            self.longest = max(self.longest, time.perf_counter() - self._t0)
            self._t0 = None

    def __exit__(self, *exc: object) -> None:
        from sqlalchemy import event

        event.remove(self.engine, "begin", self._begin)
        event.remove(self.engine, "commit", self._end)
        event.remove(self.engine, "rollback", self._end)


def run(n: int, tmp: Path) -> dict[str, float]:
    os.environ["AIDETECT_HOME"] = str(tmp / f"home{n}")
    from aidetect.store import writes
    from aidetect.store.engine import reset_engines
    from aidetect.store.migrate import init_db

    reset_engines()
    init_db()
    version = "bench-v1"
    facts = facts_for(n, str(tmp / f"files{n}"))
    out: dict[str, float] = {}
    with LongestTransaction() as lt:
        t0 = time.perf_counter()
        reg = writes.register(facts, version)
        out["first_s"] = time.perf_counter() - t0
    out["first_lock_s"] = lt.longest
    assert len(reg) == n, (len(reg), n)
    mark_all_scored(version)
    with LongestTransaction() as lt:
        t0 = time.perf_counter()
        reg = writes.register(facts, version, rescan=True)
        out["rescan_s"] = time.perf_counter() - t0
    out["rescan_lock_s"] = lt.longest
    assert len(reg) == n, (len(reg), n)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    args = ap.parse_args()
    print(f"{'files':>8} {'first s':>9} {'us/file':>8} {'rescan s':>9} {'us/file':>8} {'longest lock s':>15}")
    with tempfile.TemporaryDirectory() as d:
        for n in args.n:
            r = run(n, Path(d))
            print(f"{n:>8} {r['first_s']:>9.2f} {r['first_s'] / n * 1e6:>8.0f} {r['rescan_s']:>9.2f} "
                  f"{r['rescan_s'] / n * 1e6:>8.0f} {max(r['first_lock_s'], r['rescan_lock_s']):>15.2f}", flush=True)


if __name__ == "__main__":
    main()
