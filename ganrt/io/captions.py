"""Captions under images (``ganrt generate --grid-labels``): each image above its class name, drawn with
Pillow's built-in bitmap font (no font file to find or download; the same pixels everywhere)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_GAP = 1  # pixels between an image and its caption, and below the caption


def captioned(images: np.ndarray, captions: Sequence[str], *, background: int = 255, ink: int = 0) -> np.ndarray:
    """(N, H, W, C) uint8 images and N captions -> (N, H + text + 2, max(W, text width), C) cells: each image
    centred at the top, its caption centred below; pass them to ``make_grid`` / ``save_grid`` as images."""
    from PIL import Image, ImageDraw, ImageFont

    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or images.shape[3] not in (1, 3):
        raise ValueError(f"captioned needs (N, H, W, 1|3) uint8 images, got {images.dtype} {images.shape}")
    if len(captions) != len(images):
        raise ValueError(f"captioned needs one caption per image: {len(captions)} for {len(images)}")
    font = ImageFont.load_default_imagefont()  # the bitmap font built into Pillow, not the FreeType one
    boxes = [font.getbbox(text) for text in captions]
    n, h, w, c = images.shape
    text_h = max((b[3] for b in boxes), default=0)
    width = max([w, *(b[2] + 2 for b in boxes)])
    cells = np.full((n, h + text_h + 2 * _GAP, width, c), background, dtype=np.uint8)
    mode = "L" if c == 1 else "RGB"
    for k, (image, text, box) in enumerate(zip(images, captions, boxes)):
        x0 = (width - w) // 2
        cells[k, :h, x0 : x0 + w] = image
        strip = Image.new(mode, (width, text_h), background if c == 1 else (background,) * 3)
        ImageDraw.Draw(strip).text(((width - box[2]) // 2, 0), text, font=font, fill=ink if c == 1 else (ink,) * 3)
        cells[k, h + _GAP : h + _GAP + text_h] = np.asarray(strip).reshape(text_h, width, c)
    return cells
