"""Autograd in a second: build a small graph, backpropagate, and check against finite differences.

    python examples/01_autograd_basics.py [OUT_DIR]

The (optional) OUT_DIR receives a text file with the printed results.
"""

import sys
from pathlib import Path

import numpy as np

import scratchvae as sv
import scratchvae.functional as F


def main(out_dir=None):
    sv.set_default_dtype("float64")  # finite-difference checks need float64
    lines = []

    def say(*args):
        text = " ".join(str(a) for a in args)
        print(text)
        lines.append(text)

    # f(w, b) = sum_i softplus(x_i . w + b): the graph records each op as it runs
    x = sv.tensor(np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, -3.0]]))
    w = sv.tensor(np.array([0.3, -0.2]), requires_grad=True)
    b = sv.tensor(0.1, requires_grad=True)
    f = F.softplus(x @ w + b).sum()
    f.backward()
    say("f =", f.item())
    say("df/dw =", w.grad, " df/db =", b.grad)

    # the same gradients by hand: d softplus(u)/du = sigmoid(u)
    u = x.numpy() @ w.numpy() + b.item()
    s = 1 / (1 + np.exp(-u))
    say("by hand: df/dw =", x.numpy().T @ s, " df/db =", s.sum())

    # and against central differences, through the public gradient checker
    sv.gradcheck(lambda w, b: F.softplus(x @ w + b).sum(), [w, b])
    say("gradcheck: OK")

    # errors name the op and the shapes
    try:
        sv.tensor(np.ones((128, 784))) @ sv.tensor(np.ones((400, 784)))
    except ValueError as e:
        say("error example:", e)

    if out_dir:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "01_autograd_basics.txt").write_text("\n".join(lines) + "\n")
        print(f"wrote {out / '01_autograd_basics.txt'}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
