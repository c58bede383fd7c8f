"""Training a style from a prompt with CLIP guidance, its checkpoints, and CLIP scoring."""
