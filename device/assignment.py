"""Minimum-cost assignment of tracks to detections (the Hungarian method, shortest augmenting paths).

The tracker needs one optimal assignment per detector run on matrices of a few dozen rows at most.
SciPy's `linear_sum_assignment` does this, but SciPy is over 100 MB on a Raspberry Pi image for
one function; this is the textbook O(n²·m) algorithm with potentials, with the inner loop in NumPy.
"""

import numpy as np


def min_cost_assignment(cost: np.ndarray) -> tuple[list[int], list[int]]:
    """Rows and columns of an assignment of min(rows, columns) pairs whose summed cost is least.

    Pairs are returned in increasing row order, as SciPy returns them. Costs must be finite.
    """
    a = np.asarray(cost, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError("cost must be a 2-D matrix")
    if a.size == 0:
        return [], []
    if not np.isfinite(a).all():
        raise ValueError("costs must be finite")
    transposed = a.shape[0] > a.shape[1]
    if transposed:
        a = a.T
    n, m = a.shape
    # 1-based as in the classic formulation: column 0 is the virtual start of every augmenting path.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.int64)  # owner[j]: the row holding column j (0: none)
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used
            free[0] = False
            reduced = a[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv, np.inf)
            j1 = int(np.argmin(candidates))
            delta = candidates[j1]
            u[owner[used]] += delta
            v[used] -= delta
            minv[~used] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = int(way[j0])
            owner[j0] = owner[j1]
            j0 = j1
    pairs = sorted(
        (int(owner[j]) - 1, j - 1) if not transposed else (j - 1, int(owner[j]) - 1)
        for j in range(1, m + 1)
        if owner[j]
    )
    return [r for r, _ in pairs], [c for _, c in pairs]
