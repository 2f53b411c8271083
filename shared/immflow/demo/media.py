"""Sample media the demo makes itself, so it needs no download: a short video with sound, a Word
document, a PowerPoint deck, a few images and a ZIP of images.

Each sample is small (the whole set is well under 1 MB) and has real content a person can check:
the video is ffmpeg's ``testsrc2`` pattern with a 440 Hz tone, the documents have several pages
or slides, the images are gradients with a label.
"""

from __future__ import annotations

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
    video = folder / "clip.mp4"
    _video(video)
    report = folder / "report.docx"
    _docx(report)
    slides = folder / "slides.pptx"
    _pptx(slides)
    images = [
        (folder / "sunrise.jpg", (1024, 768), ((255, 140, 0), (80, 0, 120)), "sunrise"),
        (folder / "sea.png", (800, 600), ((0, 60, 160), (0, 200, 200)), "sea"),
        (folder / "forest.jpg", (640, 960), ((0, 90, 30), (180, 220, 90)), "forest"),
    ]
    for path, size, colours, label in images:
        _image(path, size, colours, label)
    archive = folder / "holiday.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
        for path, *_ in images:
            bundle.write(path, arcname=path.name)
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    pptx_type = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
    return [
        Sample("clip.mp4", video, "video/mp4"),
        Sample("report.docx", report, docx_type),
        Sample("slides.pptx", slides, pptx_type),
        Sample("sunrise.jpg", images[0][0], "image/jpeg"),
        Sample("sea.png", images[1][0], "image/png"),
        Sample("holiday.zip", archive, "application/zip"),
    ]
