"""Built-in clustering plugins, installed as ``toolkit.plugins``. ``toolkit/registry.py`` names them
(``BUILTINS``) and imports each on first use; third-party clusterers register through the
``multi_radius_deep_svdd.clusterers`` entry-point group instead (docs/plugins.md)."""
