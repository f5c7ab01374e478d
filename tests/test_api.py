"""lic.compress / lic.decompress on every kind of input, and every kind of bad input."""

import io

import numpy as np
import pytest
from PIL import Image

import lic
from lic.codecs.base import as_pixels, as_rgb, pad_to_multiple
from lic.errors import FormatError, InputError, ModelError
from helpers import photo_like


@pytest.fixture()
def roundtrip(tiny_model):
    def run(source):
        data = lic.compress(source, quality=2, model=str(tiny_model))
        return data, lic.decompress(data, model=str(tiny_model))

    return run


@pytest.mark.parametrize("size", [(1, 1), (17, 33), (64, 64), (65, 130), (300, 7), (1201, 1601)])
def test_any_size_roundtrips(roundtrip, tiny_codec, size):
    h, w = size
    source = photo_like(h, w)
    _, image = roundtrip(source)
    assert image.size == (w, h) and image.mode == "RGB"
    # the pixels are those the codec decodes for the padded source, cropped back to the source's size
    x = pad_to_multiple(as_pixels(source), tiny_codec.stride)[0]
    expected = as_rgb(tiny_codec.decode(tiny_codec.encode(x), *x.shape[-2:]))[:h, :w]
    assert np.array_equal(np.asarray(image), expected)


def test_rgba_keeps_alpha_exactly(roundtrip):
    rgba = np.dstack([photo_like(40, 50), np.random.default_rng(0).integers(0, 256, (40, 50), dtype=np.uint8)])
    data, image = roundtrip(Image.fromarray(rgba, "RGBA"))
    assert image.mode == "RGBA" and lic.read_header(data).has_alpha
    assert np.array_equal(np.asarray(image)[..., 3], rgba[..., 3])


def test_greyscale_comes_back_greyscale(roundtrip):
    grey = photo_like(40, 50)[..., 0]
    _, image = roundtrip(Image.fromarray(grey, "L"))
    assert image.mode == "L" and image.size == (50, 40)
    _, image = roundtrip(Image.fromarray(np.dstack([grey, grey]), "LA"))
    assert image.mode == "LA"


def test_sixteen_bit_png_is_coded_at_eight_bits(roundtrip, tmp_path):
    values = (np.linspace(0, 65535, 40 * 50).reshape(40, 50)).astype(np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    data, image = roundtrip(tmp_path / "deep.png")
    assert image.mode == "L" and lic.read_header(data).flags & 4


def test_palette_and_transparency(roundtrip):
    palette = Image.fromarray(photo_like(30, 40)).quantize(16)
    assert roundtrip(palette)[1].mode == "RGB"
    palette.info["transparency"] = 0
    assert roundtrip(palette)[1].mode == "RGBA"


def test_jpeg_and_cmyk_inputs(roundtrip, tmp_path):
    Image.fromarray(photo_like(40, 60)).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(photo_like(40, 60)).convert("CMYK").save(tmp_path / "c.jpg")
    assert roundtrip(tmp_path / "a.jpg")[1].size == (60, 40)
    assert roundtrip(tmp_path / "c.jpg")[1].mode == "RGB"


def test_exif_orientation_is_applied(roundtrip, tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    Image.fromarray(photo_like(20, 60)).save(tmp_path / "r.jpg", exif=exif)
    assert roundtrip(tmp_path / "r.jpg")[1].size == (20, 60)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p, "no such file"),
        (lambda p: p.parent, "is a folder"),
        (lambda p: (p.write_text("hello"), p)[1], "not an image"),
        (lambda p: (Image.new("F", (8, 8)).save(p.with_suffix(".tif")), p.with_suffix(".tif"))[1], "floating-point"),
    ],
)
def test_bad_inputs_are_refused_with_a_message(tiny_model, tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        lic.compress(make(tmp_path / "in.png"), model=str(tiny_model), quality=2)


def test_animations_and_bad_arrays_are_refused(tiny_model, tmp_path):
    frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue")]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="animated"):
        lic.compress(tmp_path / "a.gif", model=str(tiny_model), quality=2)
    with pytest.raises(InputError, match="uint8"):
        lic.compress(np.zeros((8, 8, 3), np.float32), model=str(tiny_model), quality=2)


def test_model_problems_are_named(tiny_model, tmp_path):
    data = lic.compress(photo_like(16, 16), quality=2, model=str(tiny_model))
    with pytest.raises(ModelError, match="not installed"):
        lic.decompress(data)
    with pytest.raises(ModelError, match="no such model file"):
        lic.decompress(data, model=str(tmp_path / "missing.safetensors"))
    with pytest.raises(ModelError, match="unknown model"):
        lic.compress(photo_like(16, 16), quality=2, model="no-such-model")
    (tmp_path / "fake.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(ModelError, match="not a lic model file"):
        lic.decompress(data, model=str(tmp_path / "fake.safetensors"))


def test_a_different_model_is_refused(tiny_model, tmp_path):
    import torch

    from lic.codecs.hyperprior_net import MeanScaleHyperprior
    from lic.export.hyperprior import export
    from lic.models import save_model_file

    torch.manual_seed(1)
    other = save_model_file(tmp_path / "other.safetensors", export(MeanScaleHyperprior(16, 24), torch.rand(1, 3, 64, 64)),
                            {"name": "other", "family": "hyperprior", "quality": 2, "N": 16, "M": 24})
    data = lic.compress(photo_like(16, 16), quality=2, model=str(tiny_model))
    with pytest.raises(ModelError, match="encoded with model"):
        lic.decompress(data, model=str(other.path))


def test_damaged_files_raise_format_errors(tiny_model):
    data = lic.compress(photo_like(16, 16), quality=2, model=str(tiny_model))
    for damaged in (data[:-1], data[: len(data) // 2], data[:3], b"GIF89a" + data[6:]):
        with pytest.raises(FormatError):
            lic.decompress(damaged, model=str(tiny_model))


def test_cuda_without_a_gpu_is_a_clear_error(tiny_model):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(InputError, match="no CUDA GPU"):
        lic.compress(photo_like(16, 16), quality=2, model=str(tiny_model), device="cuda")
