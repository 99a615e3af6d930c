"""Caps on what the provenance reader reads from a file. Every byte of metadata comes from
the file, so every size is bounded before anything is parsed, decompressed or decoded;
a cap that is hit becomes an evidence note, never a crash (docs/provenance.md, Limits)."""

from __future__ import annotations

MiB = 1024 * 1024

#: Bytes read from a path, in all. A larger file is read up to this much: the metadata of
#: JPEG, PNG and WebP comes first, but C2PA validation and the watermark check need the
#: whole file and report what they could not do.
MAX_FILE_BYTES = 256 * MiB

#: One XMP packet (JPEG APP1 holds at most 64 KiB; a PNG iTXt or WebP chunk can hold more).
MAX_XMP_BYTES = 4 * MiB

#: One PNG text chunk, after decompression (ComfyUI workflows run to a few hundred KiB).
MAX_TEXT_CHUNK_BYTES = 4 * MiB

#: All PNG text chunks of one file together, after decompression.
MAX_TEXT_TOTAL_BYTES = 16 * MiB

#: One EXIF block (JPEG APP1 holds at most 64 KiB; PNG eXIf and WebP EXIF can hold more).
MAX_EXIF_BYTES = 1 * MiB

#: Chunks or segments walked in one container before giving up (a real file has dozens).
MAX_CHUNKS = 10_000

#: Characters of a metadata string quoted in an evidence line.
MAX_QUOTE_CHARS = 80

#: The watermark check runs only on images at least this many pixels on both sides
#: (the invisible-watermark encoder refuses smaller ones).
WATERMARK_MIN_SIDE = 256

#: Pixels the watermark decoder looks at: a larger image is decoded on its top band of
#: full-width rows (the dwtDct code repeats every bit across the image in row-major block
#: order, so the top rows of full width carry the same bits at the same block positions).
WATERMARK_MAX_PIXELS = 1024 * 1024
