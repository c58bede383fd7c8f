"""CLIP for training and scoring: models loaded from local files only (models, through the one
open_clip import in compat) and the weighted text prompts they read. Imports only the core.
"""
