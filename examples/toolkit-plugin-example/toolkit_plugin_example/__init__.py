"""An example third-party clusterer: Ward-linkage agglomerative clustering from scikit-learn.

Any factory whose result has ``fit_predict(X) -> integer labels`` (-1 = noise) is a clusterer; its
keyword arguments become ``--clustering.options.NAME`` settings.
"""

from sklearn.cluster import AgglomerativeClustering


def agglomerative(n_clusters: int = 3, linkage: str = "ward") -> AgglomerativeClustering:
    return AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage)
