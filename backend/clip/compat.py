"""The one place that imports open_clip, with a narrow torchvision compatibility shim.

Why: open_clip imports torchvision at import time. pip resolves ``torchvision==0.28.0`` to a CUDA
build whose C extension cannot load against the CPU torch wheel, and torchvision then fails in
``torch.library.register_fake("torchvision::nms")`` ("operator torchvision::nms does not exist").
Those fake (meta) kernels are for torchvision's detection ops, which CLIP never calls. So while
torchvision is first imported, ``register_fake`` is wrapped to skip registrations whose operator
does not exist, then restored. Where torchvision loads normally (matching CUDA torch) nothing is
skipped and the wrapper is a no-op.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading

import torch

_lock = threading.Lock()
skipped_fake_ops: list[str] = []  # operators whose fake registration failed softly (for diagnostics)


def _soft(register_fake):
    @functools.wraps(register_fake)
    def wrapper(op, func=None, /, **kwargs):
        def register(f):
            try:
                return register_fake(op, f, **kwargs)
            except RuntimeError as exc:
                if "does not exist" not in str(exc):
                    raise
                skipped_fake_ops.append(str(op))
                return f

        return register if func is None else register(func)

    return wrapper


def import_open_clip():
    """Import and return the ``open_clip`` module (torchvision imported through the shim)."""
    if "open_clip" in sys.modules:
        return sys.modules["open_clip"]
    with _lock:
        if "torchvision" not in sys.modules:
            original = torch.library.register_fake
            torch.library.register_fake = _soft(original)
            try:
                importlib.import_module("torchvision")
            finally:
                torch.library.register_fake = original
        return importlib.import_module("open_clip")
