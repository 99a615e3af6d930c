"""Build the ``extra`` training set from its list of files (``shared/data/extra/MANIFEST.csv``).

The manifest names each file by repository, commit, path and SHA-256; this module reads the
bytes from local copies of those repositories, checks every hash, decodes every image (with a
pixel cap) and writes an image folder plus an index:

``OUT/images/<label>/<sha256[:16]>.<ext>``
    the original bytes, unchanged (``ext`` from the decoded format: jpg, png, webp, ...);
``OUT/index.csv``
    one row per file: :data:`INDEX_COLUMNS` (``path`` is relative to ``OUT``);
``OUT/images/MANIFEST.csv``
    ``path`` (relative to ``images/``) and ``source_path`` = the file's ``group``, the layout
    :func:`aidetect.trainer.sources.group_keys` reads, so ``aidetect train --data
    extra=OUT/images --group-split 70,15,15`` keeps every group on one side;
``OUT/skipped.csv``
    every manifest row that was not built, with its reason (:data:`SKIP_REASONS`).

A repository may be a working tree (a clone) or a bare git directory (what the search tool's
``fetch`` lays down: ``OWNER+NAME/repo``). Blobs come from ``git cat-file --batch`` at the
manifest's commit, or at ``HEAD`` when a partial snapshot lacks that commit or that path; the
SHA-256 check makes either safe. Re-running skips files already in ``OUT`` with the right hash.

**Groups** (the unit to split by, so that near-copies never straddle train and test): first a
rule on the path (:data:`GROUP_RULES`: several outputs of one case, prompt or scene share a
group; otherwise the file is its own group), then files with the same SHA-256, then files
whose 64-bit DCT perceptual hashes are within ``near_dup_bits`` bits (10, the threshold the
manifest itself was filtered with) *and* whose 16x16 grey thumbnails correlate at 0.8 or more
are joined, transitively. A group is named ``OWNER/NAME:key``; a joined group takes the
smallest name of its members.

Core only: Pillow, numpy, scipy and git; no torch, Celery, SQL or Tk.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aidetect.errors import ConfigError, DataSourceError

MANIFEST_COLUMNS = ("label", "generator", "repo", "commit", "source_path", "sha256", "width", "height",
                    "format", "bytes", "licence")
INDEX_COLUMNS = ("path", "label", "generator", "group", "source", "sha256", "width", "height", "format",
                 "bytes", "source_path", "commit", "licence", "phash")
LABELS = ("ai", "real")
SKIP_REASONS = {
    "repo missing": "no copy of the repository under --repos or --repo",
    "blob missing": "the file is absent from the copy (partial snapshot or other commit)",
    "lfs pointer": "the copy holds a Git LFS pointer, not the file",
    "sha256 mismatch": "the bytes differ from the manifest's SHA-256",
    "too many pixels": "width x height above --max-pixels",
    "not an image": "Pillow cannot decode it",
}
DEFAULT_MAX_PIXELS = 40_000_000
DEFAULT_NEAR_DUP_BITS = 10
NEAR_DUP_MIN_CORR = 0.8
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "TIFF": "tif", "BMP": "bmp",
              "MPO": "jpg", "AVIF": "avif", "HEIF": "heic"}
_SHA = re.compile(r"^[0-9a-f]{64}$")


# -- the manifest -----------------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestRow:
    label: str
    generator: str
    repo: str
    commit: str
    source_path: str
    sha256: str
    width: int
    height: int
    format: str
    bytes: int
    licence: str


def read_manifest(path: str | Path) -> list[ManifestRow]:
    """The rows of a manifest; a :class:`DataSourceError` (one line) when the file is missing,
    lacks a column, or a row has an unknown label, a malformed SHA-256 or repository name."""
    path = Path(path)
    try:
        fh = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DataSourceError(f"manifest {path}: {exc.strerror or exc}") from None
    rows: list[ManifestRow] = []
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MANIFEST_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataSourceError(f"manifest {path}: missing column(s) {', '.join(missing)}")
        for n, r in enumerate(reader, start=2):
            where = f"manifest {path} line {n}"
            if r["label"] not in LABELS:
                raise DataSourceError(f"{where}: label {r['label']!r} is not one of {', '.join(LABELS)}")
            sha = (r["sha256"] or "").lower()
            if not _SHA.match(sha):
                raise DataSourceError(f"{where}: sha256 {r['sha256']!r} is not 64 hex digits")
            if (r["repo"] or "").count("/") != 1 or not r["source_path"]:
                raise DataSourceError(f"{where}: repo {r['repo']!r} / source_path {r['source_path']!r}")
            try:
                rows.append(ManifestRow(r["label"], r["generator"] or "", r["repo"], (r["commit"] or "").strip(),
                                        r["source_path"], sha, int(r["width"] or 0), int(r["height"] or 0),
                                        r["format"] or "", int(r["bytes"] or 0), r["licence"] or ""))
            except ValueError:
                raise DataSourceError(f"{where}: width/height/bytes are not integers") from None
    if not rows:
        raise DataSourceError(f"manifest {path}: no rows")
    return rows


# -- repositories -----------------------------------------------------------------------------
def is_bare_git(path: Path) -> bool:
    return (path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").exists()


def candidate_paths(repo: str, repos_dir: Path) -> list[Path]:
    """Where a copy of ``OWNER/NAME`` may lie under ``repos_dir``: the fetch mirror's
    ``OWNER+NAME/repo`` and ``OWNER+NAME``, a ``git clone`` into ``OWNER/NAME`` or ``NAME``,
    each also with ``.git``."""
    owner, name = repo.split("/")
    plus = f"{owner}+{name}"
    return [repos_dir / plus / "repo", repos_dir / plus, repos_dir / f"{plus}.git", repos_dir / owner / name,
            repos_dir / owner / f"{name}.git", repos_dir / name, repos_dir / f"{name}.git"]


def find_repo(repo: str, repos_dir: Path | None, overrides: dict[str, Path]) -> Path | None:
    if repo in overrides:
        return overrides[repo]
    if repos_dir is None:
        return None
    for p in candidate_paths(repo, repos_dir):
        if p.is_dir():
            return p
    return None


class GitBlobs:
    """Blobs of one git directory through a single ``git cat-file --batch`` process."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = git_dir
        self._proc: subprocess.Popen[bytes] | None = None

    def _git(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], capture_output=True, check=False)

    def has_commit(self, commit: str) -> bool:
        return bool(commit) and self._git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0

    def head(self) -> str | None:
        out = self._git("rev-parse", "--verify", "-q", "HEAD^{commit}")
        if out.returncode != 0:
            return None
        return out.stdout.decode().strip() or None

    def read(self, spec: str) -> bytes | None:
        """The blob named ``COMMIT:path``, or None when git cannot produce it."""
        if "\n" in spec:
            return None
        if self._proc is None:
            self._proc = subprocess.Popen(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(spec.encode("utf-8") + b"\n")
            self._proc.stdin.flush()
            header = self._proc.stdout.readline().decode("utf-8", "replace").split()
            if len(header) != 3:  # "<spec> missing" / "ambiguous", or a dead process
                return None
            size = int(header[2])
            data = self._proc.stdout.read(size)
            self._proc.stdout.read(1)  # the newline after the contents
        except (OSError, ValueError):  # git died (corrupt pack, killed): this file is missing
            self.close()
            return None
        return data if header[1] == "blob" and len(data) == size else None

    def close(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                if proc.stdin:
                    proc.stdin.close()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()


class RepoCopy:
    """One local copy of a repository: a bare git directory, or a working tree whose files are
    read from disk first and, where a ``.git`` is present, from its objects next."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bare = is_bare_git(path)
        git_dir = path if self.bare else path / ".git"
        self.git = GitBlobs(git_dir) if self.bare or git_dir.exists() else None
        self.kind = "bare git" if self.bare else "work tree" + (" + git" if self.git else "")
        self.head = self.git.head() if self.git else None
        self._commits: dict[str, bool] = {}
        self.fallbacks: set[str] = set()  # manifest commits absent here (HEAD used instead)

    def read(self, commit: str, source_path: str, want_sha: str) -> bytes | None:
        """The file's bytes, the first candidate whose SHA-256 is ``want_sha``; failing that the
        first candidate found (the caller reports the mismatch); None when nothing was found."""
        found: bytes | None = None
        for data in self._candidates(commit, source_path):
            if hashlib.sha256(data).hexdigest() == want_sha:
                return data
            found = data if found is None else found
        return found

    def _candidates(self, commit: str, source_path: str) -> Iterable[bytes]:
        if not self.bare:
            f = self.path / source_path
            if f.is_file():
                yield f.read_bytes()
        if self.git is None:
            return
        specs = []
        if commit:
            if commit not in self._commits:
                self._commits[commit] = self.git.has_commit(commit)
            if self._commits[commit]:
                specs.append(f"{commit}:{source_path}")
            else:
                self.fallbacks.add(commit)
        if self.head and self.head != commit:
            specs.append(f"{self.head}:{source_path}")
        for spec in specs:
            data = self.git.read(spec)
            if data is not None:
                yield data

    def close(self) -> None:
        if self.git:
            self.git.close()


# -- groups -----------------------------------------------------------------------------------
def _first(pattern: str, fmt: str) -> Callable[[str], str | None]:
    rx = re.compile(pattern)

    def rule(path: str) -> str | None:
        m = rx.search(path)
        return fmt.format(*m.groups()) if m else None

    return rule


# repo -> rule on source_path giving the group key (None: the file is its own group)
GROUP_RULES: dict[str, Callable[[str], str | None]] = {
    # cases/N/<id>.output.K.ext: the outputs of one case (one prompt)
    "muset-ai/awesome-nano-banana-pro": _first(r"^(cases/[^/]+)/", "{}"),
    # images/N.ext, images/N-2.ext, ...: the images of case N
    "songguoxs/gpt4o-image-prompts": _first(r"^images/(\d+)(?:-\d+)?\.\w+$", "case {}"),
    # prompt_NN / edit_NN through several providers (fal, replicate, wavespeed, runware) and models
    "jyoung105/yetter": _first(r"/((?:prompt|edit)_\d+)_", "{}"),
    # one folder per model family; its examples share prompts and inputs (dev vs checkpoint, ...)
    "comfyanonymous/ComfyUI_examples": _first(r"^([^/]+)/", "{}"),
    # <Style>_<model>.jpg: one style prompt through four models
    "preangelleo/illustration-style-samples": _first(r"/([^/]+)_(?:flux-1\.1-pro-ultra|flux-dev|nano-banana|qwen-image)\.\w+$", "{}"),
    # <author>_<prompt>_K.jpg: the K images of one Midjourney grid
    "Pixmind-io/awesome-midjourney-v7-example-prompts": _first(r"/([^/]+)_\d+\.\w+$", "{}"),
    # .../<scene>/images/NNNN.jpg: views of one building
    "openMVG/SfM_quality_evaluation": _first(r"^(.*)/images/[^/]+$", "{}"),
    # jpg/<topic>/...: hdr on/off pairs, orientation copies, one GPS trip; top-level files alone
    "ianare/exif-samples": _first(r"^(jpg/[^/]+)/", "{}"),
}


def path_group(repo: str, source_path: str) -> str:
    rule = GROUP_RULES.get(repo)
    key = rule(source_path) if rule else None
    return f"{repo}:{key if key is not None else source_path}"


class _Union:
    def __init__(self, items: Iterable[str]) -> None:
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def join(self, a: str, b: str) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        lo, hi = sorted((ra, rb))
        self.parent[hi] = lo
        return True


def assign_groups(rows: list[dict], near_dup_bits: int = DEFAULT_NEAR_DUP_BITS,
                  confirm: Callable[[dict, dict], bool] | None = None) -> tuple[int, int]:
    """Set each row's ``group`` from its path rule (already in ``row["group"]``), its SHA-256 and
    near-duplicate perceptual hashes (``row["phash"]``, 16 hex digits): a pair within
    ``near_dup_bits`` bits is joined when ``confirm(a, b)`` (if given) agrees. Returns (joins
    made, candidate pairs that ``confirm`` turned down). ``near_dup_bits < 0``: no hash joins."""
    u = _Union(r["group"] for r in rows)
    by_sha: dict[str, str] = {}
    for r in rows:
        if r["sha256"] in by_sha:
            u.join(by_sha[r["sha256"]], r["group"])
        by_sha.setdefault(r["sha256"], r["group"])
    joins = rejected = 0
    hashed = [r for r in rows if r.get("phash")]
    if near_dup_bits >= 0 and len(hashed) > 1:
        h = np.array([int(r["phash"], 16) for r in hashed], dtype=np.uint64)
        for i in range(len(h) - 1):
            d = np.bitwise_count(h[i + 1:] ^ h[i])
            for j in np.flatnonzero(d <= near_dup_bits):
                a, b = hashed[i], hashed[i + 1 + int(j)]
                if u.find(a["group"]) == u.find(b["group"]):
                    continue
                if confirm is not None and not confirm(a, b):
                    rejected += 1
                    continue
                joins += u.join(a["group"], b["group"])
    for r in rows:
        r["group"] = u.find(r["group"])
    return joins, rejected


def thumbnail(im) -> np.ndarray:
    """A 16x16 grey thumbnail, zero mean and unit variance (256 values)."""
    from PIL import Image

    a = np.asarray(im.convert("L").resize((16, 16), Image.Resampling.BOX, reducing_gap=2.0), dtype=np.float64).ravel()
    return (a - a.mean()) / (a.std() + 1e-6)


def thumbnail_confirm(root: Path, min_corr: float = NEAR_DUP_MIN_CORR) -> Callable[[dict, dict], bool]:
    """``confirm`` for :func:`assign_groups`: the two files' 16x16 grey thumbnails correlate at
    ``min_corr`` or more. A 64-bit DCT hash alone joins unrelated pictures at 10 bits (measured
    on extra: a FLUX render and a cartoon, a bird and a dog; their thumbnails correlate 0.2-0.6,
    true near-copies 0.83-0.99)."""
    from PIL import Image

    cache: dict[str, np.ndarray | None] = {}

    def thumb(row: dict) -> np.ndarray | None:
        if row["path"] not in cache:
            try:
                with Image.open(root / row["path"]) as im:
                    cache[row["path"]] = thumbnail(im)
            except Exception:  # noqa: BLE001
                cache[row["path"]] = None
        return cache[row["path"]]

    def confirm(a: dict, b: dict) -> bool:
        ta, tb = thumb(a), thumb(b)
        return ta is not None and tb is not None and float(ta @ tb) / ta.size >= min_corr

    return confirm


def phash(im) -> str:
    """64-bit DCT perceptual hash of a Pillow image, as 16 hex digits."""
    from PIL import Image
    from scipy.fft import dctn

    grey = im.convert("L").resize((32, 32), Image.Resampling.BOX, reducing_gap=2.0)
    coeffs = dctn(np.asarray(grey, dtype=np.float64), norm="ortho")[:8, :8].ravel()
    bits = coeffs > np.median(coeffs[1:])
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


# -- decoding ---------------------------------------------------------------------------------
@dataclass
class Decoded:
    format: str
    width: int
    height: int
    phash: str


def decode(data: bytes, max_pixels: int) -> Decoded | str:
    """Decode fully (first frame) with Pillow; the skip reason as a string when it fails."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w * h > max_pixels:
                return "too many pixels"
            fmt = im.format or ""
            im.load()
            return Decoded(fmt, w, h, phash(im))
    except Image.DecompressionBombError:
        return "too many pixels"
    except Exception:  # noqa: BLE001 -- any decoder failure means "not an image" here
        return "not an image"


# -- the build --------------------------------------------------------------------------------
@dataclass
class BuildReport:
    out: Path
    manifest_rows: int = 0
    written: int = 0
    reused: int = 0
    kept: Counter = field(default_factory=Counter)  # (repo, label, generator) -> files
    skipped: Counter = field(default_factory=Counter)  # (repo, reason) -> files
    skipped_rows: list[dict] = field(default_factory=list)
    repos: dict[str, str] = field(default_factory=dict)  # repo -> "kind path" or "missing"
    fallbacks: dict[str, str] = field(default_factory=dict)  # repo -> the commit used instead
    groups: int = 0
    near_dup_joins: int = 0
    near_dup_rejected: int = 0
    largest_group: tuple[str, int] = ("", 0)
    seconds: float = 0.0

    @property
    def total_kept(self) -> int:
        return sum(self.kept.values())

    @property
    def total_skipped(self) -> int:
        return sum(self.skipped.values())

    def by(self, what: str) -> Counter:
        """Kept files per ``repo``, ``label`` or ``generator``."""
        pos = ("repo", "label", "generator").index(what)
        out: Counter = Counter()
        for key, n in self.kept.items():
            out[key[pos]] += n
        return out

    def skip_reasons(self) -> Counter:
        out: Counter = Counter()
        for (_, reason), n in self.skipped.items():
            out[reason] += n
        return out


def prepare_out(out: str | Path) -> Path:
    """Create ``out`` (and ``out/images``); a :class:`ConfigError` when it cannot be used."""
    out = Path(out)
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"--out {out}: not a writable folder ({exc.strerror or exc})") from None
    return out


def _read_index(path: Path) -> dict[str, dict]:
    """The previous build's rows by SHA-256 (so a re-run need not decode kept files again)."""
    if not path.is_file():
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return {r["sha256"]: r for r in csv.DictReader(fh) if r.get("sha256") and r.get("path")}
    except (OSError, csv.Error, KeyError, UnicodeDecodeError):
        return {}


def _sha_of_file(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError:
        return None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _write_csv(path: Path, columns: Iterable[str], rows: Iterable[dict]) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(tmp, path)


def build_extra(
    manifest: str | Path,
    out: str | Path,
    repos_dir: str | Path | None = None,
    overrides: dict[str, str | Path] | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    near_dup_bits: int = DEFAULT_NEAR_DUP_BITS,
    progress: bool | None = None,
) -> BuildReport:
    """Build ``out`` from ``manifest`` (see the module's docstring); returns the counts.

    Raises :class:`DataSourceError` for a bad manifest or when no repository of it is found,
    :class:`ConfigError` for an unusable ``out``; files that cannot be built are skipped and
    counted, never raised."""
    from tqdm import tqdm

    t0 = time.monotonic()
    rows = read_manifest(manifest)
    overrides_p = {k: Path(v) for k, v in (overrides or {}).items()}
    for repo, p in overrides_p.items():
        if not p.is_dir():
            raise DataSourceError(f"--repo {repo}={p}: not a folder")
    repos_path = Path(repos_dir) if repos_dir is not None else None
    if repos_path is not None and not repos_path.is_dir():
        raise DataSourceError(f"--repos {repos_path}: not a folder")
    by_repo: dict[str, list[ManifestRow]] = defaultdict(list)
    for r in rows:
        by_repo[r.repo].append(r)
    found = {repo: find_repo(repo, repos_path, overrides_p) for repo in by_repo}
    if not any(found.values()):
        where = f"under {repos_path} (as OWNER+NAME[/repo] or OWNER/NAME)" if repos_path else "(no --repos)"
        raise DataSourceError(f"no repository of the manifest found {where}")
    out_p = prepare_out(out)
    report = BuildReport(out=out_p, manifest_rows=len(rows))
    previous = _read_index(out_p / "index.csv")
    index: list[dict] = []

    def skip(r: ManifestRow, reason: str, detail: str = "") -> None:
        report.skipped[(r.repo, reason)] += 1
        report.skipped_rows.append({"repo": r.repo, "source_path": r.source_path, "sha256": r.sha256,
                                    "label": r.label, "reason": reason, "detail": detail})

    bar = tqdm(total=len(rows), unit="file", desc="extra", disable=None if progress is None else not progress)
    try:
        for repo, repo_rows in by_repo.items():
            path = found[repo]
            if path is None:
                report.repos[repo] = "missing"
                for r in repo_rows:
                    skip(r, "repo missing")
                bar.update(len(repo_rows))
                continue
            copy = RepoCopy(path)
            report.repos[repo] = f"{copy.kind} {path}"
            try:
                for r in repo_rows:
                    bar.set_postfix_str(repo, refresh=False)
                    row = _build_one(r, copy, out_p, previous, max_pixels, skip)
                    if row is not None:
                        index.append(row)
                        report.kept[(r.repo, r.label, r.generator)] += 1
                        if row.pop("_reused"):
                            report.reused += 1
                        else:
                            report.written += 1
                    bar.update(1)
            finally:
                copy.close()
            if copy.fallbacks:
                report.fallbacks[repo] = f"{', '.join(sorted(copy.fallbacks))} absent; HEAD {copy.head}"
    finally:
        bar.close()

    report.near_dup_joins, report.near_dup_rejected = assign_groups(index, near_dup_bits, thumbnail_confirm(out_p))
    sizes = Counter(r["group"] for r in index)
    report.groups = len(sizes)
    if sizes:
        report.largest_group = sizes.most_common(1)[0]
    index.sort(key=lambda r: r["path"])
    _write_csv(out_p / "index.csv", INDEX_COLUMNS, index)
    _write_csv(out_p / "images" / "MANIFEST.csv", ("path", "label", "source_path", "generator", "sha256"),
               ({"path": r["path"].removeprefix("images/"), "label": r["label"], "source_path": r["group"],
                 "generator": r["generator"], "sha256": r["sha256"]} for r in index))
    _write_csv(out_p / "skipped.csv", ("repo", "source_path", "sha256", "label", "reason", "detail"),
               report.skipped_rows)
    report.seconds = time.monotonic() - t0
    return report


def _build_one(r: ManifestRow, copy: RepoCopy, out: Path, previous: dict[str, dict], max_pixels: int,
               skip: Callable[..., None]) -> dict | None:
    base = {"label": r.label, "generator": r.generator, "group": path_group(r.repo, r.source_path),
            "source": r.repo, "sha256": r.sha256, "source_path": r.source_path, "commit": r.commit,
            "licence": r.licence}
    old = previous.get(r.sha256)
    if old and old.get("label") == r.label and old.get("phash"):
        target = out / old["path"]
        if target.is_file() and _sha_of_file(target) == r.sha256:
            return {**base, "path": old["path"], "width": int(old["width"]), "height": int(old["height"]),
                    "format": old["format"], "bytes": target.stat().st_size, "phash": old["phash"],
                    "_reused": True}
    data = copy.read(r.commit, r.source_path, r.sha256)
    if data is None:
        skip(r, "blob missing")
        return None
    sha = hashlib.sha256(data).hexdigest()
    if sha != r.sha256:
        if data.startswith(b"version https://git-lfs"):
            skip(r, "lfs pointer", f"{len(data)} bytes")
        else:
            skip(r, "sha256 mismatch", f"got {sha[:16]}, {len(data)} bytes")
        return None
    dec = decode(data, max_pixels)
    if isinstance(dec, str):
        skip(r, dec, f"{r.width}x{r.height} {r.format}")
        return None
    ext = EXTENSIONS.get(dec.format, dec.format.lower() or "bin")
    rel = f"images/{r.label}/{r.sha256[:16]}.{ext}"
    target = out / rel
    reused = target.is_file() and _sha_of_file(target) == r.sha256
    if not reused:
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(target, data)
    return {**base, "path": rel, "width": dec.width, "height": dec.height, "format": dec.format,
            "bytes": len(data), "phash": dec.phash, "_reused": reused}


def parse_repo_override(text: str) -> tuple[str, str]:
    """``OWNER/NAME=PATH`` -> (``OWNER/NAME``, ``PATH``); ValueError otherwise."""
    repo, sep, path = text.partition("=")
    if not sep or repo.count("/") != 1 or not path:
        raise ValueError(f"{text!r}: expected OWNER/NAME=PATH")
    return repo.strip(), path
