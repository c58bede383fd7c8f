"""CLIP models, loaded from local files only, and the text prompts they read."""
