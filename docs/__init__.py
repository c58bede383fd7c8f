"""The README's figures, and the script that regenerates them (python -m docs.make_figures)."""
