"""Running a codec's networks tile by tile, so that memory does not grow with the image.

A 24-megapixel image through the hyperprior's synthesis needs about 1 GB of float64
activations per megapixel at once; tile by tile it needs what one tile needs. The networks
are convolutional with a small receptive field, so a tile computed together with a *halo*
of surrounding input (cropped away afterwards) gets the values the whole-image pass gets:
every convolution sees the same neighbours, and at the image border the same zero padding.

Tiles are laid on the coarse grid (one cell per latent or codebook index: 16 or 64 pixels),
so every strided layer of a tile sees the same sampling phase as in the whole image. The
arithmetic is the same up to the order in which a convolution routine sums (which may
depend on the tensor size): float64 networks give the same 8-bit pixels tiled or not (the
tests check it), float32 encoders may differ in the last bits, which can move a latent or
an index that lies on a rounding boundary: the file is then a different but valid one.
The hyperprior's integer hyper-decoder h_s is tiled the same way (on the z grid); its
arithmetic is exact, so its tiles give the whole-image integers bit for bit.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def run_tiled(
    network: Callable[[Tensor], Tensor],
    x: Tensor,
    cell_in: int,
    cell_out: int,
    tile: int,
    halo: int,
    finish: Callable[[Tensor], Tensor] = lambda t: t.cpu(),
) -> Tensor:
    """`finish(network(x))` computed `tile` x `tile` grid cells at a time, on the CPU.

    x: [1, C, H, W] with H, W multiples of `cell_in`; one grid cell is `cell_in` pixels of
    the input and `cell_out` of the output (16 and 1 for an analysis transform, 1 and 16 for
    a synthesis transform). `halo` cells of context must cover the receptive field.
    `finish` maps each output tile to what is kept (e.g. 8-bit pixels), so that only the
    kept form of the whole output is ever held.
    """
    rows, cols = x.shape[-2] // cell_in, x.shape[-1] // cell_in
    out: Tensor | None = None
    for r0 in range(0, rows, tile):
        for c0 in range(0, cols, tile):
            r1, c1 = min(r0 + tile, rows), min(c0 + tile, cols)
            a0, b0 = max(r0 - halo, 0), max(c0 - halo, 0)
            a1, b1 = min(r1 + halo, rows), min(c1 + halo, cols)
            piece = network(x[..., a0 * cell_in : a1 * cell_in, b0 * cell_in : b1 * cell_in])
            piece = finish(piece[..., (r0 - a0) * cell_out : (r1 - a0) * cell_out,
                                 (c0 - b0) * cell_out : (c1 - b0) * cell_out])
            if out is None:
                out = torch.empty((*piece.shape[:2], rows * cell_out, cols * cell_out), dtype=piece.dtype)
            out[..., r0 * cell_out : r1 * cell_out, c0 * cell_out : c1 * cell_out] = piece
    assert out is not None, "an empty image has no tiles"
    return out
