"""Styles: the library of style files (safetensors, never pickle), the bundled procedural recipes,
and preview pictures. Imports the core, audio, writers and model.
"""
