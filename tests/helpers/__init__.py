"""What the tests share, imported one way: ``from tests.helpers.<module> import ...``.

signals: synthetic audio (clicks, tones, pulse trains) and real audio files; tiny_clip: a tiny
open_clip model and music-like feature rows; cpu: the settings that make this machine compute like
another CPU. Shared fixtures (``tiny_clip``, ``features_file``, ...) live in ``tests/conftest.py``.
"""
