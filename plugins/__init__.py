"""Built-in clustering plugins. They register through the ``toolkit.clusterers`` entry-point group
declared in pyproject.toml, exactly as a third-party package would."""
