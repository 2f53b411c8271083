"""CreateImageSplicingTask and CreateImageToPDFTask with Pillow (docs/imm.md#tasks).

``Rotate`` turns a source clockwise before use. Splicing: ``Direction`` vertical (default) or
horizontal; every image is scaled to ``Align`` (width when vertical, height when horizontal;
default the first image's) keeping its aspect ratio (``ScaleType: fit``, default) or only along
that side (``stretch``); ``Padding`` goes between images, ``Margin`` around them, on
``BackgroundColor`` (``#RRGGBB``, a CSS colour name, or ``alpha`` for transparent, png/webp only;
default white). ``ImageFormat`` jpg (default), png or webp with ``Quality`` (default 80).
ImageToPDF: one page per source, in order, each page the size of its image (jpg, png, tiff, webp,
bmp, gif; svg and jp2 sources fail: Pillow here cannot read them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from immflow.ossuri import OssUri
from PIL import Image, ImageColor, UnidentifiedImageError

from localcloud.imm import inputs
from localcloud.imm.context import TaskContext
from localcloud.imm.errors import TaskFailure, invalid_argument

SPLICE_FORMATS = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP"}
# Pillow's own guard (a warning past 89 M pixels, an error past twice that) would fire before the
# size check against IMM's limits can name them: the check in `inputs` is the guard here.
Image.MAX_IMAGE_PIXELS = None


def check_splicing(params: Mapping[str, Any]) -> None:
    fmt = str(params.get("ImageFormat") or "jpg").lower()
    if fmt not in SPLICE_FORMATS:
        raise invalid_argument(f"The parameter ImageFormat must be jpg, png or webp, not {fmt!r}.")
    color = str(params.get("BackgroundColor") or "#FFFFFF")
    if color.lower() != "alpha":
        try:
            ImageColor.getrgb(color)
        except ValueError:
            raise invalid_argument(
                f"The parameter BackgroundColor {color!r} is not a colour (#RRGGBB, a name such as red, or alpha)."
            ) from None
    elif fmt == "jpg":
        raise invalid_argument(
            "BackgroundColor alpha needs ImageFormat png or webp: jpg has no transparency."
        )
    for index, source in enumerate(params.get("Sources") or []):
        if isinstance(source, dict) and int(source.get("Rotate") or 0) not in (0, 90, 180, 270):
            raise invalid_argument(f"Sources[{index}].Rotate must be 0, 90, 180 or 270.")


def _load(ctx: TaskContext, sources: list[Mapping[str, Any]]) -> list[Image.Image]:
    images = []
    for index, spec in enumerate(sources):
        uri = OssUri.parse(str(spec["URI"]), field=f"Sources[{index}].URI")
        path = ctx.fetch(uri, f"image-{index}")
        try:
            with Image.open(path) as opened:
                # Pillow reads only the header here: refuse a huge image before decoding it.
                inputs.check_image_size(str(uri), *opened.size)
                image = opened.copy()
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise TaskFailure(
                "InvalidArgument", f"{uri} is not an image the local IMM can read: {exc}"
            ) from None
        rotate = int(spec.get("Rotate") or 0)
        if rotate:
            image = image.rotate(-rotate, expand=True)
        images.append(image)
        ctx.report_progress(0.5 * (index + 1) / len(sources))
    return images


def _target(ctx: TaskContext) -> OssUri:
    first = OssUri.parse(str(ctx.request["Sources"][0]["URI"]))
    return ctx.target(str(ctx.request["TargetURI"]), first)


def splice(ctx: TaskContext) -> dict[str, Any]:
    request = ctx.request
    images = _load(ctx, request["Sources"])
    target = _target(ctx)
    vertical = str(request.get("Direction") or "vertical").lower() != "horizontal"
    align = int(request.get("Align") or (images[0].width if vertical else images[0].height))
    stretch = str(request.get("ScaleType") or "fit").lower() == "stretch"
    padding = int(request.get("Padding") or 0)
    margin = int(request.get("Margin") or 0)
    fmt = str(request.get("ImageFormat") or "jpg").lower()
    color_text = str(request.get("BackgroundColor") or "#FFFFFF")
    transparent = color_text.lower() == "alpha"
    scaled = []
    for image in images:
        if vertical:
            height = image.height if stretch else max(1, round(image.height * align / image.width))
            scaled.append(image.resize((align, height)))
        else:
            width = image.width if stretch else max(1, round(image.width * align / image.height))
            scaled.append(image.resize((width, align)))
    along = sum(i.height if vertical else i.width for i in scaled) + padding * (len(scaled) - 1)
    size = (align + 2 * margin, along + 2 * margin) if vertical else (along + 2 * margin, align + 2 * margin)
    mode = "RGBA" if transparent or fmt != "jpg" else "RGB"
    background = (0, 0, 0, 0) if transparent else ImageColor.getrgb(color_text)
    canvas = Image.new(mode, size, background)
    offset = margin
    for image in scaled:
        layer = image.convert("RGBA")
        position = (margin, offset) if vertical else (offset, margin)
        canvas.paste(layer, position, layer)
        offset += (image.height if vertical else image.width) + padding
    out = ctx.workdir / f"spliced.{fmt}"
    options: dict[str, Any] = {"quality": int(request.get("Quality") or 80)} if fmt in ("jpg", "webp") else {}
    canvas.save(out, SPLICE_FORMATS[fmt], **options)
    ctx.oss.upload(target, out)
    return {"Sources": request["Sources"], "TargetURI": str(target)}


def to_pdf(ctx: TaskContext) -> dict[str, Any]:
    request = ctx.request
    target = _target(ctx)
    pages = [image.convert("RGB") for image in _load(ctx, request["Sources"])]
    out = ctx.workdir / "images.pdf"
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=72.0)
    ctx.oss.upload(target, out)
    return {"Sources": request["Sources"], "TargetURI": str(target)}
