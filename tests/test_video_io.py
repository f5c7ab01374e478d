"""lic.video.io: exact lossless round trips, streaming reads, and one-line errors for bad inputs."""

import os
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from lic.errors import InputError
from lic.video.io import VideoWriter, natural_key, open_video
from helpers import DATA, clip, needs_data, photo_like, run_lic, write


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("name", ["clip.mkv", "clip.mp4", "frames"])
def test_lossless_round_trip_is_exact(tmp_path, name):
    frames = clip()
    write(tmp_path / name, frames, fps=Fraction(30000, 1001))
    video = open_video(tmp_path / name)
    assert (video.width, video.height, video.has_audio) == (64, 64, False)
    decoded = list(video)
    assert len(decoded) == 8 and all(np.array_equal(a, b) for a, b in zip(frames, decoded))
    if name != "frames":  # a folder has no rate of its own
        assert video.fps == Fraction(30000, 1001)
    assert list(video)[3].tobytes() == frames[3].tobytes()  # every iteration starts again


def test_folder_output_with_trailing_slash_and_natural_order(tmp_path):
    frames = clip(12)
    write(f"{tmp_path / 'out.frames'}/", frames)  # a suffix, but the slash says folder
    names = sorted(p.name for p in (tmp_path / "out.frames").iterdir())
    assert len(names) == 12 and names[0] == "000001.png"
    assert (tmp_path / "out.frames").stat().st_mode & 0o777 == 0o777 & ~current_umask()  # not mkdtemp's 0700
    folder = tmp_path / "numbered"
    folder.mkdir()
    for i, frame in enumerate(frames, 1):  # f1 ... f12: plain sorting would put f10 after f1
        Image.fromarray(frame).save(folder / f"f{i}.png")
    (folder / "notes.txt").write_text("not a frame")
    video = open_video(folder, fps=50)
    assert video.fps == 50 and video.frames == 12
    assert all(np.array_equal(a, b) for a, b in zip(frames, video))
    assert open_video(folder).fps == 25
    assert sorted(["f10", "f2", "F1"], key=natural_key) == ["F1", "f2", "f10"]


def test_writer_refuses_to_overwrite_and_leaves_nothing_on_error(tmp_path):
    frames = clip(2)
    write(tmp_path / "a.mkv", frames)
    with pytest.raises(InputError, match="already exists"):
        write(tmp_path / "a.mkv", frames)
    write(tmp_path / "a.mkv", frames[::-1], force=True)
    assert np.array_equal(next(iter(open_video(tmp_path / "a.mkv"))), frames[1])
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "b.mp4", 25, 64, 64) as writer:
        writer.write(frames[0])
        raise RuntimeError("interrupted")
    with pytest.raises(InputError, match="not uint8"), VideoWriter(tmp_path / "c", 25, 64, 64) as writer:
        writer.write(frames[0][:32])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mkv"]  # no temporary files either


def test_forced_folder_output_replaces_only_a_folder_of_frames(tmp_path):
    frames = clip(3)
    write(tmp_path / "out", frames)
    write(tmp_path / "out", frames[:2], force=True)
    assert len(list((tmp_path / "out").iterdir())) == 2
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="holds files other than PNG"):
        write(tmp_path / "out", frames, force=True)


@pytest.mark.parametrize(
    "name, message",
    [("clip.y4m", "cannot keep RGB frames exactly"), ("clip.avi", "unsupported video output"),
     ("missing/clip.mkv", "no such folder")],
)
def test_writer_refuses_lossy_or_unknown_outputs(tmp_path, name, message):
    with pytest.raises(InputError, match=message):
        VideoWriter(tmp_path / name, 25, 64, 64)


def test_reads_y4m_and_knows_sound_from_video(tmp_path):
    frames = clip(3)
    with av.open(str(tmp_path / "a.y4m"), "w", format="yuv4mpegpipe") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv444p")))
        container.mux(stream.encode(None))
    video = open_video(tmp_path / "a.y4m")
    decoded = list(video)
    assert len(decoded) == 3 and video.frames is None and not video.has_audio
    assert np.abs(decoded[0].astype(int) - frames[0]).mean() < 2  # Y'CbCr 4:4:4 there and back

    with av.open(str(tmp_path / "b.mkv"), "w") as container:
        picture = container.add_stream("ffv1", rate=25)
        picture.width, picture.height, picture.pix_fmt = 64, 64, "bgr0"
        sound = container.add_stream("pcm_s16le", rate=8000)
        container.mux(picture.encode(av.VideoFrame.from_ndarray(frames[0], format="rgb24")))
        container.mux(picture.encode(None))
        silence = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        silence.sample_rate = 8000
        container.mux(sound.encode(silence))
        container.mux(sound.encode(None))
    assert open_video(tmp_path / "b.mkv").has_audio

    with av.open(str(tmp_path / "c.mka"), "w") as container:  # sound only
        sound = container.add_stream("pcm_s16le", rate=8000)
        container.mux(sound.encode(silence))
        container.mux(sound.encode(None))
    with pytest.raises(InputError, match="has no video stream"):
        open_video(tmp_path / "c.mka")


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "text.mp4").write_text("not a video at all")
    (tmp_path / "empty").mkdir()
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(photo_like(32, 32)).save(mixed / "f1.png")
    Image.fromarray(photo_like(32, 48)).save(mixed / "f2.png")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "f1.png").write_bytes(b"\x89PNG not really")
    cases = [
        (tmp_path / "text.mp4", "not a video that FFmpeg can read"),
        (tmp_path / "nothing.mp4", "no such file or folder"),
        (tmp_path / "empty", "no image frames"),
        (tmp_path / "broken", "not an image"),
    ]
    for path, message in cases:
        with pytest.raises(InputError, match=message) as error:
            open_video(path)
        assert "\n" not in str(error.value)
    with pytest.raises(InputError, match="frame 2 is 48x32, not 32x32"):
        list(open_video(mixed))


@needs_data
def test_reads_the_shared_clips_as_streams():
    foreman = open_video(DATA / "video" / "foreman_cif.mp4")
    assert (foreman.width, foreman.height, foreman.frames, foreman.fps) == (352, 288, 300, 30)
    first = next(iter(foreman))
    assert first.shape == (288, 352, 3) and first.dtype == np.uint8
    basketball = open_video(DATA / "video" / "BasketballPass_416x240_50fps_100f", fps=50)
    assert (basketball.width, basketball.height, basketball.frames) == (416, 240, 100)
    assert np.array_equal(next(iter(basketball)), np.asarray(Image.open(basketball.path / "f001.png").convert("RGB")))


def test_lic_decode_refuses_y4m_in_one_line(tmp_path, video_model):

    import lic

    lic.compress_video(clip(2), tmp_path / "a.lic", 1, model=str(video_model))
    r = run_lic("decode", str(tmp_path / "a.lic"), "-o", str(tmp_path / "a.y4m"))
    assert r.exit_code == 1 and "Y4M holds only Y'CbCr" in r.output and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.lic"]


@pytest.mark.parametrize("name", ["clip.mkv", "clip.mp4"])
def test_writers_take_the_largest_rate_a_clip_may_hold(tmp_path, name):
    """`lic.video.container.MAX_RATE_TERM` is what FFmpeg's muxers take (2^31 overflowed)."""
    from lic.video.container import MAX_RATE_TERM

    write(tmp_path / name, clip(2), fps=MAX_RATE_TERM)
    assert len(list(open_video(tmp_path / name))) == 2
