"""Choosing a bit width per layer under a size budget (HAWQ-V3's integer program).

Each layer l takes one width b from a menu; it costs `size[l][b]` bytes and adds an
(approximately additive) loss `cost[l][b]`. Minimising the summed cost under a byte budget
is a multiple-choice knapsack, solved exactly as a small mixed-integer program with SciPy's
HiGHS (`scipy.optimize.milp`): one binary per (layer, width), one width per layer.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from lic.errors import InputError


def monotone_costs(cost: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """Measured costs with noise removed where it is certainly noise: a layer never gains
    from losing bits, so costs are clipped at 0 and made non-increasing in the width."""
    out = {}
    for layer, by_bits in cost.items():
        running, fixed = 0.0, {}
        for b in sorted(by_bits, reverse=True):
            running = max(running, by_bits[b], 0.0)
            fixed[b] = running
        out[layer] = fixed
    return out


def allocate_bits(cost: dict[str, dict[int, float]], size: dict[str, dict[int, int]], budget: int) -> dict[str, int]:
    """The width per layer of least total cost whose sizes add up to at most `budget` bytes."""
    choices = [(layer, b) for layer in cost for b in sorted(cost[layer])]
    layers = list(cost)
    c = np.array([cost[l][b] for l, b in choices])
    s = np.array([size[l][b] for l, b in choices], dtype=np.float64)
    if sum(min(size[l].values()) for l in layers) > budget:
        raise InputError(f"the size budget of {budget:,} bytes is below the smallest configuration "
                         f"({sum(min(size[l].values()) for l in layers):,} bytes of weights)")
    one_each = np.array([[1.0 if l == layer else 0.0 for l, _ in choices] for layer in layers])
    result = milp(
        c=c + 1e-12 * s,  # among equal costs, prefer the smaller file
        constraints=[LinearConstraint(one_each, 1, 1), LinearConstraint(s[None, :], 0, budget)],
        integrality=np.ones(len(choices)),
        bounds=Bounds(0, 1),
    )
    if not result.success:
        raise InputError(f"no bit allocation fits {budget:,} bytes ({result.message})")
    picked = [choices[i] for i in np.flatnonzero(result.x > 0.5)]
    return {l: b for l, b in picked}
