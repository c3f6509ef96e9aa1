"""A VAE on MNIST written the way a PyTorch user writes one, running on scratchvae.

    python examples/06_pytorch_style_vae.py [OUT_DIR] [--epochs 10] [--batch-size 128] [--root DIR]

Every line uses PyTorch's names for PyTorch's concepts -- ``x.view(-1, 784)``, ``x.size(0)``,
``mu.pow(2)``, ``sv.cat([...], dim=0)``, ``t.sum(dim=1)``, ``sv.randn_like``, ``sv.randn``,
``sv.exp``, ``sv.sigmoid``, ``F.binary_cross_entropy(..., reduction="sum")``, ``save_image``,
``optimizer.zero_grad(set_to_none=True)``, ``sv.device("cpu")``, ``datasets.MNIST`` with a shuffled
``DataLoader``, ``len(loader.dataset)`` and ``sv.manual_seed`` -- so it reads side by side with
PyTorch code (docs/for_pytorch_users.md maps each name to the file that implements it).

Data: the embedded MNIST subset (10,000 training, 2,000 test images) unless ``--root`` names a
folder with the MNIST files.  One epoch on the subset takes a few seconds on a laptop CPU.
OUT_DIR receives ``06_pytorch_style_vae.txt`` (the losses per epoch) and, per epoch,
``reconstruction_<epoch>.png`` (test images above their reconstructions) and ``sample_<epoch>.png``
(64 decoded draws from the prior) where matplotlib is installed.  The decoder's Bernoulli probabilities are scored against grey
levels, as in PyTorch's tutorial; the training command (``scratchvae train``) binarizes instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import scratchvae as sv
import scratchvae.nn.functional as F
from scratchvae import nn, optim
from scratchvae.data import DataLoader, datasets, transforms

LATENT = 20
HAS_MPL = importlib.util.find_spec("matplotlib") is not None  # save_image writes PNGs with matplotlib


class VAE(nn.Module):
    def __init__(self, hidden=400, latent=LATENT):
        super().__init__()
        self.enc = nn.Linear(784, hidden)
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_logvar = nn.Linear(hidden, latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, 784)

    def encode(self, x):
        h = F.relu(self.enc(x))
        return self.enc_mu(h), self.enc_logvar(h)

    def reparameterize(self, mu, logvar):
        std = sv.exp(0.5 * logvar)
        return mu + sv.randn_like(std) * std

    def decode(self, z):
        return sv.sigmoid(self.dec_out(F.relu(self.dec(z))))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def vae_loss(recon, x, mu, logvar):
    """Negative ELBO summed over the batch: BCE reconstruction + KL(q(z|x) || N(0, I)) in closed form."""
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kl_per_example = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
    return bce + kl_per_example.sum()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", nargs="?", default="results", help="folder for the losses and the images")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--log-interval", type=int, default=20)
    ap.add_argument("--root", default=None, help="folder with the MNIST files (default: the embedded subset)")
    args = ap.parse_args(argv)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)

    sv.manual_seed(args.seed)
    device = sv.device("cuda" if sv.cuda.is_available() else "cpu")
    train_loader = DataLoader(datasets.MNIST(args.root, train=True, transform=transforms.ToTensor()),
                              batch_size=args.batch_size, shuffle=True)
    test_loader = DataLoader(datasets.MNIST(args.root, train=False, transform=transforms.ToTensor()),
                             batch_size=args.batch_size, shuffle=False)

    model = VAE().to(device)
    optimizer = optim.Adam(model.parameters(), lr=1e-3)
    lines = []

    def say(text):
        print(text)
        lines.append(text)

    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        train_loss = 0.0
        for batch_idx, (data, _) in enumerate(train_loader):
            data = data.to(device)
            optimizer.zero_grad(set_to_none=True)
            recon, mu, logvar = model(data)
            loss = vae_loss(recon, data, mu, logvar)
            loss.backward()
            optimizer.step()
            train_loss += loss.item()
            if batch_idx % args.log_interval == 0:
                print(f"epoch {epoch} [{batch_idx * data.size(0)}/{len(train_loader.dataset)}]  "
                      f"loss per image {loss.item() / data.size(0):.2f}")

        model.eval()
        test_loss = 0.0
        with sv.no_grad():
            for i, (data, _) in enumerate(test_loader):
                data = data.to(device)
                recon, mu, logvar = model(data)
                test_loss += vae_loss(recon, data, mu, logvar).item()
                if i == 0 and HAS_MPL:
                    n = min(data.size(0), 8)
                    comparison = sv.cat([data[:n], recon.view(data.size(0), 1, 28, 28)[:n]], dim=0)
                    sv.save_image(comparison.cpu(), out / f"reconstruction_{epoch}.png", nrow=n)
            sample = model.decode(sv.randn(64, LATENT).to(device)).cpu()
            if HAS_MPL:
                sv.save_image(sample.view(64, 1, 28, 28), out / f"sample_{epoch}.png")
        say(f"epoch {epoch}  train loss {train_loss / len(train_loader.dataset):.2f}  "
            f"test loss {test_loss / len(test_loader.dataset):.2f} nats per image  "
            f"({time.perf_counter() - t0:.1f} s, {len(train_loader)} batches of {args.batch_size})")

    (out / "06_pytorch_style_vae.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
