"""HDBSCAN (the hdbscan package) as a clusterer plugin. Points it calls noise get label -1; the
toolkit's tidy-up step assigns them to the nearest cluster."""

from __future__ import annotations

from typing import Any


def hdbscan_clusterer(min_cluster_size: int = 10, min_samples: int | None = None, **kwargs: Any) -> Any:
    import hdbscan  # the plugin module is itself named hdbscan: import lazily, absolutely

    return hdbscan.HDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, **kwargs)


HDBSCANClusterer = hdbscan_clusterer
