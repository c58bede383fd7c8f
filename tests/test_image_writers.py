import os

import numpy as np
import OpenImageIO as oiio
import pytest

from backend.errors import InvalidInput
from backend.atomic import remove_stale_temps, temp_path
from backend.writers.image import (FrameSink, ImageFormat, image_header, linear_to_srgb, read_display,
                                   read_image, srgb_to_linear, write_exr, write_png)


def gradient_frame(width=64, height=36, channels=3, seed=0):
    """Smooth colour ramps plus noise: every channel spans [0, 1]."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    base = np.concatenate([x + 0 * y, y + 0 * x, (x * y)], axis=-1)
    if channels == 4:
        base = np.concatenate([base, 1 - x + 0 * y], axis=-1)
    noise = rng.uniform(-0.05, 0.05, base.shape).astype(np.float32)
    return np.clip(base + noise, 0, 1)


def spec_of(path):
    inp = oiio.ImageInput.open(str(path))
    spec = inp.spec()
    inp.close()
    return spec


def test_transfer_functions_are_the_srgb_formulas_and_invert_each_other():
    c = np.linspace(0, 1, 1001, dtype=np.float32)
    lin = srgb_to_linear(c)
    assert lin[0] == 0 and lin[-1] == pytest.approx(1.0)
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-5)  # the standard value
    assert srgb_to_linear(np.float32(0.04)) == pytest.approx(0.04 / 12.92)  # linear toe
    assert np.abs(linear_to_srgb(lin) - c).max() < 1e-5


@pytest.mark.parametrize("compression", ["zip", "piz", "dwaa", "none"])
def test_exr_is_half_rgba_scene_linear_with_the_chosen_compression(tmp_path, compression):
    colour = gradient_frame()
    path = write_exr(tmp_path / "f.exr", colour, compression=compression)
    spec = spec_of(path)
    assert (spec.width, spec.height, spec.nchannels) == (64, 36, 4)
    assert spec.format == "half" and list(spec.channelnames) == ["R", "G", "B", "A"]
    assert spec.get_string_attribute("compression").startswith(compression)
    stored = read_image(path)
    tolerance = 2e-3 if compression != "dwaa" else 0.05  # half rounding; dwaa is lossy
    assert np.abs(stored[..., :3] - srgb_to_linear(colour)).max() < tolerance
    assert np.all(stored[..., 3] == 1.0)


@pytest.mark.parametrize("depth", [8, 16])
def test_png_is_srgb_integers_of_the_chosen_depth(tmp_path, depth):
    colour = gradient_frame()
    path = write_png(tmp_path / "f.png", colour, depth=depth)
    spec = spec_of(path)
    assert spec.nchannels == 3 and spec.format == f"uint{depth}"
    top = 2**depth - 1
    inp = oiio.ImageInput.open(str(path))
    raw = inp.read_image(f"uint{depth}")
    inp.close()
    assert np.abs(raw - colour * top).max() <= 0.5 + 1e-3  # rounded to the nearest code


def test_exr_and_png_of_the_same_frame_agree_within_one_8bit_level(tmp_path):
    colour = gradient_frame(seed=3)
    exr = read_image(write_exr(tmp_path / "f.exr", colour))
    png = read_image(write_png(tmp_path / "f.png", colour, depth=8))
    shown = linear_to_srgb(exr[..., :3])  # what Blender's Standard view transform displays
    assert np.abs(shown - png).max() <= 1 / 255


def test_alpha_is_premultiplied_in_exr_and_straight_in_png(tmp_path):
    colour = gradient_frame(channels=4)
    fmt = ImageFormat(kind="exr", alpha=True)
    exr = read_image(fmt.write(tmp_path / "a.exr", colour))
    a = colour[..., 3]
    assert np.abs(exr[..., 3] - a).max() < 1e-3
    assert np.abs(exr[..., :3] - srgb_to_linear(colour[..., :3]) * a[..., None]).max() < 2e-3
    png = read_image(ImageFormat(kind="png", alpha=True).write(tmp_path / "a.png", colour))
    assert png.shape[-1] == 4
    assert np.abs(png - colour).max() <= 0.5 / 255 + 1e-6
    assert np.abs(read_display(tmp_path / "a.exr")[a > 0.1] - colour[a > 0.1]).max() < 2 / 255


def test_alpha_of_an_rgb_style_is_luma_and_without_alpha_png_is_rgb(tmp_path):
    colour = gradient_frame(channels=3)
    png = read_image(ImageFormat(kind="png", alpha=True).write(tmp_path / "l.png", colour))
    luma = colour @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    assert np.abs(png[..., 3] - luma).max() <= 0.5 / 255 + 1e-6
    assert read_image(ImageFormat(kind="png").write(tmp_path / "n.png", colour)).shape[-1] == 3
    rgba_style = gradient_frame(channels=4)
    no_alpha = read_image(ImageFormat(kind="exr").write(tmp_path / "n.exr", rgba_style))
    assert np.all(no_alpha[..., 3] == 1.0)  # the style's alpha only with --alpha


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path):
    write_exr(tmp_path / "f.exr", gradient_frame())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.exr"]
    with pytest.raises(InvalidInput, match="cannot write"):
        write_png(tmp_path / "missing-folder" / "f.png", gradient_frame())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.exr"]


def test_unwritable_folder_is_a_clear_error(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions; use a path under a file instead
            locked = tmp_path / "a-file"
            locked.write_text("x")
        with pytest.raises(InvalidInput, match="cannot write"):
            write_exr(locked / "f.exr", gradient_frame())
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_header_check_and_truncated_files(tmp_path):
    path = write_exr(tmp_path / "f.exr", gradient_frame())
    assert image_header(path) == (64, 36, 4, "half")
    (tmp_path / "bad.exr").write_bytes(path.read_bytes()[:300])
    with pytest.raises(InvalidInput, match="cannot read"):
        read_image(tmp_path / "bad.exr")
    (tmp_path / "junk.exr").write_bytes(b"not an image")
    assert image_header(tmp_path / "junk.exr") is None


def test_stale_temporary_files_of_dead_processes_are_removed(tmp_path):
    mine = temp_path(tmp_path / "frame_000001.exr")
    mine.write_bytes(b"partial")
    dead = tmp_path / mine.name.replace(f"-{os.getpid()}-", "-999999999-")
    dead.write_bytes(b"partial")
    foreign = tmp_path / ".notes.txt.tmp-editor-backup"  # another program's file, however old
    foreign.write_bytes(b"keep me")
    os.utime(foreign, (0, 0))
    assert remove_stale_temps(tmp_path) == 1
    assert mine.exists() and not dead.exists()  # a live process's file is left alone
    assert foreign.read_bytes() == b"keep me"


def test_frame_sink_writes_every_frame_and_reports_errors(tmp_path):
    sink = FrameSink(ImageFormat(kind="png"), threads=2, queue_frames=1)
    frames = [gradient_frame(seed=i) for i in range(6)]
    for i, frame in enumerate(frames):
        sink.put(tmp_path / f"f{i}.png", frame)
    sink.finish()
    sink.close()
    for i, frame in enumerate(frames):
        assert np.abs(read_image(tmp_path / f"f{i}.png") - frame).max() <= 0.5 / 255 + 1e-6
    sink = FrameSink(ImageFormat(kind="png"), threads=1, queue_frames=1)
    sink.put(tmp_path / "nowhere" / "f.png", frames[0])
    with pytest.raises(InvalidInput, match="cannot write"):
        sink.finish()
    sink.close()


def test_bad_format_settings_are_clear_errors():
    with pytest.raises(InvalidInput, match="exr or png"):
        ImageFormat(kind="jpg")
    with pytest.raises(InvalidInput, match="8 or 16"):
        ImageFormat(kind="png", png_depth=12)
    with pytest.raises(InvalidInput, match="zip, piz, dwaa"):
        ImageFormat(exr_compression="lzma")


def test_frame_sink_writes_while_the_caller_computes_and_bounds_what_waits(tmp_path, monkeypatch):
    """put() hands a frame to a writer thread and returns at once (the next frame is computed
    meanwhile); once threads + queue_frames frames are in flight it waits, so memory stays flat."""
    import threading

    release = threading.Event()
    writers = []
    real_write = ImageFormat.write

    def held_write(self, path, colour):
        writers.append(threading.current_thread().name)
        release.wait(30)
        return real_write(self, path, colour)

    monkeypatch.setattr(ImageFormat, "write", held_write)
    sink = FrameSink(ImageFormat(kind="png"), threads=1, queue_frames=1)
    sink.put(tmp_path / "f0.png", gradient_frame(seed=0))  # being written (held)
    sink.put(tmp_path / "f1.png", gradient_frame(seed=1))  # waiting: both calls returned while writing
    third = threading.Thread(target=sink.put, args=(tmp_path / "f2.png", gradient_frame(seed=2)))
    third.start()
    third.join(0.5)
    assert third.is_alive()  # a third frame would exceed the bound: the caller waits
    release.set()
    third.join(30)
    sink.finish()
    sink.close()
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["f0.png", "f1.png", "f2.png"]
    assert writers and all(name.startswith("frame-writer") for name in writers)
