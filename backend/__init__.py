"""Audio CPPN render backend: audio features, CPPN styles, CLIP training and frame rendering.

Usable without Blender: every job is a library function, also reachable from the
``audio-cppn`` command line (``python -m backend``).
"""

__version__ = "0.1.0"
