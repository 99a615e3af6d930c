"""Evaluation report: PNG plots (training curves, ROC, reliability diagram, confusion
matrix) and a markdown report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from aidetect.model import ModelCard


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(out: Path, card: ModelCard, p: np.ndarray, y: np.ndarray, overall: dict[str, Any]) -> dict[str, str]:
    from sklearn.metrics import roc_curve

    plt = _plt()
    files: dict[str, str] = {}

    history = card.training.get("history") or []
    if history:
        ep = [h["epoch"] for h in history]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
        a1.plot(ep, [h["train_loss"] for h in history], "o-", label="train")
        a1.plot(ep, [h["val_loss"] for h in history], "o-", label="validation")
        a1.set(xlabel="epoch", ylabel="loss", title="Loss")
        a1.legend()
        a2.plot(ep, [h["train_accuracy"] for h in history], "o-", label="train")
        a2.plot(ep, [h["val_accuracy"] for h in history], "o-", label="validation")
        a2.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
        a2.legend()
        fig.tight_layout()
        fig.savefig(out / "training_curves.png", dpi=110)
        plt.close(fig)
        files["training_curves"] = "training_curves.png"

    if len(np.unique(y)) == 2:
        fpr, tpr, _ = roc_curve(y, p)
        fig, ax = plt.subplots(figsize=(4.2, 4))
        ax.plot(fpr, tpr, label=f"AUC {overall['roc_auc']:.4f}")
        ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
        ax.set(xlabel="false positive rate (real called ai)", ylabel="true positive rate", title="ROC")
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(out / "roc.png", dpi=110)
        plt.close(fig)
        files["roc"] = "roc.png"

    rel = overall.get("reliability") or []
    if rel:
        fig, ax = plt.subplots(figsize=(4.2, 4))
        centers = [(b["lo"] + b["hi"]) / 2 for b in rel]
        width = rel[0]["hi"] - rel[0]["lo"]
        ax.bar(centers, [b["accuracy"] for b in rel], width=width * 0.9, alpha=0.7, label="accuracy")
        ax.plot([0.5, 1], [0.5, 1], "--", color="grey", lw=0.8, label="perfect calibration")
        ax.plot(centers, [b["confidence"] for b in rel], "o", color="C3", ms=3, label="mean confidence")
        ax.set(xlim=(0.5, 1), ylim=(0, 1.02), xlabel="confidence of the predicted class", ylabel="accuracy",
               title=f"Reliability (ECE {overall['ece']:.4f})")
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "reliability.png", dpi=110)
        plt.close(fig)
        files["reliability"] = "reliability.png"

    cm = np.array(overall["confusion_matrix"]["rows_true_cols_pred"])
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "ai"], yticklabels=["real", "ai"],
           xlabel="predicted", ylabel="true", title="Confusion matrix")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=110)
    plt.close(fig)
    files["confusion"] = "confusion.png"
    return files


def _f(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def metrics_table(rows: dict[str, dict[str, Any]], first: str = "") -> str:
    """Markdown table of metric rows; with the product's uncertain flags (``uncertain_rate``), two
    more columns: the share flagged uncertain and the share confidently wrong."""
    trust = all("uncertain_rate" in m for m in rows.values()) and bool(rows)
    head = f"| {first} | n | accuracy | balanced acc. | ROC AUC | AP | ECE |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    if trust:
        head, rule = head + " uncertain | confidently wrong |", rule + " ---: | ---: |"
    body = "".join(
        f"| {name} | {m['n']} | {_f(m['accuracy'])} | {_f(m['balanced_accuracy'])} | {_f(m['roc_auc'])} "
        f"| {_f(m['average_precision'])} | {_f(m['ece'])} |"
        + (f" {_f(m['uncertain_rate'], 3)} | {_f(m['confidently_wrong'], 3)} |" if trust else "") + "\n"
        for name, m in rows.items()
    )
    return head + "\n" + rule + "\n" + body


def write_report(out: Path, metrics: dict[str, Any], card: ModelCard, faithfulness_md: str = "") -> Path:
    o = metrics["overall"]
    d = metrics["data"]
    srcs = ", ".join(f"`{s['spec']}` ({'/'.join(s['evaluated_splits'])})" for s in d["sources"])
    cm = o["confusion_matrix"]["rows_true_cols_pred"]
    lines = [
        f"# Evaluation of `{card.version}`",
        "",
        f"- model: `{metrics['model']['dir']}` ({card.architecture}, input {card.input_size} px, "
        f"temperature {card.temperature}, threshold {card.threshold}, uncertain band {card.uncertain_band})",
        f"- data: {srcs}; {d['n']} images ({d['real']} real, {d['ai']} ai), selection hash `{d['hash']}`"
        + (f", {d['undecodable']} undecodable" if d.get("undecodable") else ""),
        f"- scored with the `{metrics['engine']}` engine in {metrics.get('total_seconds', 'n/a')} s",
        "",
        "## Metrics",
        "",
        metrics_table({"all": o}),
        f"Uncertain band: {_f(o.get('uncertain_fraction'), 3)} of the images fall inside it; accuracy outside it "
        f"{_f(o.get('accuracy_outside_band'))}.",
        "",
        "| true \\ predicted | real | ai |",
        "| --- | ---: | ---: |",
        f"| real | {cm[0][0]} | {cm[0][1]} |",
        f"| ai | {cm[1][0]} | {cm[1][1]} |",
        "",
        "| class | precision | recall | support |",
        "| --- | ---: | ---: | ---: |",
    ]
    for c, v in o["per_class"].items():
        lines.append(f"| {c} | {_f(v['precision'])} | {_f(v['recall'])} | {v['support']} |")
    lines.append("")
    if "uncertain_rate" in o:
        lines += [
            f"As the product says it: {_f(o['uncertain_rate'], 3)} of the verdicts uncertain "
            f"({', '.join(f'{k} {_f(v, 3)}' for k, v in o['uncertain_by_reason'].items()) or 'none'}), "
            f"{_f(o['confidently_wrong'], 3)} confidently wrong (wrong and not flagged), accuracy of the decided "
            f"ones {_f(o['accuracy_when_decided'])}.",
            "",
        ]
    if metrics.get("per_group"):
        lines += ["## Per group", "", metrics_table(metrics["per_group"], "group")]
        groups = metrics["per_group"]
        if any("uncertain_rate" in g for g in groups.values()):
            lines += ["| group | recall real | recall ai | uncertain | confidently wrong |", "| --- | ---: | ---: | ---: | ---: |"]
            for name, g in groups.items():
                lines.append(f"| {name} | {_f(g['per_class']['real']['recall'])} | {_f(g['per_class']['ai']['recall'])} "
                             f"| {_f(g.get('uncertain_rate'), 3)} | {_f(g.get('confidently_wrong'), 3)} |")
            lines.append("")
    if metrics.get("shortcuts"):
        sc = metrics["shortcuts"]
        lines += [f"Size shortcut check: image size alone separates the classes with AUC {_f(sc.get('pixels_auc'))} "
                  f"(pixel count) / {_f(sc.get('aspect_auc'))} (aspect ratio); 0.5 = not at all.", ""]
    if metrics.get("robustness"):
        lines += [
            "## Robustness",
            "",
            "The same images re-encoded as JPEG or WebP, downscaled 0.5x, blurred (Gaussian radius 1), made "
            "grayscale, as a social network serves them (long side <= 1080 px, at most 0.75x, JPEG q80 4:2:0), "
            "as a screenshot (0.8x inside an app window with a title bar and a caption, PNG) or as a meme (outlined "
            "captions top and bottom, JPEG q85); calibration and threshold unchanged.",
            "",
            metrics_table(metrics["robustness"], "condition"),
        ]
    if faithfulness_md:
        lines += [faithfulness_md.strip(), ""]
    plots = metrics.get("plots", {})
    if plots:
        lines += ["## Plots", ""]
        lines += [f"![{k}]({v})" for k, v in plots.items()]
        lines.append("")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def comparison_table(report_dirs: list[Path], names: list[str] | None = None) -> str:
    """A markdown table comparing evaluation reports (``metrics.json`` of ``aidetect evaluate``)
    column by column: parameters, training time, clean metrics and the robustness rows."""
    import json

    cols = []
    for d in report_dirs:
        m = json.loads((Path(d) / "metrics.json").read_text(encoding="utf-8"))
        card = ModelCard.load(Path(m["model"]["dir"]))
        cols.append((m, card))
    names = names or [c.architecture for _, c in cols]
    head = "| | " + " | ".join(names) + " |\n| --- |" + " ---: |" * len(cols) + "\n"
    rows = [
        ("parameters", [f"{c.training.get('parameters', 0):,}" for _, c in cols]),
        ("training time (s)", [f"{c.training.get('seconds_total') or c.training.get('seconds', 0):.0f} ({c.training.get('epochs_run')} epochs)" for _, c in cols]),
        ("mean epoch (s)", [_f(float(np.mean([h['seconds'] for h in c.training.get('history', [])] or [0])), 0) for _, c in cols]),
    ]
    for key, label in (("accuracy", "accuracy"), ("balanced_accuracy", "balanced accuracy"), ("roc_auc", "ROC AUC"),
                       ("average_precision", "average precision"), ("ece", "ECE")):
        rows.append((label, [_f(m["overall"][key]) for m, _ in cols]))
    conds = [c for c in cols[0][0].get("robustness", {}) if c != "clean"]
    for cond in conds:
        rows.append((f"{cond}: accuracy / AUC / ECE", [
            f"{_f(m['robustness'][cond]['accuracy'], 3)} / {_f(m['robustness'][cond]['roc_auc'], 3)} / "
            f"{_f(m['robustness'][cond]['ece'], 3)}" if cond in m.get("robustness", {}) else "n/a"
            for m, _ in cols
        ]))
    return head + "".join(f"| {label} | " + " | ".join(vals) + " |\n" for label, vals in rows)
