"""Training a style from a prompt with CLIP guidance (run, loop, config, cutouts, guidance,
audio_rows), its checkpoints and record, and CLIP scoring. Imports everything up to clip; never
render (its peer).
"""
