"""Recipe files, installed as ``toolkit.recipes``: each defines ``config = Config(...)``. Run one by name
(``python -m toolkit mnist``), or any recipe file by path (``python -m toolkit recipes/mnist.py``)."""
