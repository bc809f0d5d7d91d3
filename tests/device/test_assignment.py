"""device/assignment.py: the least total cost, checked against every possible assignment."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from device.assignment import min_cost_assignment


def _best_by_brute_force(cost: np.ndarray) -> float:
    if cost.shape[0] > cost.shape[1]:
        return _best_by_brute_force(cost.T)
    rows = range(cost.shape[0])
    totals = [
        float(sum(cost[r, c] for r, c in zip(rows, cols, strict=True)))
        for cols in itertools.permutations(range(cost.shape[1]), cost.shape[0])
    ]
    return min(totals)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 6)),
        elements=st.one_of(st.floats(0, 10, allow_nan=False), st.just(1e6)),  # 1e6: "no match"
    )
)
def test_the_assignment_has_the_least_total_cost(cost: np.ndarray) -> None:
    rows, cols = min_cost_assignment(cost)
    assert len(rows) == min(cost.shape) and rows == sorted(rows)
    assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
    assert cost[rows, cols].sum() == pytest.approx(_best_by_brute_force(cost), abs=1e-6)


def test_empty_and_refused_matrices() -> None:
    assert min_cost_assignment(np.zeros((0, 3))) == ([], [])
    with pytest.raises(ValueError):
        min_cost_assignment(np.array([[np.inf, 1.0]]))
