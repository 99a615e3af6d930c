"""Assemble README.md from docs/README.head.md and a list of the documents in docs/.

Usage: python scripts/build_readme.py   (run after editing docs/README.head.md or a document's title)
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["watcher", "detector", "inference", "pipeline", "gui"]


DESCRIPTIONS = {
    "watcher": "the watched inbox, `aidetect up`, exactly-once registration, models CLI, docker",
    "detector": "the models, training data and splits, recipes, every measured result, what did not help",
    "inference": "the Detector: crop plan, routing of small images, out-of-distribution checks, heatmaps, throughput",
    "pipeline": "Celery workers, the store, `scan` and `results`, failure handling",
    "gui": "the dashboard",
}


def main() -> None:
    """README = the head (what, two commands, commands, settings, JSON, architecture) and a list
    of the documents; each detail lives once, in docs/."""
    head = (ROOT / "docs" / "README.head.md").read_text(encoding="utf-8").rstrip()
    lines = ["## Documentation", ""]
    for p in PARTS:
        title = next(line.lstrip("#").strip() for line in (ROOT / "docs" / f"{p}.md").read_text(encoding="utf-8").splitlines()
                     if line.startswith("#"))
        lines.append(f"- [{title}](docs/{p}.md): {DESCRIPTIONS[p]}")
    lines += ["- [Internal interfaces](docs/INTERFACES.md): the contracts between the parts", ""]
    (ROOT / "README.md").write_text(head + "\n\n" + "\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main()
