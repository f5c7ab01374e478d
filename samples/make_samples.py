"""Makes the samples in this folder (the project's own, free of third-party rights): two
images and a short clip.

    python samples/make_samples.py
"""

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

HERE = Path(__file__).parent


def landscape(width: int = 320, height: int = 224) -> Image.Image:
    """A synthetic 'photo': sky gradient, sun, layered hills with texture, a lake."""
    rng = np.random.default_rng(7)
    y = np.linspace(0, 1, height)[:, None, None]
    sky = (1 - y) * np.array([90, 150, 230]) + y * np.array([250, 200, 160])
    img = np.broadcast_to(sky, (height, width, 3)).copy()
    x = np.arange(width)
    for i, (base, colour) in enumerate([(0.55, (70, 110, 80)), (0.68, (50, 90, 50)), (0.8, (35, 70, 30))]):
        ridge = height * (base + 0.05 * np.sin(x / (23 + 9 * i) + i) + 0.03 * np.sin(x / 7.1 + 2 * i))
        mask = np.arange(height)[:, None] > ridge[None, :]
        texture = rng.normal(0, 10, (height, width, 1))
        img = np.where(mask[..., None], np.array(colour) + texture, img)
    lake = np.arange(height)[:, None] > height * 0.88
    img = np.where(lake[..., None], img[::-1] * 0.6 + np.array([20, 40, 80]), img)
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width * 0.7, height * 0.12, width * 0.7 + 36, height * 0.12 + 36), fill=(255, 236, 170))
    return image.filter(ImageFilter.GaussianBlur(0.6))


def shapes(width: int = 200, height: int = 150) -> Image.Image:
    """Flat colours, sharp edges and text: what learned codecs find hardest to keep crisp."""
    image = Image.new("RGB", (width, height), (245, 245, 240))
    draw = ImageDraw.Draw(image)
    draw.rectangle((10, 10, 90, 70), fill=(200, 40, 40))
    draw.ellipse((100, 20, 180, 100), fill=(30, 90, 200), outline=(0, 0, 0), width=3)
    draw.polygon([(20, 140), (70, 80), (120, 140)], fill=(240, 200, 30))
    for i in range(0, width, 8):
        draw.line((i, 120, i + 40, 148), fill=(60, 60, 60))
    draw.text((130, 115), "lic", fill=(0, 0, 0))
    return image


def clip(frames: int = 8, width: int = 128, height: int = 96) -> list[np.ndarray]:
    """A camera pan over the landscape (2 px a frame) with a ball crossing it the other way:
    motion for the P-frames to find, small enough to code in seconds on a CPU."""
    scene = np.asarray(landscape(width + 2 * frames, height))
    out = []
    for t in range(frames):
        frame = Image.fromarray(scene[:, 2 * t : 2 * t + width].copy())
        x = width - 20 - 9 * t
        ImageDraw.Draw(frame).ellipse((x, 30 + 2 * t, x + 16, 46 + 2 * t), fill=(200, 40, 40))
        out.append(np.asarray(frame))
    return out


def save_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    """Lossless H.264 RGB (`lic.video.io.VideoWriter`), so the sample is coded as drawn."""
    from lic.video.io import VideoWriter

    with VideoWriter(path, fps, frames[0].shape[1], frames[0].shape[0], force=True) as writer:
        for frame in frames:
            writer.write(frame)


if __name__ == "__main__":
    landscape().save(HERE / "landscape.png", optimize=True)
    shapes().save(HERE / "shapes.png", optimize=True)
    save_clip(HERE / "clip.mp4", clip())
