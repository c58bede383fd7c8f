"""Frames on disk through OpenImageIO: scene-linear half EXR and sRGB PNG, written atomically.

The renderer produces *display* colour (what the network means on an sRGB screen). EXR is a
scene-linear format, so EXR pixels are the display colour through the inverse sRGB transfer
function (linear Rec.709, which Blender's Standard view transform turns back into exactly the
PNG's colours). PNG stores the display colour as it is, 8 or 16 bit.

Alpha (``alpha=True``): the style's 4th channel, or for RGB styles the Rec.709 luma of the
displayed colour (black becomes transparent). EXR alpha is premultiplied (the EXR convention),
PNG alpha straight. Without ``alpha`` EXR alpha is 1 and PNG is RGB only.

Every file is written under a temporary name in the same folder and renamed into place, so a
file at its final name is always complete.
"""

from __future__ import annotations

import shutil
import struct
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend import __version__
from backend.atomic import atomic_path
from backend.errors import InvalidInput, NoSpace

EXR_COMPRESSIONS = ("zip", "piz", "dwaa", "none")
PNG_DEPTHS = (8, 16)
FORMATS = ("exr", "png")
PNG_COMPRESSION_LEVEL = 1  # zlib level 1: several times faster than the default 6, files ~10% larger
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], np.float32)

# Display -> linear through a 65536-entry table: its error (< 2e-5) is far below a half's step.
_LUT_SIZE = 65536
_codes = np.arange(_LUT_SIZE, dtype=np.float64) / (_LUT_SIZE - 1)
_SRGB_TO_LINEAR = np.where(_codes <= 0.04045, _codes / 12.92,
                           ((_codes + 0.055) / 1.055) ** 2.4).astype(np.float32)
del _codes


def srgb_to_linear(display: np.ndarray) -> np.ndarray:
    """Inverse sRGB transfer function (exact formula), float32 of the same shape."""
    c = np.clip(np.asarray(display, np.float32), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """sRGB transfer function (exact formula), float32 of the same shape, clipped to [0, 1]."""
    c = np.clip(np.asarray(linear, np.float32), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055).astype(np.float32)


def _fast_srgb_to_linear(display: np.ndarray) -> np.ndarray:
    index = np.rint(np.clip(display, 0.0, 1.0) * (_LUT_SIZE - 1)).astype(np.uint16)
    return _SRGB_TO_LINEAR[index]


def output_alpha(colour: np.ndarray) -> np.ndarray:
    """Alpha for ``--alpha``: channel 4 of an RGBA style, else the luma of the display colour. (H, W)."""
    if colour.shape[-1] >= 4:
        return np.clip(colour[..., 3], 0.0, 1.0)
    return np.clip(colour[..., :3] @ LUMA_709, 0.0, 1.0)


def exr_pixels(colour: np.ndarray, *, alpha: bool = False) -> np.ndarray:
    """Display colour (H, W, C) in [0, 1] -> premultiplied scene-linear RGBA, float16 (H, W, 4)."""
    h, w = colour.shape[:2]
    out = np.empty((h, w, 4), np.float16)
    linear = _fast_srgb_to_linear(colour[..., :3])  # (H, W, 3) float32
    if alpha:
        a = output_alpha(colour)
        out[..., :3] = linear * a[..., None]
        out[..., 3] = a
    else:
        out[..., :3] = linear
        out[..., 3] = 1.0
    return out


def png_pixels(colour: np.ndarray, *, depth: int = 8, alpha: bool = False) -> np.ndarray:
    """Display colour (H, W, C) -> sRGB integers (H, W, 3 or 4), uint8 or uint16, straight alpha."""
    top = 255 if depth == 8 else 65535
    rgb = colour[..., :3]
    if alpha:
        rgb = np.concatenate((rgb, output_alpha(colour)[..., None]), axis=-1)
    scaled = np.clip(rgb, 0.0, 1.0) * np.float32(top) + np.float32(0.5)
    return scaled.astype(np.uint8 if depth == 8 else np.uint16)


def _write_pixels(path: Path, pixels: np.ndarray, fmt: str, attributes: dict) -> Path:
    """Write ``pixels`` (H, W, C) with OIIO to a temporary name, then rename it to ``path``."""
    import OpenImageIO as oiio  # here, not at the top: the CLI reads this module's format lists for --help

    path = Path(path)
    h, w, c = pixels.shape
    spec = oiio.ImageSpec(w, h, c, {np.float16: "half", np.uint8: "uint8", np.uint16: "uint16"}[pixels.dtype.type])
    spec.attribute("Software", f"audio-cppn {__version__}")
    spec.attribute("DateTime", "")  # OIIO would stamp the time: the same frame must give the same bytes
    for key, value in attributes.items():
        spec.attribute(key, value)
    out = oiio.ImageOutput.create(fmt)  # by format name: the temporary name has no image extension
    with atomic_path(path) as tmp:
        if out is None or not out.open(str(tmp), spec):
            raise InvalidInput(f"cannot write {path}: {(out.geterror() if out else '') or oiio.geterror()}")
        ok = out.write_image(np.ascontiguousarray(pixels))
        ok = out.close() and ok
        if not ok:
            message = out.geterror()
            if shutil.disk_usage(path.parent).free < pixels.nbytes:  # OIIO reports ENOSPC in words, or not at all
                raise NoSpace(f"no space left on the disk of {path.parent} (cannot write {path.name})",
                              fix="free some space or choose another folder")
            raise InvalidInput(f"cannot write {path}: {message or 'write failed'}")
    return path


def write_exr(path: Path, colour: np.ndarray, *, compression: str = "zip", alpha: bool = False) -> Path:
    """Write display colour (H, W, C) in [0, 1] as a half-float scene-linear RGBA EXR."""
    if compression not in EXR_COMPRESSIONS:
        raise InvalidInput(f"EXR compression must be one of {', '.join(EXR_COMPRESSIONS)}, got {compression!r}")
    return _write_pixels(path, exr_pixels(colour, alpha=alpha), "openexr",
                         {"compression": compression, "oiio:ColorSpace": "lin_rec709_scene"})


def write_png(path: Path, colour: np.ndarray, *, depth: int = 8, alpha: bool = False,
              level: int = PNG_COMPRESSION_LEVEL) -> Path:
    """Write display colour (H, W, C) in [0, 1] as an sRGB PNG of ``depth`` 8 or 16 bits."""
    if depth not in PNG_DEPTHS:
        raise InvalidInput(f"PNG depth must be 8 or 16, got {depth}")
    # PNG ignores the generic "compression" attribute; this is the zlib level.
    # Our alpha is straight already: tell OIIO not to un-premultiply it on the way out.
    return _write_pixels(path, png_pixels(colour, depth=depth, alpha=alpha), "png",
                         {"png:compressionLevel": int(level), "oiio:ColorSpace": "srgb_rec709_scene",
                          "oiio:UnassociatedAlpha": 1})


@dataclass(frozen=True)
class ImageFormat:
    """How frames are stored; one of these per render."""

    kind: str = "exr"  # "exr" (half, scene-linear) or "png" (sRGB)
    png_depth: int = 8  # 8 or 16 bits per channel (PNG only)
    exr_compression: str = "zip"  # zip, piz, dwaa (lossy) or none (EXR only)
    alpha: bool = False  # write a meaningful alpha channel (see the module docstring)

    def __post_init__(self):
        if self.kind not in FORMATS:
            raise InvalidInput(f"format must be exr or png, got {self.kind!r}")
        if self.png_depth not in PNG_DEPTHS:
            raise InvalidInput(f"PNG depth must be 8 or 16, got {self.png_depth}")
        if self.exr_compression not in EXR_COMPRESSIONS:
            raise InvalidInput(f"EXR compression must be one of {', '.join(EXR_COMPRESSIONS)}, "
                               f"got {self.exr_compression!r}")

    @property
    def extension(self) -> str:
        return f".{self.kind}"

    @property
    def channels(self) -> int:
        return 4 if self.kind == "exr" or self.alpha else 3

    @property
    def pixel_type(self) -> str:
        return "half" if self.kind == "exr" else f"uint{self.png_depth}"

    def write(self, path: Path, colour: np.ndarray) -> Path:
        if self.kind == "exr":
            return write_exr(path, colour, compression=self.exr_compression, alpha=self.alpha)
        return write_png(path, colour, depth=self.png_depth, alpha=self.alpha)


def read_image(path: Path) -> np.ndarray:
    """Stored pixels as float32 (H, W, C): EXR as written (linear, premultiplied), PNG scaled to [0, 1]."""
    import OpenImageIO as oiio

    hints = oiio.ImageSpec()
    hints.attribute("oiio:UnassociatedAlpha", 1)  # PNG alpha as stored (straight), not premultiplied
    inp = oiio.ImageInput.open(str(path), hints)
    if inp is None:
        raise InvalidInput(f"cannot read image {path}: {oiio.geterror()}")
    try:
        pixels = inp.read_image("float")
        if pixels is None:
            raise InvalidInput(f"cannot read image {path}: {inp.geterror() or 'truncated or corrupt'}")
    finally:
        inp.close()
    return pixels.reshape(inp.spec().height, inp.spec().width, -1) if pixels.ndim != 3 else pixels


def read_display(path: Path) -> np.ndarray:
    """The display colour a frame file holds, float32 (H, W, C), straight alpha (undoes the writers)."""
    pixels = read_image(path)
    if Path(path).suffix.lower() != ".exr":
        return pixels
    rgb, a = pixels[..., :3], pixels[..., 3:4]
    with np.errstate(divide="ignore", invalid="ignore"):
        straight = np.where(a > 0, rgb / np.where(a > 0, a, 1), 0.0)
    return np.concatenate((linear_to_srgb(straight), a), axis=-1)


def image_header(path: Path) -> tuple[int, int, int, str] | None:
    """(width, height, channels, pixel type) from a file's header, or None if it is not a readable image."""
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(str(path))
    if inp is None:
        oiio.geterror()  # clear OIIO's per-thread error so it does not leak into a later message
        return None
    try:
        spec = inp.spec()
        return spec.width, spec.height, spec.nchannels, str(spec.format)
    finally:
        inp.close()


def image_is_whole(path: Path, expected: tuple[int, int, int, str]) -> bool:
    """True when the file's header is ``expected`` and every pixel decodes (a file cut short does not)."""
    if image_header(path) != expected:
        return False
    try:
        read_image(path)
    except InvalidInput:
        return False
    return True


# Scanlines per EXR chunk by compression code (none, rle, zips, zip, piz, pxr24, b44, b44a, dwaa, dwab).
_EXR_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256}
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


def file_is_complete(path: Path) -> bool | None:
    """Whether a frame file is as long as its own structure says (a file cut short is not), without
    decoding pixels: a PNG ends with its IEND chunk; a scanline EXR's last chunk ends at the file's
    end. None when the structure is one this check does not know (tiled or multi-part EXR)."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        if Path(path).suffix.lower() == ".png":
            f.seek(max(0, size - len(_PNG_END)))
            return size > len(_PNG_END) and f.read() == _PNG_END
        f.seek(0)
        head = f.read(65536)
        try:
            if head[:4] != b"\x76\x2f\x31\x01":
                return False
            if int.from_bytes(head[4:8], "little") & 0x1A00:  # tiled, deep or multi-part
                return None
            pos, attributes = 8, {}
            while head[pos] != 0:
                name_end = head.index(b"\0", pos)
                type_end = head.index(b"\0", name_end + 1)
                length = int.from_bytes(head[type_end + 1: type_end + 5], "little")
                attributes[head[pos:name_end]] = head[type_end + 5: type_end + 5 + length]
                pos = type_end + 5 + length
            _, y_min, _, y_max = struct.unpack("<4i", attributes[b"dataWindow"])
            chunks = -(-(y_max - y_min + 1) // _EXR_LINES[attributes[b"compression"][0]])
            f.seek(pos + 1)
            offsets = struct.unpack(f"<{chunks}Q", f.read(8 * chunks))
            last = max(offsets)
            f.seek(last)
            _, data_size = struct.unpack("<iI", f.read(8))
        except (IndexError, KeyError, ValueError, struct.error):
            return False
        return last + 8 + data_size == size


def image_is_complete(path: Path, expected: tuple[int, int, int, str]) -> bool:
    """Cheap check of a frame a finished render wrote: header as ``expected`` and the file not cut short."""
    if image_header(path) != expected:
        return False
    complete = file_is_complete(path)
    return complete if complete is not None else image_is_whole(path, expected)


class FrameSink:
    """Writes frames on a pool of threads while the caller computes the next ones.

    ``put`` blocks once ``threads + queue_frames`` frames are in flight, so memory stays flat;
    a failed write is raised by the next ``put`` or by ``finish``.
    """

    def __init__(self, fmt: ImageFormat, *, threads: int = 2, queue_frames: int = 4):
        self.fmt = fmt
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="frame-writer")
        self._slots = threading.Semaphore(threads + queue_frames)
        self._pending: deque[Future] = deque()

    def put(self, path: Path, colour: np.ndarray) -> None:
        self._collect(block=False)
        self._slots.acquire()
        job = self._pool.submit(self.fmt.write, path, colour)
        job.add_done_callback(lambda _: self._slots.release())
        self._pending.append(job)

    def _collect(self, *, block: bool) -> None:
        while self._pending and (block or self._pending[0].done()):
            self._pending.popleft().result()  # re-raises a writer's error here, in the caller

    def finish(self) -> None:
        """Wait for every queued frame; raises the first write error."""
        self._collect(block=True)

    def close(self) -> None:
        """Stop: frames not yet started are dropped, the ones being written complete (atomically)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
