"""Audio analysis, the first stage: read a track and turn it into per-frame features in [0, 1].

io reads and streams files; spectral and beats measure; shaping normalises and smooths; features
puts them together per video frame (names fixes their order); files and plot save and show them;
demo_track synthesises the bundled track. Imports only the core (``backend/*.py``).
"""
