"""Small real media made for the tests: images with Pillow, videos with ffmpeg."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

from PIL import Image

from localcloud.imm.ffmpeg import ffmpeg_exe


def png(color: str = "red", size: tuple[int, int] = (48, 32)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def make_video(
    path: Path, seconds: float = 1.0, size: str = "320x240", rate: int = 25, audio: bool = True
) -> Path:
    args = [
        ffmpeg_exe(),
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={size}:rate={rate}:duration={seconds}",
    ]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}", "-c:a", "aac", "-b:a", "64k"]
    args += [
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(rate),
        "-shortest",
        str(path),
    ]
    subprocess.run(args, check=True)
    return path
