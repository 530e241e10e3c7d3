"""k-means (scikit-learn) as a clusterer plugin: scikit-learn's estimator plugs in as it is."""

from __future__ import annotations

from sklearn.cluster import KMeans


def kmeans(n_clusters: int | None = None, n_init: int = 10, random_state: int | None = 0) -> KMeans:
    """k-means with ``n_clusters`` clusters; the recipe must say how many (there is no good default)."""
    if n_clusters is None:
        raise ValueError(
            "k-means needs a number of clusters: set --clustering.options.n_clusters=K "
            "(or the string 'n_normal_classes' to use the number of normal classes)"
        )
    if not isinstance(n_clusters, int) or n_clusters < 1:
        raise ValueError(f"k-means n_clusters={n_clusters!r} must be a positive integer")
    return KMeans(n_clusters=n_clusters, n_init=n_init, random_state=random_state)


KMeansClusterer = kmeans
