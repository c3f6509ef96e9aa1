"""Two gradient estimators for the same expectation: reparameterization vs the score function.

    python examples/05_gradient_variance.py [OUT_DIR] [--samples 200000] [--seed 0] [--tiny]

We want g = d/dtheta E_{z ~ N(mu, sigma^2)}[f(z)] for theta = mu and theta = sigma, for a few f whose
expectation has a closed form, so the exact gradient is known (docs/math.md#two-gradient-estimators):

* pathwise (reparameterization): z = mu + sigma * eps; the engine differentiates f(z) through
  ``Normal.rsample``, giving f'(z) and f'(z) * eps per draw;
* score function (REINFORCE): f(z) * d/dtheta log q(z), obtained from the engine as the gradient
  of the surrogate f(z) * log q(z) with f(z) held constant (``Normal.log_prob``);
* the score function with a baseline b (the mean of f over the other draws), (f(z) - b) * score.

Both estimators use the same draws.  The script prints, for each f, the mean of each estimator
(with its distance from the exact gradient in standard errors) and its variance per draw, then
shows how the score function's variance grows with the dimension of z while the pathwise one does
not.  OUT_DIR receives ``05_gradient_variance.txt`` and, where matplotlib is installed,
``05_gradient_variance.png``.  Runs in a few seconds on a laptop CPU; ``--tiny`` in well under one.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.distributions import Normal

MU, SIGMA = 0.5, 1.0


def _phi(t):
    return math.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)


# name, f as an engine expression of z, exact (d/dmu, d/dsigma) of E f(z) under N(mu, sigma^2)
def _cases():
    e_exp = math.exp(MU + SIGMA**2 / 2)  # E exp(z) = exp(mu + sigma^2 / 2)
    return [
        ("constant  f = 3", lambda z: z * 0.0 + 3.0, (0.0, 0.0)),
        ("linear    f = z", lambda z: z, (1.0, 0.0)),
        ("quadratic f = (z-2)^2", lambda z: F.square(z - 2.0), (2 * (MU - 2.0), 2 * SIGMA)),
        ("exp       f = e^z", lambda z: F.exp(z), (e_exp, SIGMA * e_exp)),
        # P(z > 0) = Phi(mu / sigma); f has zero derivative almost everywhere, so the pathwise
        # estimator returns 0: it needs a differentiable f, the score function does not.
        ("step      f = 1[z>0]", lambda z: F.where(z.data > 0, z * 0.0 + 1.0, z * 0.0),
         (_phi(MU / SIGMA) / SIGMA, -MU / SIGMA**2 * _phi(MU / SIGMA))),
    ]


def _params(n, dim=None):
    shape = (n,) if dim is None else (n, dim)
    loc = sv.tensor(np.full(shape, MU), requires_grad=True)
    scale = sv.tensor(np.full(shape, SIGMA), requires_grad=True)
    return loc, scale


def pathwise(f, n, seed, dim=None):
    """Per-draw gradients f'(z) and f'(z) * eps: one parameter copy per draw, so .grad holds each draw's."""
    loc, scale = _params(n, dim)
    z = Normal(loc, scale).rsample(generator=sv.Generator(seed))  # z = loc + scale * eps
    f(z).sum().backward()  # draws do not interact, so d(sum)/d loc_i is draw i's own gradient
    return sv.to_numpy(loc.grad), sv.to_numpy(scale.grad)


def score_function(f, n, seed, dim=None, baseline=False):
    """Per-draw (f(z) - b) * grad log q(z): backward through the surrogate (f(z) - b) * log q(z)."""
    loc, scale = _params(n, dim)
    q = Normal(loc, scale)
    z = q.rsample(generator=sv.Generator(seed)).detach()  # the same draws as `pathwise`, cut from the graph
    with sv.no_grad():
        fz = f(z)
        if dim is not None:
            fz = fz.sum(axis=1, keepdims=True)  # f(z) = sum_j f(z_j): one value per draw of the vector
        fz = fz.numpy()
    if baseline:
        fz = fz - (fz.sum(axis=0) - fz) / (n - 1)  # leave-one-out mean: b does not depend on this draw
    log_q = q.log_prob(z)  # shape (n,) or (n, dim); its sum over dims is log q of the vector
    (sv.tensor(fz) * log_q).sum().backward()
    return sv.to_numpy(loc.grad), sv.to_numpy(scale.grad)


def summarize(g, exact):
    """mean, its distance from the exact value in standard errors, and the variance per draw."""
    mean, var = float(g.mean()), float(g.var(ddof=1))
    se = math.sqrt(var / len(g))
    z = (mean - exact) / se if se > 0 else (0.0 if abs(mean - exact) < 1e-12 else math.inf)
    return mean, z, var


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default=None, help="folder for the table and the figure")
    ap.add_argument("--samples", type=int, default=200_000, help="draws per estimator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tiny", action="store_true", help="a few thousand draws (smoke test)")
    args = ap.parse_args(argv)
    n = 2000 if args.tiny else args.samples
    dims = [1, 4, 16] if args.tiny else [1, 4, 16, 64, 256]
    n_dim = 1000 if args.tiny else 20_000

    sv.set_default_dtype("float64")
    t0 = time.perf_counter()
    lines = []

    def say(text=""):
        print(text)
        lines.append(text)

    say(f"d/dtheta E[f(z)], z ~ N(mu={MU}, sigma={SIGMA}^2); {n} draws per estimator, the same draws for all")
    say("each cell: mean (its distance from the exact gradient in standard errors) and variance per draw")
    est_names = ["pathwise", "score", "score+baseline"]
    results = {}
    for theta_i, theta in enumerate(["mu", "sigma"]):
        say()
        say(f"gradient with respect to {theta}")
        say(f"{'f':24s} {'exact':>8s} | " + " | ".join(f"{e:>29s}" for e in est_names) + " | var ratio score/path")
        for name, f, exact in _cases():
            grads = [pathwise(f, n, args.seed)[theta_i], score_function(f, n, args.seed)[theta_i],
                     score_function(f, n, args.seed, baseline=True)[theta_i]]
            stats = [summarize(g, exact[theta_i]) for g in grads]
            results[(theta, name)] = stats
            cells = [f"{m:8.4f} ({zz:+5.1f} se) {v:9.3g}" if abs(zz) < 100 else f"{m:8.4f} (BIASED)    {v:9.3g}"
                     for m, zz, v in stats]
            ratio = stats[1][2] / stats[0][2] if stats[0][2] > 0 else math.inf
            say(f"{name:24s} {exact[theta_i]:8.4f} | " + " | ".join(f"{c:>29s}" for c in cells)
                + f" | {ratio:10.3g}")

    # the dimension of z: f(z) = sum_j (z_j - 2)^2, gradient with respect to mu_1 only
    say()
    say(f"f(z) = sum_j (z_j - 2)^2 over d dimensions; variance per draw of the estimate of d/dmu_1 ({n_dim} draws)")
    say(f"{'d':>5s} {'pathwise':>10s} {'score':>10s} {'score+baseline':>15s}")
    quad = _cases()[2][1]
    by_dim = {"pathwise": [], "score": [], "score+baseline": []}
    for d in dims:
        vals = [pathwise(quad, n_dim, args.seed, dim=d)[0][:, 0], score_function(quad, n_dim, args.seed, dim=d)[0][:, 0],
                score_function(quad, n_dim, args.seed, dim=d, baseline=True)[0][:, 0]]
        for k, g in zip(by_dim, vals):
            by_dim[k].append(float(g.var(ddof=1)))
        say(f"{d:5d} {by_dim['pathwise'][-1]:10.4g} {by_dim['score'][-1]:10.4g} {by_dim['score+baseline'][-1]:15.4g}")
    say(f"done in {time.perf_counter() - t0:.1f} s")

    if not args.out_dir:
        return
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "05_gradient_variance.txt").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / '05_gradient_variance.txt'}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipping the figure (pip install matplotlib)")
        return
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8))
    names = [c[0] for c in _cases()]
    floor = 1e-3  # a variance of exactly 0 is drawn at the floor and labelled
    width = 0.27
    for k, est in enumerate(est_names):
        v = [results[("mu", nm)][k][2] for nm in names]
        xs = np.arange(len(names)) + (k - 1) * width
        a1.bar(xs, [max(x, floor) for x in v], width, label=est, color=f"C{k}")
        for x, val in zip(xs, v):
            if val <= 0:
                a1.text(x, floor * 1.3, "0", ha="center", fontsize=7)
    a1.set_yscale("log")
    a1.set_ylim(floor, 1e5)
    a1.set_xticks(np.arange(len(names)), [nm.split()[0] for nm in names], fontsize=8)
    a1.set_ylabel("variance per draw")
    a1.set_title(f"d/dmu E[f(z)], z ~ N({MU}, {SIGMA}^2)  (pathwise on step: 0, biased)", fontsize=9)
    a1.legend(fontsize=7, ncol=3, loc="upper center")
    for k, est in enumerate(est_names):
        a2.loglog(dims, by_dim[est], "o-", label=est, color=f"C{k}")
    a2.set_xlabel("dimension d of z")
    a2.set_ylabel("variance per draw")
    a2.set_title("d/dmu_1 E[sum_j (z_j - 2)^2]", fontsize=9)
    a2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "05_gradient_variance.png", dpi=100)
    plt.close(fig)
    print(f"wrote {out / '05_gradient_variance.png'}")


if __name__ == "__main__":
    main()
