"""Settings: environment variables (AIDETECT_*) over an optional TOML file over defaults.

One place for paths and URLs. A config file (``AIDETECT_CONFIG``, default
``$AIDETECT_HOME/config.toml``) may add settings; environment variables always win.
Keys in the file are the variable names without the prefix, lower case
(``broker_url = "redis://..."``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_MODEL_DIR = PACKAGE_DIR / "shipped_models" / "default"


def _default_home() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "aidetect"


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`get_settings`."""

    home: Path
    database_url: str
    broker_url: str
    inbox: Path
    model: Path
    heatmap_dir: Path
    # inference
    batch_size: int = 32
    cam_method: str = "gradcam"
    overlay_max_side: int = 1024
    overlay_alpha: float = 0.45
    tile_min_side: int = 96  # images whose short side is at least this many px are tiled
    max_tiles: int = 16
    torch_threads: int = 0  # >0: torch.set_num_threads(n) when a Detector loads (0 = torch default)
    # pipeline
    watch_polling: bool = False
    watch_debounce_s: float = 0.3
    task_batch_size: int = 16

    def ensure_dirs(self) -> None:
        for d in (self.home, self.inbox, self.heatmap_dir):
            d.mkdir(parents=True, exist_ok=True)


def redact_url(url: str) -> str:
    """``url`` without its credentials (``redis://:secret@host:6379/0`` ->
    ``redis://host:6379/0``): what may be printed, logged or shown in a window."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{tail}"


_ENV_PREFIX = "AIDETECT_"


def _read_file(home: Path) -> dict[str, object]:
    path = Path(os.environ.get("AIDETECT_CONFIG", home / "config.toml"))
    if not path.is_file():
        return {}
    with path.open("rb") as fh:
        return {k.lower(): v for k, v in tomllib.load(fh).items()}


def _coerce(value: object, kind: type) -> object:
    if kind is bool and isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if kind in (int, float, str) and not isinstance(value, kind):
        return kind(value)  # type: ignore[call-arg]
    return value


def get_settings() -> Settings:
    """Read settings now (cheap; not cached, so tests and child processes see env changes)."""
    home = Path(os.environ.get("AIDETECT_HOME") or _default_home()).expanduser()
    filed = _read_file(home)

    def pick(name: str, default: object) -> object:
        env = os.environ.get(_ENV_PREFIX + name.upper())
        if env is not None and env != "":
            return env
        return filed.get(name, default)

    home_s = str(home)
    values: dict[str, object] = {
        "home": home,
        "database_url": pick("database_url", f"sqlite:///{home_s}/aidetect.sqlite"),
        "broker_url": pick("broker_url", f"filesystem://{home_s}/broker"),
        "inbox": Path(str(pick("inbox", home / "inbox"))).expanduser(),
        "model": Path(str(pick("model", SHIPPED_MODEL_DIR))).expanduser(),
        "heatmap_dir": Path(str(pick("heatmap_dir", home / "heatmaps"))).expanduser(),
    }
    for f in fields(Settings):
        if f.name in values:
            continue
        kind = type(f.default)
        values[f.name] = _coerce(pick(f.name, f.default), kind)
    return Settings(**values)  # type: ignore[arg-type]
