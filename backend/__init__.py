"""Audio CPPN render backend: audio features, CPPN styles, CLIP training and frame rendering.

Usable without Blender: every job is a library function, also reachable from the
``audio-cppn`` command line (``python -m backend``).

The packages are the pipeline's stages, and data flows one way; a module imports only its own
stage and earlier ones (``tests/test_layers.py`` checks it)::

    core (errors, progress, atomic, paths, timebase: the modules here)
    < audio < writers < model < styles < clip < render, train < cli, server
"""

__version__ = "0.1.0"
