"""Security and bad input: pickled checkpoints are refused, decompression bombs and
corrupted / truncated / zero-byte / non-image files give one-line per-file errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from PIL import Image

from aidetect.errors import ImageLoadError, ModelLoadError
from aidetect.model import ModelCard, create_model, load_image, load_model_dir, save_model_dir


def _model_dir(tmp_path: Path) -> Path:
    model = create_model("npr_resnet_tiny")
    return save_model_dir(model, ModelCard(architecture="npr_resnet_tiny"), tmp_path / "m")


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".ckpt"])
def test_pickled_checkpoint_file_refused(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"model{suffix}"
    torch.save(create_model("npr_resnet_tiny").state_dict(), path)
    with pytest.raises(ModelLoadError, match="refusing to load a pickled checkpoint"):
        load_model_dir(path)


def test_folder_with_only_a_pickle_refused(tmp_path: Path) -> None:
    d = tmp_path / "m"
    d.mkdir()
    ModelCard(architecture="npr_resnet_tiny").save(d)
    torch.save(create_model("npr_resnet_tiny").state_dict(), d / "model.pt")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model_dir(d)


def test_pickle_disguised_as_safetensors_refused(tmp_path: Path) -> None:
    d = _model_dir(tmp_path)
    torch.save(create_model("npr_resnet_tiny").state_dict(), d / "model.safetensors")
    with pytest.raises(ModelLoadError, match="not a valid safetensors file"):
        load_model_dir(d)


def test_cli_refuses_pickle_in_one_line(tmp_path: Path, mini_dir: Path, capsys) -> None:
    from aidetect.cli import main

    path = tmp_path / "model.pth"
    torch.save({"x": torch.zeros(1)}, path)
    rc = main(["evaluate", "--model", str(path), "--data", str(mini_dir), "--no-robustness"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "pickled checkpoint" in err


def test_mismatched_weights_are_a_clear_error(tmp_path: Path) -> None:
    d = _model_dir(tmp_path)
    card = ModelCard.load(d)
    card.architecture = "npr_resnet"
    card.save(d)
    with pytest.raises(ModelLoadError, match="do not match"):
        load_model_dir(d)


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 30)).save(buf, "JPEG")
    return buf.getvalue()


def test_load_image_good_file_and_bytes(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    (tmp_path / "ok.jpg").write_bytes(data)
    assert load_image(tmp_path / "ok.jpg").size == (64, 48)
    assert load_image(data).mode == "RGB"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("zero.jpg", b"", "empty file"),
        ("text.jpg", b"this is not an image at all\n" * 10, "not an image"),
        ("pdf.png", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "not an image"),
        ("truncated.jpg", None, "truncated"),
        ("corrupt.png", None, "corrupt"),
    ],
)
def test_load_image_bad_inputs(tmp_path: Path, name: str, content: bytes | None, message: str) -> None:
    if name == "truncated.jpg":
        content = _jpeg_bytes()[:200]
    if name == "corrupt.png":
        buf = io.BytesIO()
        Image.new("RGB", (32, 32), (1, 2, 3)).save(buf, "PNG")
        raw = bytearray(buf.getvalue())
        raw[60:80] = b"\x00" * 20  # damage the IDAT chunk
        content = bytes(raw)
    path = tmp_path / name
    path.write_bytes(content or b"")
    for source in (path, content):
        if source == b"" and name != "zero.jpg":
            continue
        with pytest.raises(ImageLoadError) as err:
            load_image(source)  # type: ignore[arg-type]
        msg = str(err.value)
        assert message in msg and "\n" not in msg


def test_load_image_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_decompression_bomb_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A real 2000 x 2000 PNG (4 Mpx, a few KB compressed) against a lowered limit: the check
    # stays on; both Pillow's warning zone (> limit) and its error zone (> 2x limit) refuse.
    path = tmp_path / "bomb.png"
    Image.new("RGB", (2000, 2000)).save(path)
    assert path.stat().st_size < 100_000
    for limit in (3_000_000, 1_000_000):
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)
        with pytest.raises(ImageLoadError, match="decompression bomb"):
            load_image(path)
    assert Image.MAX_IMAGE_PIXELS is not None


def test_pillow_default_bomb_limit_is_on() -> None:
    import aidetect.model.preprocess  # noqa: F401  (importing must not switch it off)

    assert Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS >= 89_000_000
