"""Sample media the demo makes itself, so it needs no download: a short video with sound, a Word
document, a PowerPoint deck, a few images and a ZIP of images.

Each sample is small (the whole set is well under 1 MB) and has real content a person can check:
the video is ffmpeg's ``testsrc2`` pattern with a 440 Hz tone, the documents have several pages
or slides, the images are gradients with a label.

The demo takes them from a cache (`cached_samples`): making them costs ~0.4 s of CPU, ffmpeg's mostly,
which every demo used to pay while the local cloud started beside it on the same cores.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

VIDEO_SECONDS = 4


@dataclass(frozen=True)
class Sample:
    name: str
    """The file name, as uploaded (under the prefix of the rule that takes it)."""
    path: Path
    content_type: str


def _video(path: Path) -> None:
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size=640x360:rate=25:duration={VIDEO_SECONDS}",
        "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={VIDEO_SECONDS}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "96k", "-shortest", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not make the sample video: {result.stderr.strip()[-500:]}")


def _docx(path: Path) -> None:
    from docx import Document

    document = Document()
    document.add_heading("immflow demo report", level=0)
    for chapter in range(1, 4):
        document.add_heading(f"Chapter {chapter}", level=1)
        for paragraph in range(3):
            document.add_paragraph(
                f"Paragraph {paragraph + 1} of chapter {chapter}. This document was made by `immflow demo` "
                "to show an office conversion: IMM turns it into a PDF, then the PDF's pages into images."
            )
        if chapter < 3:
            document.add_page_break()  # type: ignore[no-untyped-call]
    document.save(str(path))


def _pptx(path: Path) -> None:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    title = deck.slides.add_slide(deck.slide_layouts[0])
    title.shapes.title.text = "immflow demo"
    title.placeholders[1].text = "Upload-triggered media pipelines on IMM"
    for number, point in enumerate(["Upload", "Process", "Follow up"], start=2):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Step {number - 1}: {point}"
        slide.placeholders[1].text = f"Slide {number} of the sample deck"
        slide.shapes.add_textbox(Inches(1), Inches(6), Inches(4), Inches(1)).text_frame.text = point
    deck.save(str(path))


def _image(
    path: Path, size: tuple[int, int], colours: tuple[tuple[int, int, int], tuple[int, int, int]], label: str
) -> None:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    (r1, g1, b1), (r2, g2, b2) = colours
    for x in range(width):
        t = x / max(1, width - 1)
        draw.line(
            [(x, 0), (x, height)],
            fill=(int(r1 + (r2 - r1) * t), int(g1 + (g2 - g1) * t), int(b1 + (b2 - b1) * t)),
        )
    draw.rectangle([20, 20, 20 + 12 * len(label), 60], fill=(255, 255, 255))
    draw.text((30, 30), label, fill=(0, 0, 0))
    if path.suffix == ".jpg":
        image.save(path, quality=90)
    else:
        image.save(path)


def make_samples(folder: Path) -> list[Sample]:
    """Write every sample into ``folder`` and describe them, in upload order."""
    folder.mkdir(parents=True, exist_ok=True)
    _video(folder / "clip.mp4")
    _docx(folder / "report.docx")
    _pptx(folder / "slides.pptx")
    images = [
        (folder / "sunrise.jpg", (1024, 768), ((255, 140, 0), (80, 0, 120)), "sunrise"),
        (folder / "sea.png", (800, 600), ((0, 60, 160), (0, 200, 200)), "sea"),
        (folder / "forest.jpg", (640, 960), ((0, 90, 30), (180, 220, 90)), "forest"),
    ]
    for path, size, colours, label in images:
        _image(path, size, colours, label)
    with zipfile.ZipFile(folder / "holiday.zip", "w", zipfile.ZIP_DEFLATED) as bundle:
        for path, *_ in images:
            bundle.write(path, arcname=path.name)
    return _samples_in(folder)


def _samples_in(folder: Path) -> list[Sample]:
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    pptx_type = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    return [
        Sample("clip.mp4", folder / "clip.mp4", "video/mp4"),
        Sample("report.docx", folder / "report.docx", docx_type),
        Sample("slides.pptx", folder / "slides.pptx", pptx_type),
        Sample("sunrise.jpg", folder / "sunrise.jpg", "image/jpeg"),
        Sample("sea.png", folder / "sea.png", "image/png"),
        Sample("holiday.zip", folder / "holiday.zip", "application/zip"),
    ]


def cached_samples(cache: Path) -> list[Sample]:
    """The samples in ``cache/<digest of this module>``, made there the first time (`make_samples`).

    They are made again only when this module changes: a newer ffmpeg, Pillow, python-docx or
    python-pptx would make other bytes of the same samples, which are the demo's inputs, not what it
    checks. A folder is complete once it has its name (made aside, then renamed) and is never changed
    afterwards; each demo uploads under a folder of its own, so the same bytes never join an earlier run.
    """
    final = cache / hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]
    if not final.is_dir():
        staging = cache / f".{final.name}.{os.getpid()}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        make_samples(staging)
        try:
            os.replace(staging, final)
        except OSError:  # another demo made them first: its folder is as good
            shutil.rmtree(staging, ignore_errors=True)
    return _samples_in(final)
