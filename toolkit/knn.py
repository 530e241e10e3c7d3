"""k-nearest-neighbour distances as a pure tensor function: the anomaly score of the many-small-spheres
limit (one sphere per training point), and the simple baseline every deep detector must beat.

``knn_distance(query, reference, k)`` is the mean Euclidean distance of each query row to its ``k``
nearest reference rows. Rows are compared in blocks of ``chunk`` queries (one matrix product each), so
memory stays at ``chunk x len(reference)`` whatever the sizes. With ``exclude_self`` the query *is* the
reference, and each point's zero distance to itself is left out (the leave-one-out score of the
training data, which a score term is standardised with).
"""

from __future__ import annotations

import torch
from torch import Tensor

KNN_CHUNK = 1024
GROUP = 64  # the columns of a row taken together by smallest()


def knn_distance(
    query: Tensor, reference: Tensor, k: int, *, exclude_self: bool = False, chunk: int = KNN_CHUNK
) -> Tensor:
    """(N,) mean Euclidean distance of each row of ``query`` (N, D) to its ``k`` nearest rows of
    ``reference`` (M, D); with ``exclude_self`` (``query`` is ``reference``) a row is not its own
    neighbour."""
    if query.dim() != 2 or reference.dim() != 2 or query.shape[1] != reference.shape[1]:
        raise ValueError(
            f"knn_distance takes (N, D) and (M, D) rows; got {tuple(query.shape)} and {tuple(reference.shape)}"
        )
    available = reference.shape[0] - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k={k} must be in [1, {available}] for {reference.shape[0]} reference rows")
    out = [
        knn_block(query[s : s + chunk], reference, k, self_offset=s if exclude_self else None)
        for s in range(0, query.shape[0], chunk)
    ]
    return torch.cat(out) if out else query.new_zeros(0)


def sq_distances(query: Tensor, reference: Tensor) -> Tensor:
    """(N, M) squared Euclidean distances of every row of ``query`` to every row of ``reference``, by one
    matrix product: ||q||^2 + ||r||^2 - 2 q.r, clamped at 0. The expanded form rounds (to about float
    epsilon times ||q||^2 + ||r||^2), but it never builds an (N, M, D) intermediate."""
    return nearest_sq_distances(sq_distances_less_query(query, reference), query)


def sq_distances_less_query(query: Tensor, reference: Tensor) -> Tensor:
    """(N, M) ||r||^2 - 2 q.r: the squared distances less each query row's own ||q||^2, which orders a
    row's references as the distances do. The nearest ones are picked from it and ||q||^2 added to those
    alone: with few dimensions the (N, M) passes, not the matrix product, are most of the time."""
    return torch.addmm(reference.pow(2).sum(dim=1), query, reference.T, alpha=-2.0)


def nearest_sq_distances(values: Tensor, query: Tensor) -> Tensor:
    """The squared distances of the (N, k) ``values`` picked from :func:`sq_distances_less_query`: each
    query row's ||q||^2 added back, clamped at 0."""
    return (values + query.pow(2).sum(dim=1, keepdim=True)).clamp(min=0)


def smallest(values: Tensor, k: int, group: int = GROUP) -> Tensor:
    """(N, k) the k smallest of each row of ``values`` (N, M): the values ``topk(k, largest=False)`` gives (in no
    set order), found faster in a wide row. The columns are cut into groups of ``group``; a row's k smallest
    lie in its k groups with the smallest minima (a group left out has k picked minima at or below each of its
    values), so a pass of ``amin`` and a ``topk`` over those groups' columns replace the ``topk`` over the
    whole row, several times as fast on one CPU core for the MNIST recipe's 18,796 columns
    (``benchmarks/speed.py`` times the whole k-NN column both ways). A row with a NaN may lose the values
    beside it in its group (a NaN minimum is never picked); a score that meets a NaN is made +inf anyway. A
    traced export (``torch.jit.trace``, which records no test of a shape) takes the whole-row ``topk``."""
    n = values.shape[1] // group * group
    if torch.jit.is_tracing() or n < 4 * k * group:  # traced, or a narrow row: the whole-row topk costs no more
        return values.topk(k, dim=1, largest=False).values
    groups = values[:, :n].unflatten(1, (-1, group))
    picked = groups.amin(dim=2).topk(k, dim=1, largest=False).indices
    candidates = groups.gather(1, picked[:, :, None].expand(-1, -1, group)).flatten(1)
    return torch.cat([candidates, values[:, n:]], dim=1).topk(k, dim=1, largest=False).values


def knn_block(query: Tensor, reference: Tensor, k: int, self_offset: int | None = None) -> Tensor:
    """:func:`knn_distance` of one block of queries, by one matrix product (no loop: what a traced scorer
    records). ``self_offset``: query row i is reference row ``self_offset + i``, left out as a neighbour."""
    part = sq_distances_less_query(query, reference)
    if self_offset is not None:
        rows = torch.arange(query.shape[0], device=query.device)
        part[rows, rows + self_offset] = float("inf")
    return nearest_sq_distances(smallest(part, k), query).sqrt().mean(dim=1)
