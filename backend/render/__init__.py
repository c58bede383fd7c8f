"""Rendering: a track and a style to frames on disk or an MP4, resumable, with its manifest."""
