"""The ELBO by hand: a tiny VAE on 4x4 binary "bars", trained with nothing but the engine.

    python examples/02_elbo_by_hand.py [OUT_DIR] [--steps 400] [--seed 0]

Encoder and decoder are written as matrix products on raw Tensors, the optimizer is a ten-line
Adam, and everything probabilistic comes from scratchvae.distributions and scratchvae.elbo:
q(z|x) = N(mu, exp(log_var)) via ``Normal.from_log_var``, p(x|z) = ``bernoulli_likelihood``, the
analytic Gaussian KL, then the bounds ELBO <= IWAE_k <= log p(x) on held-out data (docs/elbo.md).
Runs in a few seconds on a laptop CPU.  OUT_DIR receives ``02_elbo_by_hand.txt`` and, where
matplotlib is installed, ``02_elbo_by_hand.png`` (training curves and the bounds against k).
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np

import scratchvae as sv
import scratchvae.functional as F
from scratchvae.distributions import Independent, Normal, bernoulli_likelihood, kl_divergence, kl_monte_carlo
from scratchvae.elbo import elbo, iwae_bound, log_likelihood

D, H, L = 16, 32, 2  # 4x4 pixels, hidden units, latent dimensions


def make_bars(n, rng):
    """4x4 images with one horizontal and one vertical bar at random rows/columns, 5% pixels flipped."""
    x = np.zeros((n, 4, 4))
    x[np.arange(n), rng.integers(0, 4, n), :] = 1
    cols = rng.integers(0, 4, n)
    x[np.arange(n), :, cols] = 1
    flip = rng.random(x.shape) < 0.05
    return np.where(flip, 1 - x, x).reshape(n, D)


def init_params(rng):
    def w(i, o):
        return sv.tensor(rng.normal(size=(i, o)) * math.sqrt(1.0 / i), requires_grad=True)

    def b(o):
        return sv.tensor(np.zeros(o), requires_grad=True)

    return {"We": w(D, H), "be": b(H), "Wmu": w(H, L), "bmu": b(L), "Wlv": w(H, L), "blv": b(L),
            "Wd": w(L, H), "bd": b(H), "Wo": w(H, D), "bo": b(D)}


def make_model(p):
    def encode(x):
        h = F.tanh(x @ p["We"] + p["be"])
        # the encoder's second head is a LOG-VARIANCE: std = exp(0.5 * log_var)
        return Independent(Normal.from_log_var(h @ p["Wmu"] + p["bmu"], h @ p["Wlv"] + p["blv"]), 1)

    def decode(z):
        h = F.tanh(z @ p["Wd"] + p["bd"])
        return bernoulli_likelihood(h @ p["Wo"] + p["bo"])  # log p(x|z) summed over the 16 pixels

    return encode, decode


class Adam:
    """Just enough Adam (Kingma & Ba 2015) for this example, on the backend arrays of the parameters."""

    def __init__(self, params, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
        self.params, self.lr, self.b1, self.b2, self.eps, self.t = list(params), lr, b1, b2, eps, 0
        self.m = [0.0 * p.data for p in self.params]
        self.v = [0.0 * p.data for p in self.params]

    def step(self):
        self.t += 1
        for i, p in enumerate(self.params):
            g = p.grad
            self.m[i] = self.b1 * self.m[i] + (1 - self.b1) * g
            self.v[i] = self.b2 * self.v[i] + (1 - self.b2) * g * g
            mh = self.m[i] / (1 - self.b1**self.t)
            vh = self.v[i] / (1 - self.b2**self.t)
            p.data = p.data - self.lr * mh / (sv.backend.namespace(vh).sqrt(vh) + self.eps)
            p.grad = None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default=None, help="folder for the text report and the figure")
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    sv.set_default_dtype("float64")
    rng = np.random.default_rng(args.seed)
    gen = sv.Generator(args.seed)
    train, test = make_bars(1024, rng), make_bars(64, rng)
    params = init_params(rng)
    encode, decode = make_model(params)
    prior = Independent(Normal.standard((L,)), 1)  # p(z) = N(0, I); the KL takes its fast path
    opt = Adam(params.values())
    lines, history = [], {"step": [], "elbo": [], "rec": [], "kl": []}

    def say(text):
        print(text)
        lines.append(text)

    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        x = sv.tensor(train[rng.integers(0, len(train), 64)])
        r = elbo(x, encode, decode, prior, n_samples=1, generator=gen)
        r.loss().backward()  # loss = -mean_i objective_i (here objective = ELBO: beta = 1, no free bits)
        opt.step()
        if step % 20 == 0 or step == 1:
            history["step"].append(step)
            history["elbo"].append(float(r.elbo.numpy().mean()))
            history["rec"].append(float(r.reconstruction.numpy().mean()))
            history["kl"].append(float(r.kl.numpy().mean()))
        if step % 300 == 0 or step == args.steps:
            per_dim = r.kl_per_dim.numpy().mean(0)
            say(f"step {step:4d}  ELBO {history['elbo'][-1]:8.3f} = reconstruction {history['rec'][-1]:8.3f}"
                f" - KL {history['kl'][-1]:6.3f}   KL per latent dim {np.round(per_dim, 3)}")
    say(f"trained {args.steps} steps in {time.perf_counter() - t0:.1f} s")

    # held-out bounds: ELBO <= IWAE_k <= log p(x), and the importance-sampled log-likelihood
    xt = sv.tensor(test)
    with sv.no_grad():
        e = elbo(xt, encode, decode, prior, n_samples=100, generator=gen)
        e_mc = elbo(xt, encode, decode, prior, n_samples=100, kl="mc", generator=gen)
        ks = [1, 5, 25, 100]
        iw = [float(iwae_bound(xt, encode, decode, prior, k, generator=gen).numpy().mean()) for k in ks]
    ll = log_likelihood(xt, encode, decode, prior, k=2000, chunk=250, generator=gen)
    say(f"test ELBO (analytic KL) {e.elbo.numpy().mean():.3f}   (MC KL) {e_mc.elbo.numpy().mean():.3f}")
    for k, v in zip(ks, iw):
        say(f"test IWAE_{k:<4d} {v:.3f}")
    say(f"test log p(x) ~ {ll.log_px.numpy().mean():.3f} (k = 2000; mean ESS {ll.ess.numpy().mean():.0f})")
    with sv.no_grad():
        q = encode(xt)
        exact = kl_divergence(q, prior).numpy().mean()
        sampled = kl_monte_carlo(q, prior, 10000, generator=gen).numpy().mean()
    say(f"KL(q(z|x) || p(z)): closed form {exact:.4f}, Monte Carlo with 10000 samples {sampled:.4f}")

    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "02_elbo_by_hand.txt").write_text("\n".join(lines) + "\n")
        print(f"wrote {out / '02_elbo_by_hand.txt'}")
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print("matplotlib is not installed: skipping the figure (pip install matplotlib)")
            return
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
        a1.plot(history["step"], history["elbo"], label="ELBO")
        a1.plot(history["step"], history["rec"], label="reconstruction E_q log p(x|z)")
        a1.plot(history["step"], [-k for k in history["kl"]], label="-KL(q(z|x) || p(z))")
        a1.set_xlabel("step")
        a1.set_ylabel("nats per example")
        a1.legend(fontsize=7)
        a1.set_title("training (minibatch)")
        a2.semilogx(ks, iw, "o-", label="IWAE_k")
        a2.axhline(float(e.elbo.numpy().mean()), color="C1", ls="--", label="ELBO")
        a2.axhline(float(ll.log_px.numpy().mean()), color="k", ls=":", label="log p(x), k = 2000")
        a2.set_xlabel("k")
        a2.legend(fontsize=7)
        a2.set_title("held-out bounds")
        fig.tight_layout()
        fig.savefig(out / "02_elbo_by_hand.png", dpi=100)
        plt.close(fig)
        print(f"wrote {out / '02_elbo_by_hand.png'}")


if __name__ == "__main__":
    main()
