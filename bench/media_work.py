"""What the benches share: the demo pipeline's media work done directly with the tools, free ports,
and percentiles. ``bench_demo`` runs the work for the demo's samples one after another;
``bench_burst`` runs it for many uploads with the local IMM's parallelism.

The direct work per sample is what ``pipeline.yaml`` asks IMM for, with the tools and options the
local IMM runs (localcloud/imm): ffmpeg (transcode to 720p H.264/AAC with x264's ``veryfast``
preset, three posters, a 4x4 sprite sheet), ``soffice --headless --norestore ... --convert-to pdf``
and ``pdftoppm`` for the first five pages, Pillow for the image previews, PDFs and the contact
sheet, and unzip.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import imageio_ffmpeg
from immflow.demo.media import Sample, make_samples
from PIL import Image


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 3), "p95": round(p95, 3)}


def _run(command: list[str]) -> None:
    subprocess.run(command, check=True, capture_output=True, timeout=300)


_profiles = threading.local()


def _office_profile(scratch: Path) -> Path:
    """One LibreOffice profile per thread: two soffice processes cannot share one."""
    if not hasattr(_profiles, "path"):
        _profiles.path = scratch / f"lo-profile-{threading.get_ident()}"
    path: Path = _profiles.path
    return path


def media_work(sample: Sample, out: Path, scratch: Path) -> None:
    """What the pipeline's rule for `sample` asks of IMM, done directly into the folder `out`."""
    out.mkdir(parents=True, exist_ok=True)
    suffix = sample.path.suffix.lower()
    if suffix == ".mp4":
        ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
        web = out / "web.mp4"
        _run([ffmpeg, "-y", "-loglevel", "error", "-i", str(sample.path), "-vf", "scale=1280:720",
              "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-c:a", "aac", "-b:a", "128k", str(web)])  # fmt: skip
        for index, second in enumerate((1, 2, 3), start=1):
            _run([ffmpeg, "-y", "-loglevel", "error", "-ss", str(second), "-i", str(web), "-frames:v", "1",
                  "-vf", "scale=640:-2", str(out / f"poster-{index}.jpg")])  # fmt: skip
        _run([ffmpeg, "-y", "-loglevel", "error", "-i", str(web), "-vf", "fps=1,scale=160:90,tile=4x4",
              "-frames:v", "1", str(out / "sprites-1.jpg")])  # fmt: skip
    elif suffix in (".docx", ".pptx"):
        soffice = shutil.which("soffice") or "soffice"
        profile = _office_profile(scratch)
        _run([soffice, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore", "--nologo",
              "--nodefault", "--nolockcheck", "--convert-to", "pdf", "--outdir", str(out), str(sample.path)])  # fmt: skip
        pdf = out / (sample.path.stem + ".pdf")
        _run(["pdftoppm", "-png", "-r", "96", "-f", "1", "-l", "5", str(pdf), str(out / "page")])
    elif suffix in (".jpg", ".jpeg", ".png"):
        with Image.open(sample.path) as image:
            rgb = image.convert("RGB")
            rgb.resize((640, round(rgb.height * 640 / rgb.width))).save(out / "preview.jpg", quality=85)
            rgb.save(out / "page.pdf")
    elif suffix == ".zip":
        extracted = out / "unzipped"
        with zipfile.ZipFile(sample.path) as archive:
            archive.extractall(extracted)
        strips = []
        for path in sorted(extracted.iterdir()):
            with Image.open(path) as image:
                strips.append(image.convert("RGB").resize((round(image.width * 240 / image.height), 240)))
        sheet = Image.new("RGB", (sum(s.width for s in strips) + 4 * (len(strips) + 1), 248), "white")
        x = 4
        for strip in strips:
            sheet.paste(strip, (x, 4))
            x += strip.width + 4
        sheet.save(out / "contact-sheet.jpg")
    else:
        raise ValueError(f"no media work for {sample.name}")


def direct_media_work(folder: Path) -> float:
    """The demo pipeline's media work for the demo's samples, one after another; returns seconds."""
    samples = make_samples(folder / "in")
    started = time.perf_counter()
    for sample in samples:
        media_work(sample, folder / "out" / sample.name, folder)
    return time.perf_counter() - started
