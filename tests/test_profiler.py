"""scratchvae.profile records each op's calls and time, forward and backward, and stops at exit."""

import numpy as np

import scratchvae as sv
import scratchvae.functional as F


def test_profile_counts_calls_per_op_and_phase(bk):
    x = bk.tensor(np.ones((4, 3)), requires_grad=True)
    with sv.profile() as p:
        for _ in range(3):
            y = (F.exp(x) * 2.0).sum()
            y.backward()
    assert p.stats[("Exp", "forward")][0] == 3
    assert p.stats[("Exp", "backward")][0] == 3
    assert p.stats[("Mul", "forward")][0] == 3
    assert p.stats[("Sum", "backward")][0] == 3
    assert all(sec >= 0 for _, sec in p.stats.values())
    table = p.table()
    assert "| Exp | forward | 3 |" in table and "wall time" in table
    F.exp(x)  # after the block nothing is recorded
    assert p.stats[("Exp", "forward")][0] == 3
