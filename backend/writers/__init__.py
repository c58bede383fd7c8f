"""Writing what a render makes: EXR/PNG frames through OpenImageIO (image) and MP4 through PyAV (video).

Every file is written atomically. Imports the core and audio (the MP4 carries the track's sound).
"""
