"""Recipe files: each defines ``config = Config(...)``. Run one with ``python -m toolkit recipes/NAME.py``."""
