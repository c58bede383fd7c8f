"""Styles: the library of style files (safetensors), the bundled procedural recipes and previews."""
