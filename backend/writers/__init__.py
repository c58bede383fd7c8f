"""Writing frames and video: OpenImageIO EXR/PNG files and MP4 through PyAV."""
