"""Which paths in the inbox are candidates at all (not temporary, not hidden, not ours)."""

from __future__ import annotations

from pathlib import Path

# Suffixes that writers use for files still being written; such a file is acted on only
# once it is renamed to its final name (a ``moved`` event).
TEMP_SUFFIXES = (".part", ".tmp", ".temp", ".crdownload", ".partial", ".download", ".swp", "~")
# Sub-folders of the inbox that the watcher itself fills (optional move of scored files).
OUTPUT_DIRS = ("processed", "failed")


def is_temporary(name: str) -> bool:
    """True for names a writer uses while a file is incomplete, and for dot-files."""
    lower = name.lower()
    return name.startswith(".") or lower.endswith(TEMP_SUFFIXES)


def is_candidate(path: str | Path, root: str | Path, skip_output_dirs: bool = True) -> bool:
    """A file under ``root`` that the watcher should score once it is complete.

    Hidden folders on the way, temporary names and (when files are moved after scoring)
    the ``processed/`` and ``failed/`` folders are skipped.
    """
    p = Path(path)
    try:
        rel = p.relative_to(root)
    except ValueError:
        return False
    parts = rel.parts
    if not parts:
        return False
    if any(part.startswith(".") for part in parts[:-1]):
        return False
    if skip_output_dirs and len(parts) > 1 and parts[0] in OUTPUT_DIRS:
        return False
    return not is_temporary(parts[-1])
