"""PyTorch state_dicts into scratchvae models (and back): PyTorch's key names, Linear weights
(out, in) transposed to scratchvae's (in, out), shapes checked, errors naming the key.  The dicts are
built by hand; torch itself is used only for a cross-check where it happens to be installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import scratchvae as sv
from scratchvae import nn
from scratchvae.nn import load_torch_state_dict, torch_state_dict


class VAE(nn.Module):
    """pytorch/examples' VAE layout: the same attribute names, so the same keys."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 5)
        self.fc21 = nn.Linear(5, 2)
        self.fc22 = nn.Linear(5, 2)
        self.fc3 = nn.Linear(2, 5)
        self.fc4 = nn.Linear(5, 6)

    def forward(self, x):
        h = sv.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)


def _torch_layout(seed=0):
    """What ``torch_vae.state_dict()`` holds, as NumPy: weights (out, in), biases (out,)."""
    rng = np.random.default_rng(seed)
    sizes = {"fc1": (6, 5), "fc21": (5, 2), "fc22": (5, 2), "fc3": (2, 5), "fc4": (5, 6)}
    sd = {}
    for name, (i, o) in sizes.items():
        sd[f"{name}.weight"] = rng.normal(size=(o, i)).astype(np.float32)
        sd[f"{name}.bias"] = rng.normal(size=(o,)).astype(np.float32)
    return sd


def test_linear_weights_are_transposed_and_the_forward_is_pytorchs():
    sd = _torch_layout()
    m = VAE()
    keys = load_torch_state_dict(m, sd)
    assert keys.missing_keys == [] and keys.unexpected_keys == []
    np.testing.assert_array_equal(m.fc1.weight.numpy(), sd["fc1.weight"].T)
    x = np.random.default_rng(1).normal(size=(4, 6)).astype(np.float32)
    h = np.maximum(x @ sd["fc1.weight"].T + sd["fc1.bias"], 0)  # PyTorch's F.linear: x W^T + b
    mu, logvar = m(sv.tensor(x))
    np.testing.assert_allclose(mu.numpy(), h @ sd["fc21.weight"].T + sd["fc21.bias"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logvar.numpy(), h @ sd["fc22.weight"].T + sd["fc22.bias"], rtol=1e-5, atol=1e-6)


def test_torch_state_dict_round_trips():
    m = VAE()
    sd = torch_state_dict(m)
    assert list(sd) == [k for k, _ in m.named_parameters()]
    assert sd["fc4.weight"].shape == (6, 5) and sd["fc4.bias"].shape == (6,)
    other = VAE()
    load_torch_state_dict(other, sd)
    for (k, a), (_, b) in zip(m.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)
    sd["fc1.weight"][0, 0] += 1.0  # a copy: changing it leaves the model alone
    assert m.fc1.weight.numpy()[0, 0] != sd["fc1.weight"][0, 0]


def test_sequential_keys_and_non_linear_parameters_load_as_they_are():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4))
            self.scale = nn.Parameter(np.zeros((4, 3), np.float32))  # not a Linear weight: never transposed

    m = Scaled()
    rng = np.random.default_rng(0)
    sd = {"net.0.weight": rng.normal(size=(4, 3)), "net.0.bias": rng.normal(size=4),
          "net.2.weight": rng.normal(size=(4, 4)), "net.2.bias": rng.normal(size=4),
          "scale": rng.normal(size=(4, 3))}
    load_torch_state_dict(m, sd)
    np.testing.assert_allclose(m.net[0].weight.numpy(), sd["net.0.weight"].T, rtol=1e-6)
    np.testing.assert_allclose(m.net[2].weight.numpy(), sd["net.2.weight"].T, rtol=1e-6)  # square: still transposed
    np.testing.assert_allclose(m.scale.numpy(), sd["scale"], rtol=1e-6)
    assert str(m.net[0].weight.dtype) == "float32"  # converted to the parameter's dtype


class _FakeTorchTensor:
    """Quacks like a torch tensor that requires grad: .numpy() only after .detach().cpu()."""

    def __init__(self, a):
        self.a, self.detached = a, False

    def detach(self):
        out = _FakeTorchTensor(self.a)
        out.detached = True
        return out

    def cpu(self):
        return self

    def numpy(self):
        if not self.detached:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad")
        return self.a


class _ArrayLike:
    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


def test_values_may_be_tensors_of_other_libraries():
    sd = _torch_layout(2)
    wrapped = {k: (_FakeTorchTensor(v) if "weight" in k else _ArrayLike(v)) for k, v in sd.items()}
    m = VAE()
    load_torch_state_dict(m, wrapped)
    np.testing.assert_array_equal(m.fc3.weight.numpy(), sd["fc3.weight"].T)
    np.testing.assert_array_equal(m.fc3.bias.numpy(), sd["fc3.bias"])
    m2 = VAE()
    load_torch_state_dict(m2, {k: sv.tensor(v) for k, v in sd.items()})  # scratchvae Tensors too
    np.testing.assert_array_equal(m2.fc3.weight.numpy(), sd["fc3.weight"].T)


def test_errors_name_the_key_and_change_nothing():
    m = VAE()
    before = m.fc1.weight.numpy().copy()
    sd = _torch_layout()
    sd["fc1.weight"] = sd["fc1.weight"].T  # already (in, out)
    with pytest.raises(ValueError, match=r"'fc1.weight' has shape \(6, 5\), but PyTorch's nn.Linear\(6, 5\).weight "
                                         r"is \(5, 6\); it is already in scratchvae's \(in, out\) layout"):
        load_torch_state_dict(m, sd)
    sd = _torch_layout()
    sd["fc4.weight"] = np.zeros((7, 5))
    with pytest.raises(ValueError, match=r"'fc4.weight' has shape \(7, 5\)") as e:
        load_torch_state_dict(m, sd)
    assert "already" not in str(e.value)
    sd = _torch_layout()
    sd["fc3.bias"] = np.zeros(9)
    with pytest.raises(ValueError, match=r"'fc3.bias': state dict has \(9,\), the model has \(5,\)"):
        load_torch_state_dict(m, sd)
    sd = _torch_layout()
    del sd["fc22.bias"]
    sd["fc5.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"missing keys .*'fc22.bias'(.|\n)*unexpected keys .*'fc5.weight'"):
        load_torch_state_dict(m, sd)
    sd = _torch_layout()
    sd["fc1.bias"] = "zeros"
    with pytest.raises(TypeError, match=r"value of 'fc1.bias' is not numeric"):
        load_torch_state_dict(m, sd)
    with pytest.raises(TypeError, match="expected a dict of arrays"):
        load_torch_state_dict(m, [1, 2])
    with pytest.raises(TypeError, match="expected a Module"):
        load_torch_state_dict(sd, sd)
    np.testing.assert_array_equal(m.fc1.weight.numpy(), before)


def test_strict_false_loads_what_matches():
    m = VAE()
    sd = _torch_layout()
    del sd["fc4.weight"]
    sd["extra"] = np.zeros(3)
    keys = load_torch_state_dict(m, sd, strict=False)
    assert keys.missing_keys == ["fc4.weight"] and keys.unexpected_keys == ["extra"]
    np.testing.assert_array_equal(m.fc1.weight.numpy(), sd["fc1.weight"].T)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed (optional cross-check)")
def test_cross_check_against_torch():
    import torch

    torch.manual_seed(0)
    t = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    m = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    load_torch_state_dict(m, t.state_dict())
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    with torch.no_grad():
        want = t(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(m(sv.tensor(x)).numpy(), want, rtol=1e-5, atol=1e-6)
    back = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    back.load_state_dict({k: torch.from_numpy(v) for k, v in torch_state_dict(m).items()})
    with torch.no_grad():
        np.testing.assert_allclose(back(torch.from_numpy(x)).numpy(), want, rtol=1e-6)
