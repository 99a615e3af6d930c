"""aidetect.provenance on files the tests make: PNG text chunks of AI front-ends, XMP in JPEG
APP1 and PNG iTXt, EXIF, Stable Diffusion watermarks made with the invisible-watermark
encoder, C2PA manifests signed here with a throwaway ES256 chain; the same pixels with the
metadata stripped; the verdict policy. Hostile files: test_provenance_hostile.py."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))

import provenance_fixtures as fx  # noqa: E402

from aidetect.provenance import (  # noqa: E402
    GENERATORS,
    Evidence,
    Provenance,
    decide,
    match_generator,
    read_evidence,
)


def ai_items(p: Provenance) -> list[Evidence]:
    return [e for e in p.evidence if e.says == "ai"]


def only(p: Provenance, kind: str) -> Evidence:
    items = [e for e in p.evidence if e.kind == kind]
    assert len(items) == 1, p.to_json()
    return items[0]


# --- PNG text chunks ----------------------------------------------------------------------

COMFY_PROMPT = json.dumps({
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 20, "model": ["4", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
    "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}},
})
COMFY_WORKFLOW = json.dumps({"last_node_id": 9, "nodes": [{"id": 3, "type": "KSampler"}, {"id": 9, "type": "SaveImage"}],
                             "links": [], "version": 0.4})
INVOKE_META = json.dumps({"generation_mode": "txt2img", "positive_prompt": "a fox", "seed": 1, "steps": 30,
                          "model": {"model_name": "stable-diffusion-v1-5", "base_model": "sd-1"}, "app_version": "3.4.0"})
SD_METADATA = json.dumps({"model": "stable diffusion", "model_weights": "stable-diffusion-1.5",
                          "app_id": "invoke-ai/InvokeAI", "app_version": "2.3.0", "image": {"prompt": "a fox"}})
NOVELAI_COMMENT = json.dumps({"prompt": "a fox", "steps": 28, "height": 512, "width": 512, "scale": 5.0,
                              "seed": 42, "sampler": "k_euler_ancestral", "n_samples": 1})
MIDJOURNEY_DESCRIPTION = "a watercolor fox --ar 1:1 --v 6.0 Job ID: 0f6c1b0a-8c9f-4b9e-9a3e-2b7a1c0d9e8f"


@pytest.mark.parametrize("how", ["tEXt", "zTXt", "iTXt"])
def test_a1111_parameters(how: str) -> None:
    p = read_evidence(fx.png_with_text({"parameters": fx.A1111_PARAMETERS}, how=how), watermark=False)
    e = only(p, "png-text")
    assert (e.says, e.generator) == ("ai", "Automatic1111")
    assert "v1-5-pruned-emaonly" in e.detail and "'parameters'" in e.detail
    assert decide(p) == ("provenance", "ai")


def test_comfyui_prompt_and_workflow() -> None:
    p = read_evidence(fx.png_with_text({"prompt": COMFY_PROMPT, "workflow": COMFY_WORKFLOW}), watermark=False)
    items = ai_items(p)
    assert [e.generator for e in items] == ["ComfyUI", "ComfyUI"], p.to_json()
    assert "3 nodes" in items[0].detail and "sd_xl_base_1.0" in items[0].detail
    assert "2 nodes" in items[1].detail


@pytest.mark.parametrize(("key", "text"), [
    ("invokeai_metadata", INVOKE_META),
    ("sd-metadata", SD_METADATA),
    ("Dream", '"a watercolor fox" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms'),
])
def test_invokeai(key: str, text: str) -> None:
    e = only(read_evidence(fx.png_with_text({key: text}), watermark=False), "png-text")
    assert (e.says, e.generator) == ("ai", "InvokeAI")
    assert key in e.detail


def test_novelai_software_and_comment() -> None:
    p = read_evidence(fx.png_with_text({"Software": "NovelAI", "Source": "NovelAI Diffusion V3 4BDE2A90",
                                        "Comment": NOVELAI_COMMENT}), watermark=False)
    items = ai_items(p)
    assert len(items) == 3 and {e.generator for e in items} == {"NovelAI"}, p.to_json()
    assert any("k_euler_ancestral" in e.detail and "28 steps" in e.detail for e in items)


def test_midjourney_job_id() -> None:
    e = only(read_evidence(fx.png_with_text({"Description": MIDJOURNEY_DESCRIPTION}), watermark=False), "png-text")
    assert (e.says, e.generator) == ("ai", "Midjourney")
    # a description without Midjourney's job id is no claim
    p = read_evidence(fx.png_with_text({"Description": "Holiday at the lake, job id 12"}), watermark=False)
    assert p.evidence == ()


@pytest.mark.parametrize(("key", "text"), [
    ("parameters", "just some words, no settings"),
    ("prompt", "not json {"),
    ("workflow", json.dumps({"nodes": "nope"})),
    ("Dream", "sweet dreams"),
])
def test_known_keyword_in_the_wrong_format_says_nothing(key: str, text: str) -> None:
    p = read_evidence(fx.png_with_text({key: text}), watermark=False)
    e = only(p, "png-text")
    assert e.says == "none" and "format" in e.detail
    assert decide(p) == ("model", None)


def test_unknown_text_chunks_are_ignored() -> None:
    p = read_evidence(fx.png_with_text({"Title": "My cat", "Author": "me", "Software": "GIMP 2.10.36"}),
                      watermark=False)
    assert p.evidence == () and decide(p) == ("model", None)


# --- XMP ----------------------------------------------------------------------------------


def test_xmp_in_jpeg_app1() -> None:
    p = read_evidence(fx.jpeg_with_xmp(fx.xmp_packet("trainedAlgorithmicMedia", "Midjourney")), watermark=False)
    e = only(p, "xmp")
    assert (e.says, e.generator) == ("ai", "Midjourney")
    assert "trainedAlgorithmicMedia" in e.detail
    assert p.format == "jpeg" and decide(p) == ("provenance", "ai")


def test_xmp_in_png_itxt_element_form() -> None:
    packet = fx.xmp_packet("compositeWithTrainedAlgorithmicMedia", "Adobe Photoshop 25.0 (Windows)", element=True)
    e = only(read_evidence(fx.png_with_xmp(packet), watermark=False), "xmp")
    # not a generator on the list, but the file names the tool: it is reported as named
    assert (e.says, e.generator) == ("ai", "Adobe Photoshop 25.0 (Windows)")
    assert "compositeWithTrainedAlgorithmicMedia" in e.detail


@pytest.mark.parametrize(("source_type", "says"), [
    ("trainedAlgorithmicMedia", "ai"),
    ("compositeWithTrainedAlgorithmicMedia", "ai"),
    ("algorithmicMedia", "ai"),
    ("compositeSynthetic", "ai"),
    ("digitalCapture", "none"),  # unsigned: anyone can write it
    ("computationalCapture", "none"),
    ("algorithmicallyEnhanced", "none"),
    ("screenCapture", "none"),
])
def test_xmp_digital_source_types(source_type: str, says: str) -> None:
    p = read_evidence(fx.jpeg_with_xmp(fx.xmp_packet(source_type)), watermark=False)
    e = only(p, "xmp")
    assert e.says == says and source_type in e.detail
    assert e.generator is None
    assert decide(p) == (("provenance", "ai") if says == "ai" else ("model", None))


def test_xmp_creator_tool() -> None:
    e = only(read_evidence(fx.png_with_xmp(fx.xmp_packet(None, "Adobe Firefly")), watermark=False), "xmp")
    assert (e.says, e.generator) == ("ai", "Adobe Firefly")
    e = only(read_evidence(fx.jpeg_with_xmp(fx.xmp_packet(None, "DALL·E 3")), watermark=False), "xmp")
    assert (e.says, e.generator) == ("ai", "DALL·E (OpenAI)")
    e = only(read_evidence(fx.png_with_xmp(fx.xmp_packet(None, "Adobe Lightroom Classic 13.0")), watermark=False), "xmp")
    assert e.says == "none" and "Lightroom" in e.detail


# --- EXIF ---------------------------------------------------------------------------------


def test_camera_exif_alone_says_nothing_and_names_the_camera() -> None:
    exif = fx.exif_bytes("Canon", "Canon EOS R5", "Firmware Version 1.8.1", "2024:05:01 10:22:33")
    p = read_evidence(fx.jpeg_with_exif(exif), watermark=False)
    e = only(p, "exif")
    assert e.says == "none" and e.generator is None
    assert "camera: Canon EOS R5" in e.detail and "2024:05:01 10:22:33" in e.detail
    assert decide(p) == ("model", None)


def test_camera_make_and_model_joined() -> None:
    e = only(read_evidence(fx.jpeg_with_exif(fx.exif_bytes("NIKON CORPORATION", "Z 8")), watermark=False), "exif")
    assert "camera: NIKON CORPORATION Z 8" in e.detail


@pytest.mark.parametrize(("software", "generator"), [
    ("Adobe Firefly", "Adobe Firefly"),
    ("DALLE-3", "DALL·E (OpenAI)"),  # EXIF is ASCII: Pillow writes "·" as "?"
    ("DALL-E 2", "DALL·E (OpenAI)"),
    ("Midjourney v6", "Midjourney"),
    ("Stable Diffusion 3.5", "Stable Diffusion"),
    ("ComfyUI", "ComfyUI"),
    ("AUTOMATIC1111 stable-diffusion-webui", "Automatic1111"),
    ("NovelAI", "NovelAI"),
    ("Google Imagen 3", "Imagen (Google)"),
    ("Gemini", "Gemini (Google)"),
    ("ChatGPT", "ChatGPT (OpenAI)"),
    ("OpenAI API", "OpenAI"),
    ("Ideogram 2.0", "Ideogram"),
    ("Leonardo.Ai", "Leonardo.Ai"),
    ("FLUX.1 [dev]", "Flux (Black Forest Labs)"),
])
def test_generator_software_tag_says_ai(software: str, generator: str) -> None:
    p = read_evidence(fx.jpeg_with_exif(fx.exif_bytes(software=software)), watermark=False)
    e = only(p, "exif")
    assert (e.says, e.generator) == ("ai", generator)
    assert decide(p) == ("provenance", "ai")


@pytest.mark.parametrize("software", [
    "Adobe Photoshop 25.0 (Windows)", "GIMP 2.10.36", "Imagenomic Portraiture 4", "InfluxDB exporter",
    "Darktable 4.6", "HDR+ 1.0.540104767zd",
])
def test_other_software_is_no_claim(software: str) -> None:
    p = read_evidence(fx.jpeg_with_exif(fx.exif_bytes(software=software)), watermark=False)
    assert [e.says for e in p.evidence] == ["none"] and decide(p) == ("model", None)


def test_a1111_settings_in_exif_user_comment() -> None:
    exif = fx.exif_bytes(user_comment=fx.a1111_user_comment(fx.A1111_PARAMETERS))
    e = only(read_evidence(fx.jpeg_with_exif(exif), watermark=False), "exif")
    assert (e.says, e.generator) == ("ai", "Automatic1111") and "UserComment" in e.detail


def test_comfyui_webp_workflow_in_exif() -> None:
    exif = fx.exif_bytes(make="workflow:" + COMFY_WORKFLOW, model="prompt:" + COMFY_PROMPT)
    p = read_evidence(fx.encode(fx.pixels(), "WEBP", exif=exif), watermark=False)
    assert p.format == "webp"
    e = only(p, "exif")
    assert (e.says, e.generator) == ("ai", "ComfyUI") and "ComfyUI workflow (2 nodes)" in e.detail
    # a "prompt:" that is not ComfyUI's graph is no claim
    p = read_evidence(fx.encode(fx.pixels(), "WEBP", exif=fx.exif_bytes(make="prompt: sunny day")), watermark=False)
    assert [e.says for e in p.evidence] == ["none"]


# --- generator list -----------------------------------------------------------------------


def test_every_generator_matches_its_own_name() -> None:
    for g in GENERATORS:
        assert match_generator(g.name) == g.name, g.name
    assert match_generator(None) is None and match_generator("") is None
    assert match_generator("Stable Diffusion web UI") == "Automatic1111"  # most specific first
    assert match_generator("SDXL 1.0") == "Stable Diffusion XL"


# --- invisible watermarks -----------------------------------------------------------------


@pytest.mark.parametrize(("which", "generator"), [("sd1", "Stable Diffusion"), ("sdxl", "Stable Diffusion XL")])
def test_stable_diffusion_watermarks(which: str, generator: str) -> None:
    arr = fx.pixels(7, 512)
    marked = fx.encode(fx.watermarked(arr, which), "PNG")
    p = read_evidence(marked)
    e = only(p, "watermark")
    assert (e.kind, e.says, e.generator) == ("watermark", "ai", generator)
    assert ("StableDiffusionV1" in e.detail) == (which == "sd1")
    assert decide(p) == ("provenance", "ai")
    assert "watermark" in p.timings
    # the same pixels without the watermark: nothing found, and a note says it was looked for
    clean = read_evidence(fx.encode(arr, "PNG"))
    assert clean.evidence == () and any("no Stable Diffusion" in n for n in clean.notes)


def test_watermark_on_a_large_image_is_read_from_its_top_band() -> None:
    # 1400 x 2000 px is over WATERMARK_MAX_PIXELS: the top 752 rows carry the SDXL bits and
    # the 1248 rows below them the bits flipped, so only a decoder that reads the top band
    # (not the whole frame, where the flipped bits win the vote) finds SDXL.
    arr = fx.pixels(3, 1400, 2000)
    top, rest = fx.watermarked(arr, "sdxl"), fx.watermarked(arr, "sdxl-inverted")
    mixed = fx.np.concatenate([top[:752], rest[752:]])
    p = read_evidence(fx.encode(mixed, "PNG"))
    assert only(p, "watermark").generator == "Stable Diffusion XL"
    assert any("top 752 of 2000 rows" in n for n in p.notes), p.notes


def test_watermark_check_skips_small_images_and_can_be_turned_off() -> None:
    small = read_evidence(fx.encode(fx.pixels(1, 255, 600), "PNG"))
    assert small.evidence == () and any("under 256 px" in n for n in small.notes)
    marked = fx.encode(fx.watermarked(fx.pixels(7, 512), "sd1"), "PNG")
    off = read_evidence(marked, watermark=False)
    assert off.evidence == () and "watermark" not in off.timings
    assert decide(off) == ("model", None)


def test_missing_libraries_become_notes(monkeypatch: pytest.MonkeyPatch, pki: fx.Pki) -> None:
    marked = fx.encode(fx.watermarked(fx.pixels(7, 512), "sd1"), "PNG")
    signed = fx.c2pa_sign(marked, "image/png", fx.manifest("trainedAlgorithmicMedia", "ChatGPT"), pki)
    monkeypatch.setitem(sys.modules, "imwatermark", None)  # as after a plain `pip install aidetect`
    monkeypatch.setitem(sys.modules, "c2pa", None)
    p = read_evidence(signed)
    # the watermark is decoded without invisible-watermark (the package's own decoder)
    assert only(p, "watermark").generator == "Stable Diffusion"
    e = only(p, "c2pa")
    assert e.says == "none" and "c2pa-python is not installed" in e.detail


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_own_dwtdct_decoder_reads_what_the_reference_decoder_reads(seed: int) -> None:
    """The package's decoder against invisible-watermark's own (a test tool here) on marked
    and unmarked pixels, natural-looking and noise, odd sizes included: the same bits."""
    imwatermark = pytest.importorskip("imwatermark", reason="invisible-watermark (test tool) is not installed")
    from aidetect.provenance.watermark import decode_dwtdct

    rng = fx.np.random.default_rng(seed)
    h, w = int(rng.integers(256, 700)), int(rng.integers(256, 700))
    photo = Image.open(Path(__file__).parents[1] / "data" / "cifake_mini" / "real" / f"real_00{seed}.jpg")
    natural = fx.np.asarray(photo.convert("RGB").resize((w, h), Image.Resampling.BICUBIC))
    images = [natural, fx.pixels(seed, w, h),
              fx.watermarked(fx.pixels(seed, 512), "sd1"), fx.watermarked(fx.pixels(seed, 512), "sdxl")]
    for rgb in images:
        bgr = fx.np.ascontiguousarray(rgb[:, :, ::-1])
        for length in (136, 48):
            ref = imwatermark.WatermarkDecoder("bits", length).decode(bgr, "dwtDct")
            assert [int(b) for b in decode_dwtdct(bgr, length)] == [int(b) for b in ref]


def test_watermark_does_not_survive_jpeg_reencoding() -> None:
    marked = fx.watermarked(fx.pixels(7, 512), "sd1")
    p = read_evidence(fx.encode(marked, "JPEG", quality=90))
    assert not ai_items(p), "documented limit: re-encoding destroys the dwtDct watermark"


# --- C2PA ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> fx.Pki:
    return fx.make_pki()


def test_c2pa_ai_manifest_with_untrusted_certificate_is_still_evidence(pki: fx.Pki) -> None:
    asset = fx.encode(fx.pixels(), "JPEG", quality=90)
    signed = fx.c2pa_sign(asset, "image/jpeg", fx.manifest("trainedAlgorithmicMedia", "ChatGPT", "GPT-4o"), pki)
    p = read_evidence(signed)
    e = only(p, "c2pa")
    assert (e.says, e.generator) == ("ai", "ChatGPT (OpenAI)")
    assert e.detail.startswith("C2PA manifest: made with ChatGPT (OpenAI)")
    assert "certificate untrusted" in e.detail and "Throwaway Test Signer" in e.detail
    assert decide(p) == ("provenance", "ai")


def test_c2pa_in_png_names_the_claim_generator(pki: fx.Pki) -> None:
    signed = fx.c2pa_sign(fx.encode(fx.pixels(), "PNG"), "image/png",
                          fx.manifest("trainedAlgorithmicMedia", "Adobe Firefly"), pki)
    e = only(read_evidence(signed, watermark=False), "c2pa")
    assert (e.says, e.generator) == ("ai", "Adobe Firefly")


def test_c2pa_capture_manifest_is_real_only_when_trusted(pki: fx.Pki) -> None:
    asset = fx.encode(fx.pixels(), "JPEG", quality=90)
    signed = fx.c2pa_sign(asset, "image/jpeg", fx.manifest("digitalCapture", "Test Camera App"), pki)
    untrusted = read_evidence(signed)
    e = only(untrusted, "c2pa")
    assert e.says == "none" and "certificate untrusted" in e.detail and "no proof" in e.detail
    assert decide(untrusted) == ("model", None)

    trusted = read_evidence(signed, c2pa_trust_anchors=pki.root_pem.decode())
    e = only(trusted, "c2pa")
    assert e.says == "real" and "certificate trusted" in e.detail and "Test Camera App" in e.detail
    assert decide(trusted) == ("provenance", "real")

    other_root = fx.make_pki().root_pem.decode()  # anchors that are not this signer's
    assert only(read_evidence(signed, c2pa_trust_anchors=other_root), "c2pa").says == "none"


def test_c2pa_capture_manifest_on_changed_pixels_is_no_proof(pki: fx.Pki) -> None:
    asset = fx.encode(fx.pixels(), "PNG")
    signed = bytearray(fx.c2pa_sign(asset, "image/png", fx.manifest("digitalCapture", "Test Camera App"), pki))
    idat = signed.find(b"IDAT")
    signed[idat + 20] ^= 0xFF  # pixels changed after signing (the chunk CRC is not the point)
    p = read_evidence(bytes(signed), watermark=False, c2pa_trust_anchors=pki.root_pem.decode())
    e = only(p, "c2pa")
    assert e.says == "none" and "image changed after signing" in e.detail
    assert decide(p) == ("model", None)


def test_c2pa_expired_certificate_is_reported_and_still_evidence() -> None:
    short = fx.make_pki(valid_for=fx.dt.timedelta(seconds=2))
    signed = fx.c2pa_sign(fx.encode(fx.pixels(), "PNG"), "image/png",
                          fx.manifest("trainedAlgorithmicMedia", "Test Generator", "Imagen 3"), short)
    time.sleep(3)  # c2pa refuses to sign with an expired certificate: let this one expire
    e = only(read_evidence(signed, watermark=False), "c2pa")
    assert (e.says, e.generator) == ("ai", "Imagen (Google)")
    assert "certificate expired" in e.detail


def test_c2pa_manifest_without_a_source_type(pki: fx.Pki) -> None:
    # c2pa requires a source type on c2pa.created; "empty" is its own for "no content yet"
    definition = fx.manifest("http://c2pa.org/digitalsourcetype/empty", "Some Editor")
    signed = fx.c2pa_sign(fx.encode(fx.pixels(), "PNG"), "image/png", definition, pki)
    e = only(read_evidence(signed, watermark=False), "c2pa")
    assert e.says == "none" and "Some Editor" in e.detail


# --- negatives: the same pixels, metadata stripped ----------------------------------------


def test_stripped_files_carry_no_ai_claim(pki: fx.Pki) -> None:
    files = {
        "a1111": fx.png_with_text({"parameters": fx.A1111_PARAMETERS}),
        "comfy": fx.png_with_text({"prompt": COMFY_PROMPT}),
        "xmp": fx.jpeg_with_xmp(fx.xmp_packet("trainedAlgorithmicMedia", "Midjourney")),
        "exif": fx.jpeg_with_exif(fx.exif_bytes(software="Adobe Firefly")),
        "c2pa": fx.c2pa_sign(fx.encode(fx.pixels(), "JPEG"), "image/jpeg",
                             fx.manifest("trainedAlgorithmicMedia", "ChatGPT"), pki),
    }
    for name, data in files.items():
        assert decide(read_evidence(data, watermark=False)) == ("provenance", "ai"), name
        stripped = read_evidence(fx.strip(data), watermark=False)
        assert stripped.evidence == (), (name, stripped.to_json())
        assert decide(stripped) == ("model", None)


# --- the output shape and the policy ------------------------------------------------------


def test_evidence_json_shape() -> None:
    p = read_evidence(fx.png_with_text({"parameters": fx.A1111_PARAMETERS}), watermark=False)
    data = json.loads(json.dumps(p.to_json()))
    assert set(data) == {"format", "evidence", "timings_ms", "notes"}
    item = data["evidence"][0]
    assert set(item) == {"kind", "says", "generator", "detail"}
    assert item["kind"] == "png-text" and item["says"] == "ai"
    assert {"read", "container", "c2pa", "xmp", "exif", "png-text", "total"} <= set(data["timings_ms"])
    with pytest.raises(ValueError):
        Evidence("sidecar", "ai", None, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Evidence("xmp", "maybe", None, "x")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Evidence("xmp", "none", None, "two\nlines")
    with pytest.raises(AttributeError):
        p.evidence[0].says = "real"  # type: ignore[misc]


def test_decide() -> None:
    ai = Evidence("png-text", "ai", "ComfyUI", "x")
    real = Evidence("c2pa", "real", None, "x")
    camera = Evidence("exif", "none", None, "camera: Canon EOS R5")
    assert decide([]) == ("model", None)
    assert decide([camera]) == ("model", None)
    assert decide([camera, real]) == ("provenance", "real")
    assert decide([real, ai]) == ("provenance", "ai")  # an AI admission wins
    assert decide([Evidence("exif", "real", None, "forged")]) == ("model", None)  # only C2PA says real
    assert decide(Provenance((ai,))) == ("provenance", "ai")


def test_reads_a_path_by_content_not_name(tmp_path: Path) -> None:
    f = tmp_path / "photo.jpg"  # a PNG with a .jpg name
    f.write_bytes(fx.png_with_text({"parameters": fx.A1111_PARAMETERS}))
    p = read_evidence(f, watermark=False)
    assert p.format == "png" and decide(p) == ("provenance", "ai")
    assert read_evidence(str(f), watermark=False).evidence == p.evidence
