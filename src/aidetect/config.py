"""Settings: environment variables (AIDETECT_*) over an optional TOML file over defaults.

One place for paths and URLs. A config file (``AIDETECT_CONFIG``, default
``$AIDETECT_HOME/config.toml``) may add settings; environment variables always win.
Keys in the file are the variable names without the prefix, lower case
(``broker_url = "redis://..."``).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from aidetect.errors import ConfigError

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_MODEL_DIR = PACKAGE_DIR / "shipped_models" / "default"  # Detector v3: CLIP + the CNN, fused
FAST_MODEL_DIR = PACKAGE_DIR / "shipped_models" / "fast"  # Detector v2: the CNN alone (v3's CNN branch)
# The Grad-CAM variants (``aidetect.explain.cam`` implements them; named here so that the CLI
# can offer them without importing torch).
CAM_METHODS: tuple[str, ...] = ("gradcam", "hirescam", "gradcam++", "xgradcam", "layercam")


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
    max_tiles: int = 16  # most views per image (tiles, or the default model's windows)
    precision: str = "auto"  # autocast dtype of inference: auto (bf16 where the CPU has it, fp16 on CUDA), fp32, bf16, fp16
    torch_threads: int = 0  # >0: torch.set_num_threads(n) when a Detector loads (0 = torch default)
    # provenance: a PEM file of root certificates; a C2PA capture manifest whose signer chains
    # to one of them may decide "real" (empty: none trusted, no file is decided real)
    c2pa_trust_anchors: str = ""
    # pipeline
    watch_polling: bool = False
    watch_debounce_s: float = 0.3
    task_batch_size: int = 16
    # several machines (aidetect.blobs): where image bytes, heatmaps and model files travel:
    # "file" (paths on this host or a shared mount), "store" (the database), "redis" (the
    # broker's Redis; or a redis:// URL) for staged image bytes with the store for the rest,
    # "s3://BUCKET[/PREFIX]" (S3-compatible object storage) for everything
    blobs: str = "file"
    blob_ttl_s: int = 86400  # staged image bytes expire after this (a safety net; deleted once scored)
    # AIDETECT_BLOBS=s3://BUCKET[/PREFIX]: the S3-compatible server's URL (MinIO, Ceph, ...;
    # empty: AWS itself). Credentials and region: the standard AWS_* variables or ~/.aws
    s3_endpoint_url: str = ""

    def ensure_dirs(self) -> None:
        """Create the data folders; :class:`ConfigError` (one line, naming the setting) when
        one cannot be created or written."""
        for var, d in (("AIDETECT_HOME", self.home), ("AIDETECT_INBOX", self.inbox),
                       ("AIDETECT_HEATMAP_DIR", self.heatmap_dir)):
            ensure_writable_dir(d, var)


def ensure_writable_dir(path: Path, what: str) -> Path:
    """Create folder ``path`` (and its parents) if needed and check that it can be written;
    :class:`ConfigError` naming ``what`` (a setting or an option) when not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise ConfigError(f"{what}={path}: exists and is not a folder") from None
    except OSError as exc:
        raise ConfigError(f"{what}={path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what}={path}: the folder is not writable")
    return path


def read_trust_anchors(settings: Settings) -> str | None:
    """The PEM text of ``AIDETECT_C2PA_TRUST_ANCHORS`` (None when not set); ConfigError with
    one line when the file cannot be read or holds no certificate."""
    if not settings.c2pa_trust_anchors:
        return None
    path = Path(settings.c2pa_trust_anchors).expanduser()
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"AIDETECT_C2PA_TRUST_ANCHORS={path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(f"AIDETECT_C2PA_TRUST_ANCHORS={path}: holds no PEM certificate")
    return text


def redact_url(url: str) -> str:
    """``url`` without its credentials (``redis://:secret@host:6379/0`` ->
    ``redis://host:6379/0``): what may be printed, logged or shown in a window."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    return f"{scheme}://{netloc.rpartition('@')[2]}{slash}{tail}"


_ENV_PREFIX = "AIDETECT_"


def _config_path(home: Path) -> Path:
    return Path(os.environ.get("AIDETECT_CONFIG") or home / "config.toml").expanduser()


def _read_file(path: Path) -> dict[str, object]:
    """The config file's keys (lower case); :class:`ConfigError` with one line when it
    cannot be read or is not TOML."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as fh:
            return {k.lower(): v for k, v in tomllib.load(fh).items()}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: not valid TOML ({exc}); fix or remove it") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})") from None


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_EXPECTS = {bool: "a boolean (1/0, true/false, yes/no, on/off)", int: "an integer", float: "a number",
            str: "a string"}


def _coerce(value: object, kind: type) -> object:
    """``value`` (a string from the environment, or a TOML value) as ``kind``; ValueError
    when it is not one."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ValueError(value)
    if kind is int:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value.strip())
        raise ValueError(value)
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(value)
        number = float(value.strip() if isinstance(value, str) else value)
        if not math.isfinite(number):
            raise ValueError(value)
        return number
    if kind is str and not isinstance(value, str):
        raise ValueError(value)
    return value


def get_settings() -> Settings:
    """Read settings now (cheap; not cached, so tests and child processes see env changes).

    A value that is not what its setting expects (``AIDETECT_MAX_TILES=abc``), or a config
    file that is not TOML, raises :class:`ConfigError` with one line naming it."""
    home = Path(os.environ.get("AIDETECT_HOME") or _default_home()).expanduser()
    config_path = _config_path(home)
    filed = _read_file(config_path)

    def pick(name: str, default: object, kind: type = str) -> object:
        var = _ENV_PREFIX + name.upper()
        env = os.environ.get(var)
        if env is not None and env != "":
            value, where = env, f"{var}={env!r}"
        elif name in filed:
            value, where = filed[name], f"config file {config_path}: {name} = {filed[name]!r}"
        else:
            return default
        try:
            return _coerce(value, kind)
        except ValueError:
            hint = f" (default {default})" if kind is not str else ""
            raise ConfigError(f"{where}: expected {_EXPECTS[kind]}{hint}") from None

    def folder(name: str, default: Path) -> Path:
        return Path(str(pick(name, default))).expanduser()

    home_s = str(home)
    values: dict[str, object] = {
        "home": home,
        "database_url": pick("database_url", f"sqlite:///{home_s}/aidetect.sqlite"),
        "broker_url": pick("broker_url", f"filesystem://{home_s}/broker"),
        "inbox": folder("inbox", home / "inbox"),
        "model": folder("model", SHIPPED_MODEL_DIR),
        "heatmap_dir": folder("heatmap_dir", home / "heatmaps"),
    }
    for f in fields(Settings):
        if f.name in values:
            continue
        values[f.name] = pick(f.name, f.default, type(f.default))
    return Settings(**values)  # type: ignore[arg-type]


def _card_version(model_dir: Path) -> str | None:
    try:
        card = json.loads((model_dir / "card.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(card.get("version")) if isinstance(card, dict) and card.get("version") else None


def model_setting_note(settings: Settings, active_path: str | Path, active_version: str | None = None) -> str | None:
    """One line to print when ``AIDETECT_MODEL`` names another model than the registered
    active one (``active_path``), which is what the workers, ``scan`` and ``up`` score with:
    AIDETECT_MODEL (or the shipped model) is only registered on a store's first run. None
    when AIDETECT_MODEL is not set, or names the active model (the same folder, or a copy
    with the same version)."""
    configured = settings.model
    active = Path(active_path)
    if configured == SHIPPED_MODEL_DIR:
        return None  # not set: nothing to explain
    if configured.resolve() == active.resolve():
        return None
    used = f"the registered active model {active_version + ' ' if active_version else ''}({active})"
    if not configured.exists():
        return (f"AIDETECT_MODEL={configured} does not exist; using {used} "
                "(`aidetect models promote VERSION` changes it)")
    version = _card_version(configured)
    if version is not None and version == (active_version or _card_version(active)):
        return None  # the same model, registered from a copy
    return (f"AIDETECT_MODEL={configured} is not the active model and is not used; using {used} "
            f"(`aidetect models register --activate {configured}` switches to it)")
