"""Identity graph components, vectorised: how a load's identities are resolved set-based
(``DuckDBStore`` builds the graph in SQL and labels it here)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def connected_components(
    n: int, u: npt.NDArray[np.int64], v: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Label each of ``n`` nodes with the smallest node id of its component.

    Vectorised union-find: hook every edge's larger root under the smaller one,
    compress paths fully, repeat until no edge joins two roots.  Identity graphs
    are mostly stars, so this settles in a handful of rounds even for millions.
    """
    parent = np.arange(n, dtype=np.int64)
    while len(u):
        pu, pv = parent[u], parent[v]
        lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
        live = lo != hi
        if not live.any():
            break
        np.minimum.at(parent, hi[live], lo[live])
        while True:
            nxt = parent[parent]
            if np.array_equal(nxt, parent):
                break
            parent = nxt
        u, v = u[live], v[live]
    return parent
