"""Audio analysis: read a track and turn it into per-frame features in [0, 1] (the first stage)."""
