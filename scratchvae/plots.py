"""Figures of a trained VAE as PNG files (matplotlib, drawn off-screen with the Agg canvas).

* ``reconstructions.png`` -- test images (odd rows) above their reconstructions E[x|z = posterior mean];
* ``samples.png``         -- E[x|z] for z drawn from the prior;
* ``latent.png``          -- posterior means of test images coloured by digit (first two dims when the
  latent space is 2-D, else its first two principal components);
* ``manifold.png``        -- (2-D latent only) the decoded grid z = (Phi^-1(u), Phi^-1(v)) over a
  regular grid of (u, v) in (0, 1), as in Kingma & Welling (2014), figure 4;
* ``curves.png``          -- ELBO, reconstruction and KL per epoch, train against test.

matplotlib is imported inside the functions (``import scratchvae`` stays light), and only through
its object-oriented API: no pyplot, no global backend switch in the caller's session.
"""

from __future__ import annotations

from pathlib import Path
from statistics import NormalDist

import numpy as np

from .autograd.tensor import tensor as _tensor
from .backend import backend_of, dtype_name, to_numpy

__all__ = [
    "image_grid",
    "make_figures",
    "plot_curves",
    "plot_latent",
    "plot_manifold",
    "plot_reconstructions",
    "plot_samples",
    "show_grid",
]

_SIDE = 28


def _figure(width, height):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def image_grid(images: np.ndarray, ncol: int, pad: int = 1) -> np.ndarray:
    """Tile (N, 784) images into one 2-D array with ``ncol`` columns (empty cells stay 0)."""
    images = np.asarray(images, dtype=np.float64).reshape(-1, _SIDE, _SIDE)
    n = len(images)
    nrow = max(1, -(-n // ncol))
    cell = _SIDE + pad
    grid = np.zeros((nrow * cell + pad, ncol * cell + pad))
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        grid[pad + r * cell: pad + r * cell + _SIDE, pad + c * cell: pad + c * cell + _SIDE] = img
    return grid


def show_grid(grid, path, title) -> Path:
    """Draw a 2-D image grid (from :func:`image_grid`) in grey levels, with ``title`` above it, to ``path``."""
    h, w = grid.shape
    fig = _figure(max(3.0, w / 40), max(3.0, h / 40) + 0.4)
    ax = fig.add_axes([0, 0, 1, 0.92])
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_reconstructions(model, x: np.ndarray, path, n: int = 32, ncol: int = 8) -> Path:
    """Inputs and their reconstructions, row pairs: inputs, then what the model makes of them."""
    x = np.asarray(x[:n])
    rec = to_numpy(model.reconstruct(x))
    rows = []
    for start in range(0, len(x), ncol):
        rows.append(x[start:start + ncol])
        rows.append(rec[start:start + ncol])
    padded = [np.concatenate([r, np.zeros((ncol - len(r), r.shape[1]))]) if len(r) < ncol else r for r in rows]
    grid = image_grid(np.concatenate(padded), ncol)
    return show_grid(grid, path, "inputs (odd rows) and reconstructions E[x | z = posterior mean] (even rows)")


def plot_samples(model, path, n: int = 64, ncol: int = 8, generator=None) -> Path:
    """E[x|z] for n draws z ~ p(z)."""
    images = to_numpy(model.sample(n, generator=generator, mean=True))
    return show_grid(image_grid(images, ncol), path, "samples: E[x | z], z ~ p(z)")


def _posterior_means(model, x, batch_size=1000) -> np.ndarray:
    from .autograd import no_grad

    out = []
    with no_grad():
        for a in range(0, len(x), batch_size):
            q = model.encode(np.ascontiguousarray(x[a:a + batch_size]))
            mu = to_numpy(q.mean).astype(np.float64)
            out.append(mu.reshape(len(mu), -1))
    return np.concatenate(out)


def plot_latent(model, x: np.ndarray, labels: np.ndarray, path, n: int = 2000) -> Path:
    """Posterior means of up to n images coloured by digit: the dims themselves when the latent
    space is 2-D, else the first two principal components (an SVD of the centred means)."""
    x, labels = np.asarray(x[:n]), np.asarray(labels[:n])
    mu = _posterior_means(model, x)
    if mu.shape[1] <= 2:
        pts = mu if mu.shape[1] == 2 else np.column_stack([mu[:, 0], np.zeros(len(mu))])
        xlabel, ylabel, how = "z1", "z2", "latent dims"
    else:
        c = mu - mu.mean(axis=0)
        _, s, vt = np.linalg.svd(c, full_matrices=False)
        pts = c @ vt[:2].T
        share = s[:2] ** 2 / max((s ** 2).sum(), 1e-300)
        xlabel, ylabel = f"PC1 ({share[0]:.0%} of variance)", f"PC2 ({share[1]:.0%})"
        how = f"first two principal components of the {mu.shape[1]}-D posterior means"
    fig = _figure(6, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=4, alpha=0.8)
    fig.colorbar(sc, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"posterior means of {len(x)} test images\n{how}", fontsize=9)
    return _save(fig, path)


def plot_manifold(model, path, n: int = 20) -> Path:
    """The decoded 2-D latent grid: z = (Phi^-1(u), Phi^-1(v)), u and v evenly spaced in (0, 1)."""
    if model.latent_dim != 2:
        raise ValueError(f"the latent manifold plot needs a 2-D latent space; this model's has {model.latent_dim} "
                         "dims (train with --latent 2)")
    from .autograd import no_grad

    q = [NormalDist().inv_cdf(p) for p in np.linspace(0.5 / n, 1 - 0.5 / n, n)]
    # Rows run from high z2 (top) to low, so the picture has the usual axis orientation.
    z = np.array([[a, b] for b in q[::-1] for a in q])
    p = next(iter(model.parameters()))
    zt = _tensor(backend_of(p.data).from_numpy(z, dtype_name(p.dtype)))
    with no_grad():
        images = to_numpy(model.decode_mean(zt))
    return show_grid(image_grid(images, n), path, "decoded latent grid: z = Phi^-1 of an even grid")


def plot_curves(metrics: list, path) -> Path:
    """ELBO, reconstruction and KL per epoch, train against validation and test where recorded."""
    if not metrics:
        raise ValueError("no metrics to plot (the run has not finished an epoch)")
    fig = _figure(12, 3.6)
    epochs = [m["epoch"] for m in metrics]
    panels = [("elbo", "ELBO (nats per image)"), ("rec", "reconstruction E[log p(x|z)]"), ("kl", "KL(q || p)")]
    for i, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, 3, i + 1)
        for split, style in (("train", "-"), ("val", ":"), ("test", "--")):
            pts = [(e, m[f"{split}_{key}"]) for e, m in zip(epochs, metrics) if f"{split}_{key}" in m]
            if pts:
                ax.plot(*zip(*pts), style, marker="o" if len(pts) < 30 else None, ms=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def make_figures(folder, model, x_test: np.ndarray, labels: np.ndarray, metrics: list | None = None,
                 generator=None, what=("reconstructions", "samples", "latent", "manifold", "curves")) -> list:
    """Write the figures named in ``what`` into ``folder``; returns the paths written.

    ``manifold`` is skipped unless the latent space is 2-D; ``curves`` unless metrics are given.
    """
    folder = Path(folder)
    out = []
    if "reconstructions" in what:
        out.append(plot_reconstructions(model, x_test, folder / "reconstructions.png"))
    if "samples" in what:
        out.append(plot_samples(model, folder / "samples.png", generator=generator))
    if "latent" in what:
        out.append(plot_latent(model, x_test, labels, folder / "latent.png"))
    if "manifold" in what and model.latent_dim == 2:
        out.append(plot_manifold(model, folder / "manifold.png"))
    if "curves" in what and metrics:
        out.append(plot_curves(metrics, folder / "curves.png"))
    return out
