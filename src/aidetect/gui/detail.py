"""The result view: image, verdict, calibrated confidence, "uncertain" badge and the Grad-CAM
overlay (toggle, opacity slider, side-by-side), with its legend and caveat.

Decoding the image and the saved raw CAM, colouring and blending all run on the ``io``
lane; the Tk thread only swaps a finished ``PhotoImage`` in.
"""

from __future__ import annotations

import tkinter as tk
from collections.abc import Callable
from dataclasses import dataclass
from tkinter import font as tkfont
from typing import Any

import numpy as np
import ttkbootstrap as tb
from PIL import Image, ImageTk

from aidetect.blobs.heatmaps import local_path
from aidetect.explain.overlay import read_cam_png, unseen_mask
from aidetect.gui import imaging
from aidetect.gui.flow import FlowFrame, TextTip
from aidetect.gui.layout import elide, legend_bar_width, wrap_width
from aidetect.gui.tablemodel import provenance_text
from aidetect.gui.tasks import TaskRunner
from aidetect.store.results import ResultRow
from aidetect.wording import branch_summary, word

CAVEAT = "The heatmap shows where the model looked, not proof that the image was generated."
NOT_IN_VIEW = "Not in the table's current view (the filters or the page leave it out)."
_GAP = 8
DETAIL_PAD = 10
LABEL_SLACK = 6  # a label's own padding and border, around its wrapped text
IMAGE_REQ_HEIGHT = 240  # asked for; the picture gets what the window leaves (weight 1)
LEGEND_BAR, LEGEND_GAP = 120, 6


@dataclass
class _Source:
    """Decoded inputs of the selected row (owned by the io lane once loaded)."""

    row: ResultRow
    image: Image.Image | None
    cam: np.ndarray | None
    overlay: Image.Image | None  # fallback when only the rendered overlay exists
    error: str | None
    heat: Image.Image | None = None  # colourised CAM at image size, built on first render
    unseen: np.ndarray | None = None  # parts of the image the model did not see (with heat)


def load_detail(row: ResultRow) -> _Source:
    """Runs on the io lane: decode the image and its saved raw CAM."""
    image = cam = overlay = None
    problems: list[str] = []
    try:
        image = imaging.open_image(row.path, max_side=1024)
    except Exception as exc:  # noqa: BLE001 - shown in the panel
        problems.append(f"image: {exc}")
    # heatmaps kept in the blob layer (workers on other hosts) are fetched into the local folder once
    cam_path, overlay_path = local_path(row.cam_path), local_path(row.overlay_path)
    if row.cam_path and cam_path is None:
        problems.append(f"heatmap: {row.cam_path} not readable on this host (AIDETECT_BLOBS)")
    if cam_path:
        try:
            cam = read_cam_png(cam_path)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"heatmap: {exc}")
    if (cam is None or image is None) and overlay_path:
        try:
            overlay = imaging.open_image(overlay_path, max_side=1024)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"overlay: {exc}")
    return _Source(row, image, cam, overlay, "; ".join(problems) or None)


def render(
    src: _Source, box: tuple[int, int], show_heat: bool, alpha: float, side: bool
) -> Image.Image | None:
    """Runs on the io lane: the picture for the image area (fits ``box``)."""
    base = src.image
    if base is None:
        return imaging.fit(src.overlay, *box) if src.overlay is not None else None
    heat_avail = src.cam is not None or src.overlay is not None
    if not (show_heat and heat_avail):
        return imaging.fit(base, *box)
    if src.cam is not None:
        if src.heat is None:
            src.heat = imaging.colorize(src.cam, base.size)
            src.unseen = unseen_mask(src.cam, base.size)
        over = imaging.blend(base, src.heat, alpha, src.unseen)
    else:
        assert src.overlay is not None
        over = src.overlay.resize(base.size)
    if not side:
        return imaging.fit(over, *box)
    w, h = box
    half = max(1, (w - _GAP) // 2)
    left, right = imaging.fit(base, half, h), imaging.fit(over, half, h)
    canvas = Image.new(
        "RGB", (left.width + _GAP + right.width, max(left.height, right.height)), "white"
    )
    canvas.paste(left, (0, (canvas.height - left.height) // 2))
    canvas.paste(right, (left.width + _GAP, (canvas.height - right.height) // 2))
    return canvas


class DetailPanel(tb.Frame):
    """Right-hand panel showing one row. ``show(row)`` loads it in the background."""

    def __init__(
        self, master: tk.Misc, runner: TaskRunner, on_error: Callable[[BaseException], None]
    ) -> None:
        super().__init__(master, padding=(DETAIL_PAD, 6))
        self.runner = runner
        self._on_error = on_error
        self.row: ResultRow | None = None
        self._src: _Source | None = None
        self._photo: ImageTk.PhotoImage | None = None
        self._render_after: str | None = None
        self.rendered: Image.Image | None = None  # last picture shown (tests read it)
        self.render_count = 0

        self.columnconfigure(0, weight=1)
        head = tb.Frame(self)
        head.grid(row=0, column=0, sticky="ew")
        head.columnconfigure(0, weight=1)
        self.title = tb.Label(
            head, text="No image selected", font=("TkDefaultFont", 13, "bold"), anchor="w"
        )
        self.title.grid(row=0, column=0, sticky="ew")
        self._title_full = "No image selected"  # shown cut to one line, in full as a tooltip
        self._title_width = 0
        self._title_measure = tkfont.Font(font=self.title.cget("font")).measure
        TextTip(self.title, lambda _x, _y: self._title_tip())
        self.note = tb.Label(head, text="", anchor="w", justify="left", bootstyle="warning")
        self.note.grid(row=1, column=0, sticky="ew")
        self.note.grid_remove()
        badges = tb.Frame(head)
        badges.grid(row=2, column=0, sticky="w", pady=(4, 2))
        self.verdict = tb.Label(badges, text="", padding=(8, 3), font=("TkDefaultFont", 11, "bold"))
        self.verdict.pack(side="left")
        self.uncertain = tb.Label(badges, text="UNCERTAIN", padding=(8, 3), bootstyle="@warning")
        self.confidence_text = tb.Label(
            head, text="", anchor="w", justify="left", font=("TkDefaultFont", 11)
        )
        self.confidence_text.grid(row=3, column=0, sticky="ew")
        self.confidence_bar = tb.Progressbar(head, maximum=100, value=0, bootstyle="info")
        self.confidence_bar.grid(row=4, column=0, sticky="ew", pady=(2, 4))
        self.meta = tb.Label(head, text="", justify="left", anchor="w", bootstyle="secondary")
        self.meta.grid(row=5, column=0, sticky="ew")
        self.reason = tb.Label(head, text="", justify="left", anchor="w", bootstyle="danger")
        self.reason.grid(row=6, column=0, sticky="ew")

        self.rowconfigure(1, weight=1)
        self.image_area = tb.Frame(self, bootstyle="light")
        self.image_area.grid(row=1, column=0, sticky="nsew", pady=6)
        self.image_area.grid_propagate(False)
        self.image_area.configure(height=IMAGE_REQ_HEIGHT)
        self.image_label = tk.Label(self.image_area, bd=0, text="", compound="center")
        self.image_label.place(relx=0.5, rely=0.5, anchor="center")
        self.image_area.bind("<Configure>", lambda _e: self.schedule_render())

        self.show_heat = tk.BooleanVar(value=True)
        self.side_by_side = tk.BooleanVar(value=False)
        self.opacity = tk.DoubleVar(value=45.0)
        self._build_controls()
        self._build_legend()
        self.caveat = tb.Label(
            self, text=CAVEAT, bootstyle="secondary", font=("TkDefaultFont", 9, "italic")
        )
        self.caveat.grid(row=4, column=0, sticky="w", pady=(2, 0))
        # labels whose wraplength follows the panel's width
        self._wrapped = (self.note, self.confidence_text, self.meta, self.reason, self.caveat)
        self.bind("<Configure>", self._resized, add="+")
        self._set_controls(False)

    def _build_controls(self) -> None:
        ctl = FlowFrame(self, gap=10, row_gap=2)
        ctl.grid(row=2, column=0, sticky="ew")
        self.heat_toggle = self._toggle(ctl, "Heatmap", self.show_heat)
        ctl.add(self.heat_toggle)
        self.side_toggle = self._toggle(ctl, "Side by side", self.side_by_side)
        ctl.add(self.side_toggle)
        group = tb.Frame(ctl)
        tb.Label(group, text="Opacity").pack(side="left", padx=(0, 4))
        self.opacity_scale = tb.Scale(
            group,
            from_=0,
            to=100,
            variable=self.opacity,
            length=80,
            command=lambda _v: self.schedule_render(15),
        )
        self.opacity_scale.pack(side="left")
        self.opacity_value = tb.Label(group, text="45 %", width=5)
        self.opacity_value.pack(side="left", padx=(4, 0))
        ctl.add(group)
        self.controls = ctl
        self.opacity.trace_add("write", lambda *_a: self._opacity_changed())

    def _build_legend(self) -> None:
        legend = FlowFrame(self, gap=LEGEND_GAP, row_gap=2)
        legend.grid(row=3, column=0, sticky="ew", pady=(6, 0))
        self.legend_low = tb.Label(legend, text="blue = least influence", bootstyle="secondary")
        legend.add(self.legend_low)
        self._legend_width = LEGEND_BAR
        self._legend_photo = ImageTk.PhotoImage(imaging.legend_bar(LEGEND_BAR, 12), master=self)
        self.legend_bar = tk.Label(legend, image=self._legend_photo, bd=0)
        legend.add(self.legend_bar)
        self.legend_high = tb.Label(legend, text="red = most influence", bootstyle="secondary")
        legend.add(self.legend_high)
        self.legend_unseen = tb.Label(legend, text="gray hatched = not seen by the model", bootstyle="secondary")
        legend.add(self.legend_unseen)
        self.legend = legend

    def _resized(self, event: tk.Event) -> None:
        """Wrap the text to the panel's width and fit the legend's colour bar into its row."""
        if event.widget is not self:
            return
        width = wrap_width(event.width, DETAIL_PAD)
        for label in self._wrapped:
            label.configure(wraplength=width - LABEL_SLACK)
        self._title_width = width - LABEL_SLACK
        self._set_title(self._title_full)
        self.image_label.configure(wraplength=max(80, width - 20))
        bar = legend_bar_width(
            width, self.legend_low.winfo_reqwidth(), self.legend_high.winfo_reqwidth(), LEGEND_GAP
        )
        if bar != self._legend_width:
            self._legend_width = bar
            self._legend_photo = ImageTk.PhotoImage(imaging.legend_bar(bar, 12), master=self)
            self.legend_bar.configure(image=self._legend_photo)

    # -- public ---------------------------------------------------------------------------
    def _toggle(self, parent: tk.Misc, text: str, variable: tk.BooleanVar) -> tb.Checkbutton:
        return tb.Checkbutton(
            parent, text=text, variable=variable, bootstyle="round-toggle", command=self.schedule_render
        )

    def show(self, row: ResultRow | None, note: str | None = None) -> None:
        """Show ``row`` (text at once, pictures when the io lane has decoded them), with
        ``note`` above its verdict (e.g. :data:`NOT_IN_VIEW`)."""
        self.row = row
        self._src = None
        self._fill_text(row)
        self.set_note(note)
        self.image_label.configure(image="", text="Loading…" if row else "")
        self._photo = None
        self.rendered = None
        if row is None:
            self._set_controls(False)
            return
        self.runner.submit(
            "io", lambda: load_detail(row), self._loaded, self._on_error, key="detail"
        )

    def set_note(self, note: str | None) -> None:
        """Show ``note`` above the verdict (None: none)."""
        self.note.configure(text=note or "")
        if note:
            self.note.grid()
        else:
            self.note.grid_remove()

    @property
    def note_text(self) -> str:
        return str(self.note.cget("text")) if self.note.winfo_manager() else ""

    @property
    def has_heatmap(self) -> bool:
        return self._src is not None and (
            self._src.cam is not None or self._src.overlay is not None
        )

    # -- internals ------------------------------------------------------------------------
    def _set_title(self, text: str) -> None:
        self._title_full = text
        if self._title_width > 1:
            text = elide(text, self._title_width, self._title_measure, middle=True)
        self.title.configure(text=text)

    def _title_tip(self) -> str | None:
        return self._title_full if self.title.cget("text") != self._title_full else None

    def _fill_text(self, row: ResultRow | None) -> None:
        if row is None:
            self._set_title("No image selected")
            self.verdict.configure(text="", bootstyle="default")
            self.uncertain.pack_forget()
            self.confidence_text.configure(text="")
            self.confidence_bar.configure(value=0)
            self.meta.configure(text="Upload images or select a row in the table.")
            self.reason.configure(text="")
            return
        self._set_title(row.name)
        said = word(row.label, row.prob_ai, row.uncertain, row.uncertain_reason, row.decided_by)
        if said is not None:
            style = "@secondary" if not said.decided else "@danger" if said.headline == "AI-GENERATED" else "@success"
            self.verdict.configure(text=said.headline, bootstyle=style)
            # no-break spaces: a wrapped line never splits "P(ai) = 0.642"
            self.confidence_text.configure(text=f"{said.detail} (P(ai)\u00a0=\u00a0{row.prob_ai:.3f})")
            self.confidence_bar.configure(value=said.confidence * 100)
        else:
            style = "@danger" if row.status == "failed" else "@secondary"
            self.verdict.configure(text=row.status.upper(), bootstyle=style)
            self.confidence_text.configure(text="")
            self.confidence_bar.configure(value=0)
        if row.uncertain:
            self.uncertain.pack(side="left", padx=(6, 0), after=self.verdict)
        else:
            self.uncertain.pack_forget()
        bits = []
        if row.model_version:
            bits.append(f"model {row.model_version}")
            if row.scored_by and row.scored_by != row.model_version:
                bits.append(f"scored by {row.scored_by} (small image)")
            if row.branches:  # a fused model: each branch's share of this decision
                bits.append(branch_summary(row.branches))
        if row.time is not None:
            bits.append(row.time.strftime("%Y-%m-%d %H:%M:%S"))
        if row.width and row.height:
            bits.append(f"{row.width}x{row.height}")
        self.meta.configure(text="  ·  ".join(bits) + f"\n{row.path}")
        if row.error:
            self.reason.configure(text=f"Reason: {row.error}", bootstyle="danger")
        else:  # what the file's own metadata says (the same label: one of the two at a time)
            self.reason.configure(text=provenance_text(row), bootstyle="info")

    def _loaded(self, src: _Source) -> None:
        if self.row is None or src.row.key != self.row.key:
            return
        self._src = src
        self._set_controls(self.has_heatmap)
        if src.image is None and src.overlay is None:
            said = "No picture (see the reason above)" if self.row.error else src.error
            self.image_label.configure(text=said or "No picture", image="")
        if src.error and not self.row.error:
            self.reason.configure(text=src.error)
        seen = float(np.isfinite(src.cam).mean()) if src.cam is not None and src.cam.size else 1.0
        if seen < 0.995:  # a large photo seen through windows: say how much of it the verdict rests on
            first, _, path = str(self.meta.cget("text")).partition("\n")
            self.meta.configure(text=f"{first}  ·  the model saw {seen * 100:.0f} % of it (gray hatched: not seen)\n{path}")
        self.schedule_render(0)

    def _set_controls(self, enabled: bool) -> None:
        state = "normal" if enabled else "disabled"
        for w in (self.heat_toggle, self.opacity_scale, self.side_toggle):
            w.configure(state=state)

    def _opacity_changed(self) -> None:
        self.opacity_value.configure(text=f"{self.opacity.get():.0f} %")

    def schedule_render(self, delay_ms: int = 40) -> None:
        if self._render_after is not None:
            self.after_cancel(self._render_after)
        self._render_after = self.after(delay_ms, self._render)

    def _render(self) -> None:
        self._render_after = None
        src = self._src
        if src is None:
            return
        box = (
            max(50, self.image_area.winfo_width() - 8),
            max(50, self.image_area.winfo_height() - 8),
        )
        args: tuple[Any, ...] = (
            src,
            box,
            self.show_heat.get(),
            self.opacity.get() / 100.0,
            self.side_by_side.get(),
        )
        self.runner.submit(
            "io", lambda: render(*args), self._rendered, self._on_error, key="render"
        )

    def _rendered(self, picture: Image.Image | None) -> None:
        if picture is None or self._src is None:
            return
        self._photo = ImageTk.PhotoImage(picture, master=self)
        self.image_label.configure(image=self._photo, text="")
        self.rendered = picture
        self.render_count += 1
