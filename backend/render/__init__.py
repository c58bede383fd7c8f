"""Rendering: a track and a style to frames on disk or an MP4 (job), resumable through its manifest,
one writer per output (folder_lock), frames evaluated on the CPU (fast_cpu) or a GPU (frame_renderer).
Imports everything up to styles; never train (its peer).
"""
