"""Block motion: the decoder's exact prediction and the encoder's search.

PREDICTION (the decoder runs it, so it is integer arithmetic only and bit-exact everywhere).
A frame of H x W pixels (multiples of the block size B, a power of two) has one motion vector
(dy, dx) per B x B block, in quarter pixels: an integer field of shape (H // B, W // B, 2).
A pixel is predicted by overlapped block motion compensation (OBMC): the block's own vector and
the vectors of its nearest horizontal, vertical and diagonal neighbours each give a prediction,
mixed with a separable raised-cosine window (`window`): along each axis the own block gets
w[p] (from about B at the block edge to 2B at its centre), the neighbour 2B - w[p]. The
neighbour is the block before for p < B/2 and the block after otherwise; at the frame border
the missing neighbour is the block itself.

One prediction at quarter-pel position (4y + dy, 4x + dx) is the separable 4-tap filter
`TAPS[phase]` (HEVC's chroma filter at quarter and half positions; sum 2**TAP_BITS) over the
samples at integer offsets -1 .. 2 from floor(position / 4). Samples outside the reference take
the nearest border sample (edge extension), so every vector, however far out, predicts
something. Everything is summed without rounding and rounded once:

    pred = clip((sum over the 4 vectors of wy * wx * interp + 2**(s-1)) >> s, 0, 255),
    s = 2 * TAP_BITS + 2 * log2(2B).

Why these choices (mean prediction PSNR over 10 frame pairs of BasketballPass, foreman and
akiyo, blocks of 16 and 8, same search): OBMC leaves no block edges in the residual and beat
plain block prediction by 0.4 dB; the raised-cosine window beat a triangular one by 0.1 dB; the
4-tap filter beat bilinear interpolation by 0.2-0.3 dB and HEVC's 8-tap luma filter by 0.1 dB.

SEARCH (the encoder only; floats allowed, it decides what to send). Coarse to fine on the luma
plane of a 3-level pyramid: at quarter resolution every integer vector within +-search/4 is
tried; at half and full resolution each block tries its own upscaled vector, its neighbours',
the median predictor and zero, then +-1 around the best. A block is matched through a window of
B x B samples centred on it at every level, so at coarse levels the window spans 2 or 4 blocks
and the vectors it gives are stable starting points. Then half- and quarter-pel refinement with
the decoder's own integer interpolation, and `SMOOTH_PASSES` passes in which each block may
adopt a neighbour's vector or its median predictor. A vector's cost is its block's luma SAD
plus `lam` times `mv_bits` of its difference from the median predictor that `motion_coding`
codes, so flat areas keep small, predictable vectors. Every vector component stays within
+-`search` pixels (32 by default), at every level.
"""

from __future__ import annotations

import numpy as np

from lic.video.motion_coding import median_predictor

QPEL = 4  # vector units per pixel
LEVELS = 3  # pyramid levels of the search
SMOOTH_PASSES = 2  # rate-aware passes that let blocks adopt a neighbour's vector
#: Interpolation filters by quarter-pel phase, applied at integer offsets -1, 0, 1, 2.
TAPS = np.array([[0, 64, 0, 0], [-4, 54, 16, -2], [-4, 36, 36, -4], [-2, 16, 54, -4]], dtype=np.int32)
TAP_BITS = 6
_TAPS16 = TAPS.astype(np.int16)
_LEFT = 1  # how many taps sit before the sample position


def window(block: int) -> np.ndarray:
    """The own-block weights w[p], p = 0 .. block-1 (int64; the neighbour gets 2 * block - w[p]).

    w[p] = block * (1 + sin(90 degrees * u / block)), u = 2 * (distance to the nearer edge) + 1,
    rounded: a raised-cosine overlap. The sine is Bhaskara I's rational approximation
    sin(t deg) ~ 4t(180 - t) / (40500 - t(180 - t)), evaluated in integers, so the weights are
    part of the exact specification (for blocks up to 32 they equal the rounded true sine).
    """
    p = np.arange(block, dtype=np.int64)
    u = 2 * np.minimum(p, block - 1 - p) + 1
    a = 90 * u * (180 * block - 90 * u)  # t(180 - t) * block**2 with t = 90u / block
    den = 40500 * block * block - a
    return block + (8 * block * a + den) // (2 * den)


def check_field(mv: np.ndarray, height: int, width: int, block: int) -> None:
    """Raises ValueError unless `mv` is an integer field of (dy, dx) for this frame and block."""
    if block < 2 or block & (block - 1):
        raise ValueError(f"block size must be a power of two >= 2, not {block}")
    if height % block or width % block:
        raise ValueError(f"frame {height}x{width} is not a multiple of the block size {block}")
    if mv.shape != (height // block, width // block, 2) or not np.issubdtype(mv.dtype, np.integer):
        raise ValueError(f"motion field must be integers of shape {(height // block, width // block, 2)}, not {mv.dtype}{mv.shape}")


def interpolate(ref: np.ndarray, mv: np.ndarray, size: int) -> np.ndarray:
    """Each size x size tile of the frame predicted with one vector, unrounded.

    ref: (H, W, C) uint8; mv: (H // size, W // size, 2) quarter-pel vectors. Returns int32
    (H // size, W // size, size, size, C) at scale 2**(2 * TAP_BITS).
    """
    height, width = ref.shape[:2]
    n = TAPS.shape[1]
    mv = mv.astype(np.int64)
    rows = _tile_indices(mv[..., 0], size, height, n, 0)[:, :, :, None]
    cols = _tile_indices(mv[..., 1], size, width, n, 1)[:, :, None, :]
    # (ty, tx, size + n - 1, size + n - 1, C); int16 is exact for the horizontal pass: its
    # partial sums stay within 255 * (sum of the positive taps) = 17850.
    patch = ref[rows, cols].astype(np.int16)
    wx = _TAPS16[mv[..., 1] & 3][:, :, None, None, :, None]
    across = sum(wx[..., t, :] * patch[:, :, :, t : t + size] for t in range(n)).astype(np.int32)
    wy = TAPS[mv[..., 0] & 3][:, :, None, None, :, None]
    return sum(wy[..., t, :] * across[:, :, t : t + size] for t in range(n))


def _tile_indices(d: np.ndarray, size: int, limit: int, n: int, axis: int) -> np.ndarray:
    """Clamped sample indices (tiles y, tiles x, size + n - 1) along `axis` for tile offsets `d` (qpel)."""
    origin = np.arange(d.shape[axis]) * size
    origin = origin[:, None] if axis == 0 else origin[None, :]
    first = origin + (d >> 2) - _LEFT
    return np.clip(first[:, :, None] + np.arange(size + n - 1), 0, limit - 1)


def predict(ref: np.ndarray, mv: np.ndarray, block: int = 16) -> np.ndarray:
    """The OBMC prediction (H, W, C) uint8 of a frame from `ref` (H, W, C) uint8 with field `mv`."""
    if ref.dtype != np.uint8 or ref.ndim != 3:
        raise ValueError(f"the reference must be a uint8 array (H, W, C), not {ref.dtype}{ref.shape}")
    height, width = ref.shape[:2]
    check_field(mv, height, width, block)
    half = block // 2
    w = window(block)
    acc = np.zeros((2 * mv.shape[0], 2 * mv.shape[1], half, half, ref.shape[2]), dtype=np.int64)
    ys, wys = _quadrants(mv.shape[0], w)
    xs, wxs = _quadrants(mv.shape[1], w)
    for by, wy in zip(ys, wys):
        for bx, wx in zip(xs, wxs):
            weight = wy[:, None, :, None, None] * wx[None, :, None, :, None]
            acc += weight * interpolate(ref, mv[by[:, None], bx[None, :]], half)
    shift = 2 * TAP_BITS + 2 * (2 * block).bit_length() - 2
    out = np.clip((acc + (1 << (shift - 1))) >> shift, 0, 255).astype(np.uint8)
    return out.transpose(0, 2, 1, 3, 4).reshape(height, width, ref.shape[2])


def _quadrants(blocks: int, w: np.ndarray):
    """Along one axis of half-block tiles: (own block, neighbour block) indices and their weights."""
    half = w.size // 2
    tile = np.arange(2 * blocks)
    own = tile // 2
    second = tile % 2
    neighbour = np.clip(own + np.where(second, 1, -1), 0, blocks - 1)
    w_own = w[second[:, None] * half + np.arange(half)].astype(np.int64)
    return (own, neighbour), (w_own, 2 * w.size - w_own)


def prediction_error(cur: np.ndarray, ref: np.ndarray, mv: np.ndarray, block: int = 16) -> np.ndarray:
    """Mean squared error of the OBMC prediction per block, (H // B, W // B) float64.

    Its mean is the frame's MSE; large blocks show where motion compensation failed (a scene
    cut, uncovered background) and intra coding may pay.
    """
    err = (cur.astype(np.float64) - predict(ref, mv, block)) ** 2
    h, w = mv.shape[:2]
    return err.reshape(h, block, w, block, -1).mean(axis=(1, 3, 4))


def luma(frame: np.ndarray) -> np.ndarray:
    """Integer BT.601 luma (H, W, 1) uint8: the plane the search matches on."""
    f = frame.astype(np.int32)
    return ((77 * f[..., 0] + 150 * f[..., 1] + 29 * f[..., 2] + 128) >> 8).astype(np.uint8)[..., None]


def mv_bits(d: np.ndarray) -> np.ndarray:
    """Approximate bits of vector differences d (..., 2) in quarter pels: log-like, as a coder
    that adapts to the field's spread pays (the exact cost depends on the table chosen later)."""
    return (1 + 2 * np.log2(1 + np.abs(d))).sum(-1)


def estimate(
    cur: np.ndarray,
    ref: np.ndarray,
    block: int = 16,
    search: int = 32,
    lam: float = 4.0,
    picture: tuple[int, int] | None = None,
) -> np.ndarray:
    """A motion field (H // B, W // B, 2) int32 in quarter pels for predicting `cur` from `ref`.

    cur, ref: (H, W, 3) uint8. search: the largest |component| in pixels. lam: SAD (luma, 0-255)
    per bit of motion; larger keeps the field smoother and cheaper. picture: (height, width)
    of the picture when the frames are padded beyond it; pixels outside it do not count, so
    blocks of padding take the cheapest vectors instead of chasing replicated edges.
    """
    height, width = cur.shape[:2]
    shape = (height // block, width // block)
    check_field(np.zeros(shape + (2,), np.int32), height, width, block)
    if ref.shape != cur.shape:
        raise ValueError(f"frames differ in shape: {cur.shape} vs {ref.shape}")
    yc, yr = luma(cur), luma(ref)
    weight = np.zeros((height, width), np.float32)
    weight[: (picture or cur.shape)[0], : (picture or cur.shape)[1]] = 1
    pyramid = [(yc[..., 0].astype(np.float32), yr[..., 0].astype(np.float32), weight)]
    for _ in range(LEVELS - 1):
        pyramid.append(tuple(_half(p) for p in pyramid[-1]))
    top = LEVELS - 1
    v = _full_search(*pyramid[top], shape, block, top, -(-search >> top), lam)
    for level in reversed(range(top)):
        cost = _window_cost(*pyramid[level], shape, block, level, lam)
        limit = search >> level
        v = _best(2 * v, _neighbours(2 * v) + [np.zeros_like(v)], cost, limit)
        v = _best(v, _around(v, 1), cost, limit)
    v = v * QPEL
    cost = _block_cost(yc, yr, weight, block, lam)
    for step in (2, 1):
        v = _best(v, _around(v, step), cost, QPEL * search)
    for _ in range(SMOOTH_PASSES):
        v = _best(v, _neighbours(v), cost, QPEL * search)
    for y, x in np.argwhere(_tiles(weight, block).max((-1, -2)) == 0):  # raster order
        v[y, x] = median_predictor(v[max(y - 1, 0) : y + 1])[-1, x]  # costs the fewest bits
    return v.astype(np.int32)


def _best(v, candidates, cost, limit):
    """Per block, the candidate of least cost; rates are measured against v's median predictors."""
    pred = median_predictor(v)
    best_cost, best = None, None
    for cand in candidates:
        cand = np.clip(cand, -limit, limit)
        c = cost(cand, pred)
        if best is None:
            best_cost, best = c, cand.copy()
        else:
            better = c < best_cost
            best_cost[better] = c[better]
            best[better] = cand[better]
    return best


def _around(v, step):
    return [v + (oy, ox) for oy in (-step, 0, step) for ox in (-step, 0, step)]


def _neighbours(v):
    """v, its median predictors, and each block's four neighbours' vectors."""
    return [v, median_predictor(v)] + [_shift_field(v, dy, dx) for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))]


def _shift_field(v, dy, dx):
    ny, nx = v.shape[:2]
    iy = np.clip(np.arange(ny) + dy, 0, ny - 1)
    ix = np.clip(np.arange(nx) + dx, 0, nx - 1)
    return v[iy[:, None], ix[None, :]]


def _half(img: np.ndarray) -> np.ndarray:
    h, w = img.shape
    img = np.pad(img, ((0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (img[0::2, 0::2] + img[1::2, 0::2] + img[0::2, 1::2] + img[1::2, 1::2])


def _window_tops(shape, block: int, level: int):
    """Top-left corners, at this pyramid level, of block x block windows centred on each block.

    At level l such a window covers 2**l blocks: coarse levels match larger areas, which
    is what makes their vectors reliable starting points.
    """
    cy = (np.arange(shape[0]) * block + block // 2) >> level
    cx = (np.arange(shape[1]) * block + block // 2) >> level
    return np.meshgrid(cy - block // 2, cx - block // 2, indexing="ij")


def _full_search(cur, ref, weight, shape, block, level, r, lam):
    """Every integer vector within +-r at this level: SADs of all windows from one integral image per vector."""
    c = np.pad(cur, block, mode="edge")
    wp = np.pad(weight, block)
    rp = np.pad(ref, block + r, mode="edge")
    ty, tx = _window_tops(shape, block, level)
    ty, tx = ty + block, tx + block
    h, w = c.shape
    integral = np.zeros((h + 1, w + 1))
    best_cost = np.full(shape, np.inf)
    v = np.zeros(shape + (2,), np.int64)
    for oy in range(-r, r + 1):
        for ox in range(-r, r + 1):
            diff = np.abs(c - rp[r + oy : r + oy + h, r + ox : r + ox + w]) * wp
            integral[1:, 1:] = diff.cumsum(0).cumsum(1)
            b, e = (ty, tx), (ty + block, tx + block)
            sad = integral[e[0], e[1]] - integral[b[0], e[1]] - integral[e[0], b[1]] + integral[b[0], b[1]]
            cost = sad + lam * mv_bits(np.array([oy, ox]) * (QPEL << level))
            better = cost < best_cost
            best_cost[better] = cost[better]
            v[better] = (oy, ox)
    return v


def _window_cost(cur, ref, weight, shape, block, level, lam):
    """Cost of integer vectors at a pyramid level: window SAD + lam * bits."""
    ty, tx = _window_tops(shape, block, level)
    target = _gather(cur, ty, tx, block)
    inside = _gather(np.pad(weight, block), ty + block, tx + block, block)  # windows reach < block out

    def cost(cand, pred):
        sad = (np.abs(target - _gather(ref, ty + cand[..., 0], tx + cand[..., 1], block)) * inside).sum((-1, -2))
        return sad + lam * mv_bits((cand - pred) * (QPEL << level))

    return cost


def _tiles(img, block):
    """(H, W) -> (H // block, W // block, block, block)."""
    return img.reshape(img.shape[0] // block, block, img.shape[1] // block, block).transpose(0, 2, 1, 3)


def _gather(img, ty, tx, size):
    h, w = img.shape
    rows = np.clip(ty[..., None] + np.arange(size), 0, h - 1)
    cols = np.clip(tx[..., None] + np.arange(size), 0, w - 1)
    return img[rows[..., :, None], cols[..., None, :]]


def _block_cost(cur, ref, weight, block, lam):
    """Cost of quarter-pel vectors: the block's luma SAD under the decoder's interpolation + lam * bits."""
    target = _tiles(cur[..., 0], block).astype(np.int32) << (2 * TAP_BITS)
    inside = _tiles(weight, block) / (1 << 2 * TAP_BITS)

    def cost(cand, pred):
        sad = (np.abs(target - interpolate(ref, cand, block)[..., 0]) * inside).sum((-1, -2))
        return sad + lam * mv_bits(cand - pred)

    return cost
