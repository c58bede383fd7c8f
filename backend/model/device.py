"""Which torch device a job runs on: one rule for rendering, training and scoring.

Spellings: ``auto`` (the current CUDA GPU when one is usable, else the CPU), ``cpu``, ``cuda``
(the current GPU, normally GPU 0), ``cuda:N`` (GPU N) and ``mps`` (Apple Metal; training and
scoring only: the renderer has a CPU and a CUDA path). A device that is not there is a
DeviceUnavailable error, never a silent fall-back to the CPU.

torch is imported only when a device is resolved, so the command line can check the spelling
of ``--device`` while it builds its parser without loading torch.
"""

from __future__ import annotations

import re

from backend.errors import DeviceUnavailable, InvalidInput

ALL_KINDS = ("cpu", "cuda", "mps")
RENDER_KINDS = ("cpu", "cuda")  # the renderer's paths: CPU FP32 and CUDA FP16
_SPELLING = re.compile(r"(auto|cpu|mps|cuda(?::\d+)?)")
_NO_GPU_FIX = "use --device cpu (or auto), or install a CUDA build of torch on a GPU machine"


def spellings(kinds: tuple[str, ...] = ALL_KINDS) -> str:
    """``auto, cpu, cuda, cuda:N`` and so on, for help texts and errors."""
    names = ["auto"] + [k for kind in kinds for k in ((kind, "cuda:N") if kind == "cuda" else (kind,))]
    return ", ".join(names)


def check_device_name(name: str | None, kinds: tuple[str, ...] = ALL_KINDS) -> str:
    """The device name normalised (``" CUDA:1"`` -> ``"cuda:1"``; None -> ``"auto"``), or InvalidInput.

    Checks the spelling only: whether the device is present is :func:`resolve_device`'s job.
    """
    text = str(name if name is not None else "auto").strip().lower()
    if not _SPELLING.fullmatch(text) or text.split(":")[0] not in ("auto", *kinds):
        raise InvalidInput(f"device must be one of {spellings(kinds)}, got {name!r}")
    return text


def resolve_device(name: str | None = "auto", kinds: tuple[str, ...] = ALL_KINDS):
    """The ``torch.device`` for ``name``: ``auto`` picks CUDA when usable; an absent device raises
    DeviceUnavailable (``cuda:1`` on a machine with one GPU, ``cuda`` without CUDA, ``mps`` off a Mac)."""
    import torch

    text = check_device_name(name, kinds)
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceUnavailable(f"--device {text} was requested but {why}", fix=_NO_GPU_FIX)
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceUnavailable(f"--device {text} was requested but only {count} GPU(s) are visible "
                                    f"(cuda:0 to cuda:{count - 1})",
                                    fix="pick a GPU that exists, or check CUDA_VISIBLE_DEVICES")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceUnavailable("--device mps was requested but Metal is not available here",
                                fix="use --device cpu (or auto)")
    return device
