"""Evaluating a trained VAE on held-out images, in nats per image (docs/training.md#evaluation).

* the ELBO with ONE sampled z per image -- z ~ q(z|x), never z = the posterior mean, which would
  not be a bound -- split into the reconstruction term E_q[log p(x|z)] and KL(q(z|x) || p(z));
* log p(x) estimated by importance sampling with k samples from q(z|x) (k = 5000 as in Burda et
  al. 2016), in chunks so memory stays bounded: log p(x) ~ log (1/k) sum_i p(x, z_i) / q(z_i|x);
* active units: latent dims whose posterior mean varies over the data, Var_x(E_q[z_j]) > 0.01 (for
  two stochastic layers, of z1 and of z2, with q(z2|z1) at z1 = the mean of q(z1|x), as the paper does);
* the KL of each latent dimension, averaged over the images.

Everything is computed per batch on the model's backend; only per-image numbers come back to the host.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np

from .autograd import as_tensor, no_grad
from .backend import backend_of, to_numpy
from .elbo import elbo as _elbo
from .models.two_layer_vae import TwoLayerVAE

__all__ = ["ACTIVE_UNIT_THRESHOLD", "elbo_stats", "evaluate", "format_table", "log_likelihood_stats", "write_json"]

#: A latent unit is active when the variance over the data of its posterior mean exceeds this
#: (Burda et al. 2016, section 5.2).
ACTIVE_UNIT_THRESHOLD = 0.01
# Rows (samples x images) per decoder call in the importance sampler.  On the CPU the elementwise
# passes over the (rows, pixels) logits are memory-bound, so arrays that stay in cache (1,000 x 784
# float32 = 3 MB) are twice as fast per sample as large ones; a GPU wants large calls instead.
_ROWS_PER_CALL = {"numpy": 1_000}
_ROWS_DEFAULT = 50_000


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _bar(total, desc, progress):
    if not progress:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)


def elbo_stats(model, x: np.ndarray, batch_size: int = 1000, generator=None, n_samples: int = 1,
               details: bool = True, progress: bool = False) -> dict:
    """Mean over the images ``x`` (host array, one image per row) of the stochastic ELBO and its parts.

    One z ~ q(z|x) per image (``n_samples`` averages more); never the posterior mean in place of a
    sample.  With ``details``: the KL per latent dim (mean over images), the variance over images
    of the posterior mean per dim, and the number of active units.  A :class:`TwoLayerVAE` computes its
    own (sampled) ELBO, and adds ``active_units_z2`` and ``posterior_mean_variance_z2``.
    """
    n = len(x)
    if n == 0:
        raise ValueError("evaluate: no images to evaluate on")
    sums = np.zeros(3)
    sq = 0.0
    kl_dims, means, means2 = [], [], []
    two_layers = isinstance(model, TwoLayerVAE)
    bar = _bar(n, "ELBO", progress)
    like = next(iter(model.parameters()), None)  # host batches go to the parameters' backend and dtype
    with no_grad():
        for a, b in _batches(n, batch_size):
            xb = as_tensor(np.ascontiguousarray(x[a:b]), like)
            seen = {}

            def encode(inp, _seen=seen):
                q = model.encode(inp)
                _seen["q"] = q
                return q

            if two_layers:
                r = model.elbo(xb, n_samples=n_samples, generator=generator)
            else:
                r = _elbo(xb, encode, model.decode, model.prior, n_samples=n_samples, generator=generator)
            e = to_numpy(r.elbo).astype(np.float64)
            sums += [e.sum(), float(to_numpy(r.reconstruction).astype(np.float64).sum()),
                     float(to_numpy(r.kl).astype(np.float64).sum())]
            sq += float((e * e).sum())
            if details:
                if r.kl_per_dim is not None:
                    kl_dims.append(to_numpy(r.kl_per_dim).astype(np.float64).sum(axis=0))
                if two_layers:
                    mu, mu2 = (to_numpy(m).astype(np.float64) for m in model.layer_means(xb))
                    means2.append(mu2)
                else:
                    mu = to_numpy(seen["q"].mean).astype(np.float64)
                means.append(mu.reshape(len(mu), -1))
            if bar is not None:
                bar.update(b - a)
    if bar is not None:
        bar.close()
    mean = sums / n
    out = {"n": n, "elbo": float(mean[0]), "reconstruction": float(mean[1]), "kl": float(mean[2]),
           "elbo_stderr": float(math.sqrt(max(sq / n - mean[0] ** 2, 0.0) / n))}
    if details:
        var = np.concatenate(means).var(axis=0)
        out["posterior_mean_variance"] = var.tolist()
        out["active_units"] = int((var > ACTIVE_UNIT_THRESHOLD).sum())
        out["kl_per_dim"] = (np.sum(kl_dims, axis=0) / n).tolist() if kl_dims else None
        if two_layers:
            var2 = np.concatenate(means2).var(axis=0)
            out["posterior_mean_variance_z2"] = var2.tolist()
            out["active_units_z2"] = int((var2 > ACTIVE_UNIT_THRESHOLD).sum())
    return out


def log_likelihood_stats(model, x: np.ndarray, k: int = 5000, batch_size: int | None = None,
                         chunk: int | None = None, generator=None, progress: bool = False,
                         per_image: bool = False) -> dict:
    """Importance-sampled log p(x) with ``k`` samples per image, mean over the images (nats).

    The estimate is a stochastic lower bound in expectation (Jensen), tight as k grows; the effective
    sample size (ESS, between 1 and k) says how much the weights trust q(z|x): an ESS near 1 means one
    sample dominated and the estimate is unreliable for that image.  ``per_image=True`` adds the
    per-image estimates as ``log_px_images`` (a float64 NumPy array), so that two models evaluated on
    the same images can be compared pairwise, with the much smaller standard error of the differences.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"evaluate: k must be >= 1, got {k}")
    n = len(x)
    chunk = int(chunk or min(k, 100))
    if batch_size is None:
        p = next(iter(model.parameters()))
        rows = _ROWS_PER_CALL.get(backend_of(p.data).name, _ROWS_DEFAULT)
        chunk = min(chunk, rows)
        batch_size = max(1, rows // chunk)
    batch_size = int(batch_size)
    log_px, ess = [], []
    bar = _bar(n, f"log p(x), k={k}", progress)
    for a, b in _batches(n, batch_size):
        r = model.log_likelihood(np.ascontiguousarray(x[a:b]), k=k, chunk=chunk, generator=generator)
        log_px.append(to_numpy(r.log_px).astype(np.float64))
        ess.append(to_numpy(r.ess).astype(np.float64))
        if bar is not None:
            bar.update(b - a)
    if bar is not None:
        bar.close()
    lp, es = np.concatenate(log_px), np.concatenate(ess)
    out = {"k": k, "log_px": float(lp.mean()), "nll": float(-lp.mean()),
           "nll_stderr": float(lp.std() / math.sqrt(len(lp))), "ess_mean": float(es.mean()),
           "ess_min": float(es.min())}
    if per_image:
        out["log_px_images"] = lp
    return out


def evaluate(model, x: np.ndarray, *, k: int = 5000, batch_size: int = 1000, generator=None,
             progress: bool = False, per_image: bool = False) -> dict:
    """ELBO parts, active units, per-dim KL and (for k > 0) the importance-sampled log p(x), as a dict.

    ``per_image=True`` adds ``log_px_images``, the per-image log p(x) (see ``log_likelihood_stats``).
    """
    t0 = time.perf_counter()
    out = elbo_stats(model, x, batch_size=batch_size, generator=generator, details=True, progress=progress)
    out["loss"] = -out["elbo"]
    out["latent_dim"] = int(model.latent_dim)
    if isinstance(model, TwoLayerVAE):
        out["latent_dim2"] = int(model.latent_dim2)
    out["elbo_seconds"] = time.perf_counter() - t0
    if k and k > 0:
        t1 = time.perf_counter()
        out.update(log_likelihood_stats(model, x, k=k, generator=generator, progress=progress,
                                        per_image=per_image))
        out["log_px_seconds"] = time.perf_counter() - t1
    return out


def format_table(r: dict, title: str | None = None) -> str:
    """The evaluation as a small text table (nats per image)."""
    rows = [("images evaluated", f"{r['n']}")]
    rows.append(("test ELBO (1 sampled z per image)", f"{r['elbo']:.2f} +- {r['elbo_stderr']:.2f}"))
    rows.append(("  reconstruction E_q[log p(x|z)]", f"{r['reconstruction']:.2f}"))
    rows.append(("  KL(q(z|x) || p(z))", f"{r['kl']:.2f}"))
    rows.append(("test loss = -ELBO", f"{r['loss']:.2f}"))
    if "log_px" in r:
        rows.append((f"log p(x), importance sampled, k={r['k']}", f"{r['log_px']:.2f} +- {r['nll_stderr']:.2f}"))
        rows.append(("NLL = -log p(x)", f"{r['nll']:.2f}"))
        rows.append(("effective sample size (mean / min)", f"{r['ess_mean']:.1f} / {r['ess_min']:.1f}"))
    rows.append((f"active units (Var of posterior mean > {ACTIVE_UNIT_THRESHOLD})",
                 f"{r['active_units']} of {r['latent_dim']}" + (" (z1)" if "active_units_z2" in r else "")))
    if "active_units_z2" in r:
        rows.append(("active units of z2 (at z1 = the posterior mean)",
                     f"{r['active_units_z2']} of {r['latent_dim2']}"))
    kl = r.get("kl_per_dim")
    if kl:
        order = np.argsort(kl)[::-1]
        top = ", ".join(f"z{j}: {kl[j]:.2f}" for j in order[:5])
        rows.append(("KL per dim, largest", top))
        rows.append(("KL per dim, dims below 0.01 nats", f"{int(np.sum(np.asarray(kl) < 0.01))}"))
    width = max(len(a) for a, _ in rows)
    lines = [title] if title else []
    lines += [f"{a:<{width}}  {b}" for a, b in rows]
    return "\n".join(lines)


def write_json(result: dict, path) -> None:
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
