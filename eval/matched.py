"""Codecs at matched rates: `lic eval --target-bpp 0.1,0.25,...` measures every codec at the
same bpp targets, for tables that compare codecs at equal rates as papers do.

A classic codec's quality parameter is bisected per image over the whole integer range its
sweep spans (WebP 0..90, HEVC QP 22..51, ...) and the file nearest the target kept; the
lic hyperprior uses its own rate control (`lic.rate`, within ±1.5 % when reachable, else the
nearest reachable file). The curve's "quality" column holds the target in thousandths of a
bpp. Encoding times include the search.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from lic.errors import InputError
from lic.eval.codecs import Codec, LicCodec

SUFFIX = "@bpp"


def parse_targets(text: str) -> tuple[float, ...]:
    """'0.1,0.25,0.5' -> (0.1, 0.25, 0.5); an InputError for anything but positive numbers."""
    try:
        targets = tuple(float(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise InputError(f"--target-bpp takes bpp values separated by commas, not '{text}'") from None
    if not targets or any(not t > 0 or t > 64 for t in targets):
        raise InputError(f"--target-bpp values must be between 0 and 64 bpp, not '{text}'")
    return tuple(sorted(set(targets)))


def nearest_choice(encode: Callable[[int], bytes], params: list[int], bits: float) -> bytes:
    """The file nearest `bits` among `params` (ordered by rising rate), by bisection."""
    lo, hi = 0, len(params) - 1
    files: dict[int, bytes] = {}

    def size(i: int) -> int:
        if i not in files:
            files[i] = encode(params[i])
        return 8 * len(files[i])

    while lo < hi:  # the first parameter at or over the target
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if size(mid) < bits else (lo, mid)
    best = min({max(lo - 1, 0), lo}, key=lambda i: abs(size(i) - bits))
    return files[best]


class MatchedRate:
    """`inner` at bpp targets instead of at its qualities."""

    def __init__(self, inner: Codec, targets: tuple[float, ...]) -> None:
        if isinstance(inner, LicCodec) and inner.effort:
            raise InputError(f"{inner.name}: effort and rate targets cannot be combined yet")
        self.inner = inner
        self.name = inner.name + SUFFIX
        self.description = f"{inner.description}; at matched rates (bpp targets)"
        self.qualities = tuple(round(t * 1000) for t in targets)

    def unavailable(self) -> str | None:
        return self.inner.unavailable()

    def prepare(self, quality: int) -> None:
        """Nothing: the search loads what it needs."""

    def _lic_rate(self) -> bool:
        return isinstance(self.inner, LicCodec) and self.inner.from_zoo and self.inner.files[0].family == "hyperprior"

    def encode(self, rgb: np.ndarray, quality: int) -> bytes:
        bpp = quality / 1000
        if self._lic_rate():
            from lic.rate import Target, compress_to

            model = self.inner.files[0].name
            return compress_to(rgb, Target("bpp", bpp), model=model, device=self.inner.device, nearest=True)[0]
        sweep = self.inner.qualities
        if isinstance(self.inner, LicCodec):  # a model folder or file: its qualities only
            params = list(sweep)
        else:  # every integer between the sweep's ends, ordered by rising rate
            params = list(range(min(sweep), max(sweep) + 1))
            if sweep[0] > sweep[-1]:
                params.reverse()
        return nearest_choice(lambda p: self.inner.encode(rgb, p), params, bpp * rgb.shape[0] * rgb.shape[1])

    def decode(self, data: bytes) -> np.ndarray:
        return self.inner.decode(data)
