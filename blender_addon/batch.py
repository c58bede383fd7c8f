"""Headless one-liner: render a track through the backend, load it into the scene, encode the MP4.

    blender -b -P <add-on folder>/batch.py -- --audio song.wav --style aurora --output out.mp4 \\
        [--start-backend] [--backend-command PATH] [--fps 29.97] [--size 1920x1080]
    python <add-on folder>/batch.py -- ...        (any Python that has the bpy module)

It registers the add-on it sits in (whether or not it is enabled in your preferences), attaches to
the running backend (found through the data folder's server.json) or, with --start-backend,
starts its own from --backend-command, the preferences or `audio-cppn` on PATH, and stops it at
the end. On failure it prints one line `error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="batch.py", description="Render a track with an Audio CPPN style through the backend, load the "
        "frames into Blender's scene with the sound, and encode an H.264 + AAC MP4 with Blender.",
        epilog="example:\n  blender -b -P batch.py -- --audio song.wav --style aurora --output out.mp4 "
               "--start-backend --fps 29.97 --size 1280x720", formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", required=True, help="the track (wav, flac, ogg, mp3)")
    parser.add_argument("--style", required=True, help="a style name from the backend's library")
    parser.add_argument("--output", required=True, help="the MP4 to write; frames go to OUTPUT_frames/")
    parser.add_argument("--start-backend", action="store_true",
                        help="start a backend for this run (and stop it after) instead of attaching to one")
    parser.add_argument("--backend-command", default="",
                        help="audio-cppn command or a Python with the backend (default: preferences, then PATH)")
    parser.add_argument("--data-dir", default="", help="the backend's data folder (default: preferences/platform)")
    parser.add_argument("--fps", default="", help="frame rate, e.g. 24, 29.97 or 30000/1001 (default: the scene's)")
    parser.add_argument("--size", default="", help="WIDTHxHEIGHT in pixels (default: the scene's output size)")
    parser.add_argument("--format", choices=("exr", "png"), default="exr", help="frame files (default: exr)")
    parser.add_argument("--frame-start", type=int, default=None,
                        help="scene frame where the track starts (default: the scene's start frame)")
    parser.add_argument("--options", default="", help="more render request fields as JSON")
    args = parser.parse_args(argv)
    if args.fps:
        try:
            args.fps = exact_rate(args.fps)
        except argparse.ArgumentTypeError as exc:
            parser.error(str(exc))
    if args.size:
        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            parser.error(f"--size must be WIDTHxHEIGHT like 1920x1080, got {args.size!r}")
        if width < 1 or height < 1:
            parser.error(f"--size must be positive, got {args.size!r}")
        args.size = (width, height)
    return args


def exact_rate(text: str) -> Fraction:
    """``29.97`` means NTSC's 30000/1001 (as 23.976 and 59.94 do); other values are taken exactly."""
    ntsc = {"23.976": Fraction(24000, 1001), "23.98": Fraction(24000, 1001), "29.97": Fraction(30000, 1001),
            "59.94": Fraction(60000, 1001)}
    try:
        rate = ntsc.get(text.strip()) or Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"--fps must be a number like 24, 29.97 or 30000/1001, got {text!r}") \
            from None
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"--fps must be > 0, got {text!r}")
    return rate


_ENABLED_HERE: list[str] = []  # the add-on module this script enabled, disabled again at the end


def register_addon():
    """The add-on package this file sits in, enabled (so its preferences exist)."""
    import bpy

    for module in list(bpy.context.preferences.addons.keys()):
        if module.split(".")[-1] in {"audio_cppn", HERE.name}:
            return importlib.import_module(module)
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))
    bpy.ops.preferences.addon_enable(module=HERE.name)
    if HERE.name not in bpy.context.preferences.addons:
        raise RuntimeError(f"could not enable the add-on in {HERE}")
    _ENABLED_HERE.append(HERE.name)
    return importlib.import_module(HERE.name)


def _unregister_addon() -> None:
    """Disable what we enabled: bpy 4.2 as a Python module crashes at exit while an add-on's
    preferences class with a draw method is still registered."""
    if _ENABLED_HERE:
        import bpy

        bpy.ops.preferences.addon_disable(module=_ENABLED_HERE.pop())


def run(args: argparse.Namespace) -> Path:
    import bpy

    addon = register_addon()
    connection = importlib.import_module(f"{addon.__name__}.connection")
    prefs_module = importlib.import_module(f"{addon.__name__}.prefs")
    fps_for_blender = importlib.import_module(f"{addon.__name__}.render_manifest").blender_fps
    scene_setup = importlib.import_module(f"{addon.__name__}.scene_setup")
    bpy_compat = importlib.import_module(f"{addon.__name__}.bpy_compat")

    prefs = prefs_module.preferences()
    if args.backend_command:
        prefs.backend_command = args.backend_command
    if args.data_dir:
        prefs.data_dir = str(Path(args.data_dir).resolve())
    settings = prefs_module.backend_settings()
    if args.start_backend:
        connection.start(settings, wait=True)
    else:
        connection.find_client(settings).health()  # BackendDown says how to start one

    scene = bpy.context.scene
    output = Path(args.output).expanduser().resolve()
    if output.suffix.lower() != ".mp4":
        raise ValueError(f"--output must end in .mp4, got {output.name}")
    if args.fps:
        scene.render.fps, scene.render.fps_base = fps_for_blender(args.fps)
    if args.size:
        scene.render.resolution_x, scene.render.resolution_y = args.size
        scene.render.resolution_percentage = 100
    if args.frame_start is not None:
        scene.frame_start = args.frame_start
    cppn = scene.audio_cppn
    cppn.audio_source, cppn.audio_file = "FILE", str(Path(args.audio).expanduser().resolve())
    cppn.style, cppn.file_format, cppn.frame_range = args.style, args.format.upper(), "TRACK"
    cppn.load_into, cppn.overwrite = "COMPOSITOR", True
    extra = {"output": str(output.with_name(f"{output.stem}_frames")), **json.loads(args.options or "{}")}
    bpy.ops.audio_cppn.render_frames(options=json.dumps(extra))
    bpy.ops.audio_cppn.load_frames()
    scene_setup.set_video_output(scene, output, 2 if bpy_compat.has_audio() else 0)
    print(f"Audio CPPN: encoding {output}", flush=True)
    bpy.ops.render.render(animation=True, scene=scene.name)
    return output


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[sys.argv.index("--") + 1:] if argv is None and "--" in sys.argv else (argv or [])
    args = parse_args(argv)
    try:
        path = run(args)
    except RuntimeError as exc:  # an operator's ERROR report
        print(f"error: {str(exc).removeprefix('Error: ').strip()}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the user; ClientError and friends carry the fix
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 2
    finally:
        _stop_backend()
        _unregister_addon()
    print(f"Audio CPPN: wrote {path}", flush=True)
    return 0


def _stop_backend() -> None:
    for name, module in list(sys.modules.items()):
        if name.endswith(".connection") and hasattr(module, "we_started_it"):
            module.stop()


def _exit_as_a_python_module(code: int) -> None:
    """Under a plain Python with the bpy module, leave without bpy's own teardown: bpy 4.2.23 as a
    module segfaults at interpreter exit once an add-on registered classes (even after they are
    unregistered). The work is done and flushed; the backend we started is already stopped."""
    import bpy

    if not bpy.app.binary_path:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    code = main()
    _exit_as_a_python_module(code)
    if code:
        sys.exit(code)
