"""Assemble README.md from README.head.md and the per-part sections in docs/*.md.

Usage: python scripts/build_readme.py   (run after editing any docs/<part>.md)
Section headings are shifted so each part starts at level 2; image links are made
relative to the repository root.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARTS = ["watcher", "detector", "inference", "pipeline", "gui"]


def shifted(text: str) -> str:
    lines = text.splitlines()
    top = next(len(m.group(1)) for line in lines if (m := re.match(r"^(#+) ", line)))
    shift = 2 - top
    out, fenced = [], False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        m = re.match(r"^(#+) ", line)
        if m and not fenced and shift:
            line = "#" * (len(m.group(1)) + shift) + line[len(m.group(1)) :]
        out.append(line)
    body = "\n".join(out)
    return re.sub(r"\]\((?!https?:|docs/|#)([^)]+)\)", r"](docs/\1)", body)


def main() -> None:
    head = (ROOT / "docs" / "README.head.md").read_text(encoding="utf-8").rstrip()
    parts = [shifted((ROOT / "docs" / f"{p}.md").read_text(encoding="utf-8")).strip() for p in PARTS]
    (ROOT / "README.md").write_text(head + "\n\n" + "\n\n".join(parts) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
