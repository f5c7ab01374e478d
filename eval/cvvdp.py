"""ColorVideoVDP (Mantiuk et al., SIGGRAPH 2024): a perceptual metric in JOD units that models
the display the images are seen on, for images and, with its temporal model, for whole clips.

The `cvvdp` package (an optional extra: `pip install 'lic[perceptual]'`) ships its calibration
with it, so the default metric used here loads no weights from the network; its `cvvdp-ml`
variants would download a checkpoint and are not used.

JOD (just-objectionable-difference) units: 10 is a copy indistinguishable from the reference;
a difference of 1 JOD means 75 % of observers would prefer the higher-scoring image in a
side-by-side comparison (on the scale's normal model, 0.5 JOD: 63 %, 0.25 JOD: 57 %, 0.1 JOD: 53 %).

The display model says how the pixels reach the eye: peak luminance, ambient light, size and
viewing distance (pixels per degree). `DEFAULT_DISPLAY` is cvvdp's own default; others are
named in the package's `display_models.json` (`displays()`).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from importlib import resources
from typing import Iterator

import numpy as np
import torch

from lic.errors import InputError

#: cvvdp's default display: a 30-inch 4K SDR monitor, 200 cd/m^2 peak, 250 lux office light,
#: seen from twice its height (0.75 m).
DEFAULT_DISPLAY = "standard_4k"

INSTALL_HINT = "ColorVideoVDP needs the perceptual extra: pip install 'lic[perceptual]' (the cvvdp package)"


def available() -> bool:
    """Whether the cvvdp package is installed (importing it takes seconds: this does not)."""
    from importlib.util import find_spec

    return find_spec("pycvvdp") is not None


def _pycvvdp():
    if not available():
        raise InputError(INSTALL_HINT)
    # torch warns on import of its C++-extension helper (which cvvdp pulls in) when no CUDA is
    # installed; that is not a problem for this metric, so the line is kept off the user's screen.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import pycvvdp

    return pycvvdp


def displays() -> dict[str, str]:
    """The display models cvvdp knows: name -> description."""
    if not available():
        raise InputError(INSTALL_HINT)
    text = resources.files("pycvvdp").joinpath("vvdp_data", "display_models.json").read_text()
    return {name: str(model.get("name", "")) for name, model in json.loads(text).items()}


def check_display(name: str) -> str:
    known = displays()
    if name not in known:
        raise InputError(f"unknown display '{name}' (cvvdp knows: {', '.join(sorted(known))})")
    return name


class _PairedFrames:
    """A cvvdp video source fed by an iterator of (reference, test) uint8 RGB frames.

    cvvdp asks for frame i's test frame and then its reference, frames in order (with its
    default 'replicate' padding it never reads ahead), so one pair is held at a time: memory
    does not grow with the clip."""

    def __init__(self, pairs: Iterator[tuple[np.ndarray, np.ndarray]], height: int, width: int, frames: int,
                 fps: float, photometry) -> None:
        self.pairs, self.size, self.fps, self.photometry = pairs, (height, width, frames), fps, photometry
        self.index, self.current = -1, None

    def _pair(self, frame: int) -> tuple[np.ndarray, np.ndarray]:
        while self.index < frame:
            pair = next(self.pairs, None)
            if pair is None:
                raise InputError(f"the clip ended after {self.index + 1} of {self.size[2]} frames")
            self.index, self.current = self.index + 1, pair
        if frame != self.index:
            raise RuntimeError(f"cvvdp asked for frame {frame} after frame {self.index}")  # not its documented order
        return self.current

    def _convert(self, rgb: np.ndarray, device, colorspace: str) -> torch.Tensor:
        frame = torch.from_numpy(np.ascontiguousarray(rgb)).to(device).permute(2, 0, 1)[None, :, None]
        return self.photometry.source_2_target_colorspace(frame.to(torch.float32) / 255, colorspace)

    # The video-source interface cvvdp calls.
    def get_video_size(self) -> tuple[int, int, int]:
        return self.size

    def get_frames_per_second(self) -> float:
        return self.fps

    def get_batch_size(self) -> int:
        return 1

    def get_frame_count(self) -> int:
        return self.size[2]

    def get_test_frame(self, frame: int, device, colorspace: str) -> torch.Tensor:
        return self._convert(self._pair(frame)[1], device, colorspace)

    def get_reference_frame(self, frame: int, device, colorspace: str) -> torch.Tensor:
        return self._convert(self._pair(frame)[0], device, colorspace)


class Cvvdp:
    """ColorVideoVDP on one display model, on the CPU unless told otherwise."""

    def __init__(self, display: str = DEFAULT_DISPLAY, device: str = "cpu") -> None:
        pycvvdp = _pycvvdp()
        self.display = check_display(display)
        self.metric = pycvvdp.cvvdp(display_name=display, device=torch.device(device), quiet=True)

    @torch.inference_mode()
    def image(self, reference: np.ndarray, test: np.ndarray) -> float:
        """JOD of `test` against `reference` (uint8 H x W x 3 RGB, display-encoded sRGB)."""
        if reference.shape != test.shape:
            raise ValueError(f"images differ in shape: {reference.shape} vs {test.shape}")
        jod, _ = self.metric.predict(test, reference, dim_order="HWC")
        return float(jod)

    @torch.inference_mode()
    def video(self, pairs: Iterator[tuple[np.ndarray, np.ndarray]], height: int, width: int, frames: int,
              fps: float) -> float:
        """JOD of a whole clip through cvvdp's temporal model, from (reference, test) frame pairs
        streamed one at a time; exactly `frames` pairs are read."""
        source = _PairedFrames(pairs, height, width, frames, fps, self.metric.display_photometry)
        jod, _ = self.metric.predict_video_source(source)
        return float(jod)


@lru_cache(maxsize=2)
def load(display: str = DEFAULT_DISPLAY) -> Cvvdp:
    """The metric for a display, built once per process."""
    return Cvvdp(display)
