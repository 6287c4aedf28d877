"""A minimal PNG writer (8-bit grayscale), so the library can save images without Pillow."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch

from .atomic import atomic_write_bytes


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bytes(gray: torch.Tensor) -> bytes:
    """gray: [H, W] values in 0..1 (clipped). Returns the bytes of a grayscale PNG."""
    img = (gray.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    h, w = img.shape
    rows = b"".join(b"\x00" + bytes(img[r].tolist()) for r in range(h))  # filter 0 on every row
    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)  # 8-bit grayscale, no interlace
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows, 9)) + _chunk(b"IEND", b"")


def image_grid(rows: list[list[torch.Tensor]], scale: int = 8, gap: int = 2) -> torch.Tensor:
    """Tile [h, w] images (each row a list of them) into one [H, W] image, each pixel
    blown up to scale x scale, with a mid-gray gap between tiles."""
    h, w = rows[0][0].shape
    n_cols = max(len(r) for r in rows)
    th, tw = h * scale, w * scale
    out = torch.full((len(rows) * (th + gap) + gap, n_cols * (tw + gap) + gap), 0.5)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            big = img.detach().float().cpu().repeat_interleave(scale, 0).repeat_interleave(scale, 1)
            y, x = gap + i * (th + gap), gap + j * (tw + gap)
            out[y:y + th, x:x + tw] = big
    return out


def write_png(path: str | Path, gray: torch.Tensor) -> None:
    atomic_write_bytes(Path(path), png_bytes(gray))
