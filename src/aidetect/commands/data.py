"""``aidetect data build-extra`` and ``aidetect data format-baseline``: build the ``extra`` training
set from its manifest, and measure how much its file format alone gives the label away.
``aidetect data features``: cache frozen CLIP embeddings and the CNN's logit per image.

The first two do not import torch (the work is Pillow, git, numpy and scikit-learn).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
import numpy as np

from aidetect.errors import EXIT_OK, EXIT_SOME_FAILED


@click.group()
def data() -> None:
    """Build and check training data sets."""


def _repo_option(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, str]:
    from aidetect.trainer.extra_data import parse_repo_override

    try:
        return dict(parse_repo_override(v) for v in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _table(title: str, counts: Counter, width: int = 52) -> list[str]:
    lines = [title]
    lines += [f"  {k:<{width}} {v:>6}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return lines


@data.command("build-extra")
@click.option("--manifest", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The list of files: shared/data/extra/MANIFEST.csv.")
@click.option("--repos", "repos_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of repository copies, each as OWNER+NAME/repo or OWNER+NAME (the fetch "
                   "mirror's bare git directories) or OWNER/NAME (a git clone, a working tree).")
@click.option("--repo", "overrides", multiple=True, metavar="OWNER/NAME=PATH", callback=_repo_option,
              help="Where one repository lies (a working tree or a bare git directory); repeatable; "
                   "wins over --repos.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Output folder: images/<label>/<sha256[:16]>.<ext>, index.csv, skipped.csv.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=40_000_000, show_default=True,
              help="Skip images with more pixels than this (not decoded).")
@click.option("--near-dup-bits", type=int, default=10, show_default=True,
              help="Join the groups of files whose 64-bit perceptual hashes differ in at most this many "
                   "bits (-1: off).")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def build_extra(ctx: click.Context, manifest: Path, repos_dir: Path | None, overrides: dict[str, str], out: Path,
                max_pixels: int, near_dup_bits: int, as_json: bool, quiet: bool) -> None:
    """Build the extra training set from MANIFEST.csv and local copies of its repositories.

    Every file's SHA-256 is checked against the manifest and every image is decoded; what
    cannot be built (repository or blob missing, hash mismatch, not an image, too many pixels)
    is skipped, counted by reason and listed in OUT/skipped.csv. The original bytes are written
    unchanged under OUT/images/<label>/, one row per file in OUT/index.csv (path, label,
    generator, group, source, sha256, width, height, format, bytes, ...). `group` is the unit
    to split by (see docs/data.md). Re-running skips files already there with the right hash.

    Exit status: 0 when every manifest file was built, 1 when some were skipped (the index
    holds the rest), 2 for a bad manifest, an unusable --out or no repository found.

    \b
    Example:
      aidetect data build-extra --manifest ../shared/data/extra/MANIFEST.csv \\
          --repos /work/.mirror --out /work/data/extra
    """
    from aidetect.trainer.extra_data import build_extra as build

    if repos_dir is None and not overrides:
        raise click.UsageError("give --repos DIR and/or --repo OWNER/NAME=PATH")
    report = build(manifest, out, repos_dir, overrides, max_pixels=max_pixels, near_dup_bits=near_dup_bits,
                   progress=False if quiet or as_json else None)
    if as_json:
        click.echo(json.dumps({
            "out": str(report.out), "manifest_rows": report.manifest_rows, "kept": report.total_kept,
            "written": report.written, "reused": report.reused, "skipped": report.total_skipped,
            "per_repo": dict(report.by("repo")), "per_label": dict(report.by("label")),
            "per_generator": dict(report.by("generator")), "skip_reasons": dict(report.skip_reasons()),
            "skipped_per_repo": {f"{repo}: {reason}": n for (repo, reason), n in report.skipped.items()},
            "repos": report.repos, "commit_fallbacks": report.fallbacks, "groups": report.groups,
            "near_dup_joins": report.near_dup_joins,
            "near_dup_rejected": report.near_dup_rejected, "largest_group": list(report.largest_group),
            "seconds": round(report.seconds, 1)}, indent=2))
    else:
        lines = [f"extra: {report.total_kept} of {report.manifest_rows} files in {report.out} "
                 f"({report.written} written, {report.reused} already there), {report.total_skipped} skipped, "
                 f"{report.seconds:.0f} s"]
        lines += ["repositories"] + [f"  {repo:<52} {where}" for repo, where in report.repos.items()]
        lines += [f"  {repo}: commit {note}" for repo, note in report.fallbacks.items()]
        lines += _table("files per repository", report.by("repo"))
        lines += _table("files per label", report.by("label"))
        lines += _table("files per generator", report.by("generator"))
        lines.append(f"groups: {report.groups} (largest {report.largest_group[0]}: {report.largest_group[1]} files; "
                     f"{report.near_dup_joins} near-duplicate joins, {report.near_dup_rejected} hash matches "
                     "turned down by the thumbnail check)")
        if report.skipped:
            lines += _table("skipped, by reason", report.skip_reasons())
            lines += _table("skipped, by repository and reason",
                            Counter({f"{repo}: {reason}": n for (repo, reason), n in report.skipped.items()}))
            lines += [f"  e.g. {r['repo']} {r['source_path']}: {r['reason']} {r['detail']}".rstrip()
                      for r in report.skipped_rows[:5]]
            lines.append(f"every skipped file: {report.out / 'skipped.csv'}")
        click.echo("\n".join(lines))
    ctx.exit(EXIT_SOME_FAILED if report.total_skipped else EXIT_OK)


@data.command("format-baseline")
@click.argument("sources", nargs=-1, required=True)
@click.option("--normalise-out", type=click.Path(file_okay=False, path_type=Path),
              help="Also write normalised copies of every file here (decoded, metadata dropped, crop "
                   "aspect, long side and JPEG quality drawn from one distribution for both classes) "
                   "and score the baseline on them.")
@click.option("--normalise-mode", type=click.Choice(["resize", "crop"]), default="resize", show_default=True,
              help="resize: the largest window of the drawn aspect, resized to the drawn long side; crop: a "
                   "window of the drawn size at native resolution (no resampling unless the file is smaller).")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Group k-fold splits.")
@click.option("--model", type=click.Choice(["gb", "logistic"]), default="gb", show_default=True,
              help="Gradient-boosted trees or logistic regression.")
@click.option("--seed", type=int, default=0, show_default=True, help="Fold shuffling and normalisation draws.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def format_baseline(sources: tuple[str, ...], normalise_out: Path | None, normalise_mode: str, folds: int, model: str, seed: int,
                    as_json: bool, quiet: bool) -> None:
    """How well the file container alone (format, size, bytes, JPEG tables, subsampling, EXIF/ICC)
    tells AI from real: group k-fold cross-validated ROC AUC of a classifier that never sees a
    pixel. SOURCES: index.csv files (or folders holding one, as build-extra writes) and image
    folders with ai/ and real/ sub-folders (e.g. ../shared/data/coco_sd); all are pooled.

    \b
    Example:
      aidetect data format-baseline /work/data/extra --normalise-out /work/data/extra-normalised
    """
    from aidetect.trainer.format_baseline import (
        SIZE_OF_PAYLOAD,
        Normalisation,
        format_baseline,
        load_rows,
        normalise_rows,
    )

    rows = [r for s in sources for r in load_rows(s)]
    progress = False if quiet or as_json else None
    results = {"raw": format_baseline(rows, folds=folds, model=model, seed=seed, progress=progress)}
    if normalise_out is not None:
        normed = normalise_rows(rows, normalise_out, spec=Normalisation(mode=normalise_mode), seed=seed,
                                progress=progress)
        results["normalised"] = format_baseline(normed, folds=folds, model=model, seed=seed, progress=progress)
        results["normalised, without byte size"] = format_baseline(
            normed, folds=folds, model=model, seed=seed, drop=SIZE_OF_PAYLOAD, progress=progress)
    if as_json:
        click.echo(json.dumps({k: v.to_json() for k, v in results.items()}, indent=2))
        return
    for name, res in results.items():
        top = ", ".join(f"{k} {v:.3f}" for k, v in list(res.single_feature_auc.items())[:5])
        click.echo(f"{name}: format-only AUC {res.auc:.4f} ({res.model}, {res.folds} group folds, "
                   f"{res.files} files, {res.groups} groups, "
                   + ", ".join(f"{k} {v}" for k, v in res.labels.items()) + ")")
        click.echo(f"  fold AUCs {', '.join(f'{a:.3f}' for a in res.fold_aucs)}; strongest single cues: {top}")
    if normalise_out is not None:
        for label in sorted({r["label"] for r in normed}):
            scales = np.array([r["scale"] for r in normed if r["label"] == label])
            click.echo(f"normalised {label}: {len(scales)} copies in {normalise_out}, {np.mean(scales > 1):.1%} enlarged, "
                       f"median scale {np.median(scales):.2f}")


def _named_spec(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> list[tuple[str, str]]:
    out = []
    for v in value:
        name, sep, spec = v.partition("=")
        if not sep or not name or not spec:
            raise click.BadParameter(f"{v!r}: expected NAME=SPEC (an image folder or index.csv)")
        out.append((name, spec))
    return out


@data.command("features")
@click.argument("datasets", nargs=-1, required=True, callback=_named_spec)
@click.option("--cache", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Cache folder (outside the repository): CACHE/NAME/items.csv and one .npz per feature kind.")
@click.option("--views", default="center,crops", show_default=True,
              help="CLIP views, comma-separated: center, crops, center<S> (center at S px, e.g. center112); empty for none.")
@click.option("--cnn/--no-cnn", default=True, show_default=True, help="Also the shipped CNN's logit (Detector v3's CNN branch, `fast`).")
@click.option("--clip-dtype", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="CLIP weights' dtype (part of the cache key); auto: bf16 where the CPU computes in it, else fp32.")
@click.option("--batch", type=click.IntRange(min=1), default=16, show_default=True, help="Images per step.")
@click.option("--threads", type=click.IntRange(min=1), default=1, show_default=True, help="torch CPU threads.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def features(datasets: list[tuple[str, str]], cache: Path, views: str, cnn: bool, clip_dtype: str, batch: int,
             threads: int, quiet: bool) -> None:
    """Cache frozen features per image for leave-one-source-out model selection (Detector v3):
    CLIP ViT-B/16 embeddings (views `center`: CLIP's own resize + centre crop; `crops`: up to 4
    native 224 px windows on the JPEG grid) and the shipped CNN's logit, keyed by the file's
    SHA-256 (+ view + encoder hash). Pixels only. Resumable: what is cached is skipped.
    DATASETS: NAME=SPEC, SPEC an image folder (ai/, real/) or an index.csv (build-extra).

    \b
    Example:
      aidetect data features coco_sd=../shared/data/coco_sd extra=/work/data/extra \\
          --cache /work/data/features --views center
    """
    import time

    import torch

    from aidetect.trainer.feature_cache import ClipFeatures, CnnLogits, cache_dataset

    torch.set_num_threads(threads)
    chosen = [v.strip() for v in views.split(",") if v.strip()]
    clip = ClipFeatures(dtype=clip_dtype) if chosen else None
    cnn_model = CnnLogits() if cnn else None
    cache.mkdir(parents=True, exist_ok=True)
    import aidetect.inference.views as views_module  # the CNN's window plan beyond 1 MP, recorded per run
    from aidetect.trainer.feature_cache import file_sha256

    views_hash = file_sha256(views_module.__file__)[:12]
    for name, spec in datasets:
        report = cache_dataset(name, spec, cache, views=chosen, cnn=cnn, clip=clip, cnn_model=cnn_model,
                               batch=batch, progress=False if quiet else None)
        click.echo(report.line() + (f"; windows per image {dict(sorted(report.crop_counts.items()))}"
                                    if report.crop_counts else ""))
        with (cache / "runs.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "dataset": name, "spec": spec,
                                 "views": chosen, "cnn": cnn, "threads": threads, "files": report.files,
                                 "computed": report.computed, "crop_counts": report.crop_counts,
                                 "views_py_sha256": views_hash,
                                 "seconds": {k: round(v, 1) for k, v in report.seconds.items()}}) + "\n")
