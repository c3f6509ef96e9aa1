"""The data layer: IDX reading, MNIST lookup/download/cache, the embedded subset, preprocessing, loader.

Downloads are tested for real against an HTTP server on 127.0.0.1 started by the test; no other
address is ever contacted (an autouse fixture empties the mirror list and the proxy settings).
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import scratchvae as sv
from scratchvae.data import embedded, mnist
from scratchvae.data import (
    DataFileError,
    DataLoader,
    DataNotFoundError,
    Preprocessing,
    dynamic_binarize,
    fixed_binarize,
    grey_levels,
    load_embedded,
    load_mnist,
    pixel_means,
    read_idx,
    read_idx_images,
    read_idx_labels,
    validation_split,
    write_idx,
)

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
needs_shared = pytest.mark.skipif(not (SHARED_MNIST / "t10k-images-idx3-ubyte.gz").is_file(),
                                  reason=f"the original MNIST files are not at {SHARED_MNIST}")
NAMES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """Cache under tmp_path, no default mirrors, no proxies: nothing leaves this machine or touches ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv(mnist.MIRRORS_ENV, "")
    for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")


def idx_bytes(type_code: int, shape, payload: bytes) -> bytes:
    """An IDX file built by hand from the format's definition (independent of write_idx)."""
    return bytes([0, 0, type_code, len(shape)]) + b"".join(s.to_bytes(4, "big") for s in shape) + payload


# ----------------------------------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_reads_hand_built_images_and_labels(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    img_bytes = idx_bytes(0x08, (3, 28, 28), images.tobytes())
    lab_bytes = idx_bytes(0x08, (3,), labels.tobytes())
    suffix = ".gz" if gz else ""
    pi, pl = tmp_path / f"img{suffix}", tmp_path / f"lab{suffix}"
    pi.write_bytes(gzip.compress(img_bytes) if gz else img_bytes)
    pl.write_bytes(gzip.compress(lab_bytes) if gz else lab_bytes)
    got_i, got_l = read_idx_images(pi), read_idx_labels(pl)
    assert got_i.dtype == np.uint8 and got_i.shape == (3, 28, 28)
    np.testing.assert_array_equal(got_i, images)
    np.testing.assert_array_equal(got_l, labels)


def test_idx_big_endian_types_and_write_roundtrip(tmp_path):
    a = np.array([[1, -2, 300], [-32768, 32767, 0]], dtype=np.int16)
    p = tmp_path / "a.idx"
    p.write_bytes(idx_bytes(0x0B, (2, 3), a.astype(">i2").tobytes()))
    np.testing.assert_array_equal(read_idx(p), a)
    for arr, name in [(np.linspace(-1, 1, 12).reshape(2, 2, 3), "f.idx.gz"),
                      (np.arange(5, dtype=np.int32) - 2, "i.idx"),
                      (np.zeros((0, 4), np.uint8), "empty.idx")]:
        write_idx(tmp_path / name, arr)
        back = read_idx(tmp_path / name)
        assert back.dtype == arr.dtype and back.shape == arr.shape
        np.testing.assert_array_equal(back, arr)
    # write_idx's gzip output is reproducible (no time stamp), like the embedded build needs.
    write_idx(tmp_path / "x1.gz", a)
    write_idx(tmp_path / "x2.gz", a)
    assert (tmp_path / "x1.gz").read_bytes() == (tmp_path / "x2.gz").read_bytes()


def test_idx_wrong_magic(tmp_path):
    labels = tmp_path / "labels.idx"
    labels.write_bytes(idx_bytes(0x08, (4,), bytes(4)))
    with pytest.raises(DataFileError, match=r"magic.*0x00000801.*expected 0x00000803") as e:
        read_idx_images(labels)
    assert str(labels) in str(e.value)
    junk = tmp_path / "junk.idx"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataFileError, match="not an IDX file"):
        read_idx(junk)
    unknown = tmp_path / "unknown.idx"
    unknown.write_bytes(idx_bytes(0x0A, (2,), bytes(2)))
    with pytest.raises(DataFileError, match="unknown IDX type code 0x0a"):
        read_idx(unknown)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
def test_idx_truncated_and_overlong(tmp_path, gz):
    full = idx_bytes(0x08, (2, 28, 28), bytes(range(256)) * 6 + bytes(2 * 784 - 1536))
    wrap = gzip.compress if gz else (lambda b: b)
    cases = {
        "payload": (full[:-10], "truncated"),
        "header": (full[:9], "ends inside the header"),
        "magic": (full[:2], "before the 4-byte IDX magic"),
        "empty": (b"", "before the 4-byte IDX magic"),
        "trailing": (full + b"\x00", "longer than its header says"),
    }
    for name, (data, message) in cases.items():
        p = tmp_path / (name + (".gz" if gz else ""))
        p.write_bytes(wrap(data))
        with pytest.raises(DataFileError, match=message) as e:
            read_idx(p)
        assert str(p) in str(e.value), name


def test_idx_bad_gzip(tmp_path):
    raw = idx_bytes(0x08, (2, 28, 28), np.random.default_rng(1).integers(0, 256, 2 * 784, dtype=np.uint8).tobytes())
    good = gzip.compress(raw)
    # A .gz name on uncompressed content.
    p = tmp_path / "a.gz"
    p.write_bytes(raw)
    with pytest.raises(DataFileError, match="not gzip data"):
        read_idx(p)
    # The compressed stream cut short.
    p = tmp_path / "cut.gz"
    p.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataFileError, match="gzip stream is truncated"):
        read_idx(p)
    # Bytes flipped inside the deflate data: a zlib error or a CRC mismatch, never wrong pixels.
    bad = bytearray(good)
    for i in range(30, len(bad) - 20, 7):
        bad[i] ^= 0xFF
    p = tmp_path / "flipped.gz"
    p.write_bytes(bytes(bad))
    with pytest.raises(DataFileError, match="gzip stream") as e:
        read_idx(p)
    assert str(p) in str(e.value)


def test_idx_absurd_header_size_does_not_allocate(tmp_path):
    p = tmp_path / "huge.idx"
    p.write_bytes(idx_bytes(0x0E, (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF), bytes(16)))
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(p)


# ------------------------------------------------------------------------------- embedded subset


def test_embedded_subset_shapes_dtype_checksum():
    for split, n in [("train", 10_000), ("test", 2_000)]:
        x, y = load_embedded(split)
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.uint8
        assert set(np.unique(y)) == set(range(10))
        assert 0 < x.mean() < 60 and x.max() == 255 and x.min() == 0
        assert load_embedded(split, flatten=True)[0].shape == (n, 784)
    # First labels of the original files (from their published description).
    assert load_embedded("train")[1][:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert load_embedded("test")[1][:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    path = Path(embedded.__file__).with_name(embedded.FILENAME)
    assert path.stat().st_size < 4_000_000
    assert hashlib.sha256(path.read_bytes()).hexdigest() == embedded.FILE_SHA256
    with np.load(path) as z:
        recomputed = hashlib.sha256()
        for key in sorted(z.files):
            a = z[key]
            recomputed.update(f"{key}|{a.dtype.str}|{a.shape}\n".encode() + a.tobytes())
    assert recomputed.hexdigest() == embedded.CONTENT_SHA256
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_embedded("validation")


def test_embedded_checksum_is_enforced(monkeypatch, tmp_path):
    monkeypatch.setattr(embedded, "CONTENT_SHA256", "0" * 64)
    with pytest.raises(DataFileError, match="damaged or was replaced"):
        load_embedded("test")
    monkeypatch.undo()
    monkeypatch.setattr(embedded, "FILENAME", "no_such_file.npz")
    with pytest.raises(DataFileError, match="missing from the installed package"):
        load_embedded("test")


@needs_shared
def test_embedded_subset_matches_original_files():
    for split, prefix, n in [("train", "train", 10_000), ("test", "t10k", 2_000)]:
        x, y = load_embedded(split)
        full_x = read_idx_images(SHARED_MNIST / f"{prefix}-images-idx3-ubyte.gz")
        full_y = read_idx_labels(SHARED_MNIST / f"{prefix}-labels-idx1-ubyte.gz")
        np.testing.assert_array_equal(x, full_x[:n])
        np.testing.assert_array_equal(y, full_y[:n])


@needs_shared
def test_embedded_build_is_reproducible(tmp_path):
    out = tmp_path / "subset.npz"
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "build_embedded_mnist.py"), str(SHARED_MNIST),
                        "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes() == Path(embedded.__file__).with_name(embedded.FILENAME).read_bytes()


def test_package_does_not_reference_shared_folder():
    for f in (REPO / "scratchvae" / "data").glob("*.py"):
        text = f.read_text()
        assert "shared/" not in text and "shared\\" not in text, f


# ---------------------------------------------------------------------------------- preprocessing


def test_grey_levels():
    x = np.array([[0, 51, 255]], dtype=np.uint8)
    g = grey_levels(x, dtype="float64")
    assert g.dtype == np.float64
    np.testing.assert_allclose(g, [[0.0, 0.2, 1.0]], rtol=0, atol=1e-15)
    assert grey_levels(x).dtype == np.float32
    np.testing.assert_array_equal(grey_levels(g), g.astype(np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        grey_levels(np.array([0.5, 1.5]))
    with pytest.raises(TypeError, match="uint8"):
        grey_levels(np.array([1, 2], dtype=np.int64))


def test_dynamic_binarization_fresh_each_call_and_unbiased():
    pixel = 77  # p = 77/255 ~ 0.302
    x = np.full((200, 784), pixel, dtype=np.uint8)
    rng = np.random.default_rng(3)
    a, b = dynamic_binarize(x, rng), dynamic_binarize(x, rng)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert set(np.unique(a)) == {0.0, 1.0}
    assert (a != b).mean() > 0.3  # two independent draws disagree on ~2p(1-p) = 42% of pixels
    p, n = pixel / 255, a.size
    for draw in (a, b):
        assert abs(draw.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    # p = 0 never fires, p = 1 always does.
    edge = np.array([[0, 255] * 500], dtype=np.uint8)
    e = dynamic_binarize(edge, rng, dtype="float64")
    assert e.dtype == np.float64
    np.testing.assert_array_equal(e, edge / 255)
    # The same seed through a scratchvae Generator reproduces the draw; another seed does not.
    np.testing.assert_array_equal(dynamic_binarize(x, sv.Generator(5)), dynamic_binarize(x, sv.Generator(5)))
    assert not np.array_equal(dynamic_binarize(x, sv.Generator(5)), dynamic_binarize(x, sv.Generator(6)))
    # Without a generator it follows sv.manual_seed.
    sv.manual_seed(11)
    c = dynamic_binarize(x)
    sv.manual_seed(11)
    np.testing.assert_array_equal(c, dynamic_binarize(x))


def test_dynamic_binarization_mean_matches_real_images():
    x, _ = load_embedded("test")
    draws = np.stack([dynamic_binarize(x[:500], np.random.default_rng(s)) for s in range(4)])
    p = x[:500] / 255.0
    sd = np.sqrt((p * (1 - p)).sum()) / p.size / 2  # sd of the mean of 4 draws
    assert abs(draws.mean() - p.mean()) < 5 * sd


def test_fixed_binarization_reproducible():
    x, _ = load_embedded("test")
    x = x[:300]
    f1, f2 = fixed_binarize(x, seed=1), fixed_binarize(x, seed=1)
    np.testing.assert_array_equal(f1, f2)
    assert not np.array_equal(f1, fixed_binarize(x, seed=2))
    p = x / 255.0
    assert abs(f1.mean() - p.mean()) < 5 * np.sqrt((p * (1 - p)).sum()) / p.size
    # Large inputs are drawn in chunks; the result must not depend on the chunking.
    big = np.tile(x.reshape(300, -1), (8, 1))  # 2400 x 784 > one chunk
    np.testing.assert_array_equal(fixed_binarize(big, 4),
                                  (np.random.default_rng(4).random(big.shape) < big / 255.0).astype(np.float32))


def test_preprocessing_modes():
    x, _ = load_embedded("test")
    x = x[:64].reshape(64, -1)
    rng = np.random.default_rng(0)
    dyn = Preprocessing("dynamic", dtype="float64")
    stored = dyn.prepare(x)
    np.testing.assert_allclose(stored, x / 255.0)
    b1, b2 = dyn.batch(stored[:32], rng), dyn.batch(stored[:32], rng)
    assert b1.dtype == np.float64 and set(np.unique(b1)) <= {0.0, 1.0} and not np.array_equal(b1, b2)
    fixed = Preprocessing("fixed", seed=3)
    np.testing.assert_array_equal(fixed.prepare(x), fixed.prepare(x))
    np.testing.assert_array_equal(fixed.batch(fixed.prepare(x)[:8], rng), fixed.prepare(x)[:8])
    grey = Preprocessing("grey")
    np.testing.assert_array_equal(grey.batch(grey.prepare(x), rng), grey_levels(x))
    with pytest.raises(ValueError, match="unknown preprocessing"):
        Preprocessing("binary")


def test_pixel_means():
    x = np.array([[0, 255], [255, 255]], dtype=np.uint8)
    np.testing.assert_allclose(pixel_means(x), [0.5, 1.0])


# --------------------------------------------------------------------------- MNIST: lookup, download


def fake_mnist(n_train=6, n_test=4, seed=0):
    """Small, valid MNIST-shaped .gz files as bytes, plus the arrays they hold."""
    rng = np.random.default_rng(seed)
    arrays, blobs = {}, {}
    for prefix, n in [("train", n_train), ("t10k", n_test)]:
        imgs = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labs = rng.integers(0, 10, size=n, dtype=np.uint8)
        arrays[f"{prefix}-images-idx3-ubyte.gz"] = imgs
        arrays[f"{prefix}-labels-idx1-ubyte.gz"] = labs
        blobs[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(0x08, imgs.shape, imgs.tobytes()), mtime=0)
        blobs[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(0x08, labs.shape, labs.tobytes()), mtime=0)
    return arrays, blobs


@pytest.fixture
def fake(monkeypatch):
    """Fake files whose sha256 replace the published ones for the duration of a test."""
    arrays, blobs = fake_mnist()
    for name, blob in blobs.items():
        monkeypatch.setitem(mnist.SHA256, name, hashlib.sha256(blob).hexdigest())
        monkeypatch.setitem(mnist.SHA256_RAW, name[:-3], hashlib.sha256(gzip.decompress(blob)).hexdigest())
    return arrays, blobs


class LocalMirror:
    """An HTTP server on 127.0.0.1 in a thread, serving ``routes[path] = bytes``; records each request."""

    def __init__(self):
        self.routes: dict[str, bytes] = {}
        self.cut: set[str] = set()  # paths whose body is cut short of its Content-Length
        self.hits: list[str] = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.hits.append(self.path)
                body = mirror.routes.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in mirror.cut else body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{prefix}/"

    def serve(self, prefix: str, files: dict[str, bytes]):
        for name, blob in files.items():
            self.routes[f"/{prefix}/{name}"] = blob
        return self.url(prefix)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = LocalMirror()
    try:
        yield s
    finally:
        s.close()


def cache_files():
    d = mnist.cache_dir()
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_cache_dir_and_mirrors_env(tmp_path, monkeypatch):
    assert mnist.cache_dir() == tmp_path / "xdg-cache" / "scratchvae" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert mnist.cache_dir() == tmp_path / "home" / ".cache" / "scratchvae" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert mnist.cache_dir() == tmp_path / "home" / ".cache" / "scratchvae" / "mnist"
    monkeypatch.setenv(mnist.MIRRORS_ENV, " http://a/x/ ,, http://b ")
    assert mnist.mirrors() == ["http://a/x/", "http://b"]
    monkeypatch.setenv(mnist.MIRRORS_ENV, "")
    assert mnist.mirrors() == []
    monkeypatch.delenv(mnist.MIRRORS_ENV)
    assert mnist.mirrors() == list(mnist.DEFAULT_MIRRORS)


def test_download_verify_and_cache(server, fake, monkeypatch):
    arrays, blobs = fake
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("good", blobs))
    assert not mnist.mnist_available("train")
    x, y = load_mnist("train", timeout=5, quiet=True)
    np.testing.assert_array_equal(x, arrays["train-images-idx3-ubyte.gz"])
    np.testing.assert_array_equal(y, arrays["train-labels-idx1-ubyte.gz"])
    assert server.hits == ["/good/train-images-idx3-ubyte.gz", "/good/train-labels-idx1-ubyte.gz"]
    assert cache_files() == ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"]
    assert (mnist.cache_dir() / "train-images-idx3-ubyte.gz").read_bytes() == blobs["train-images-idx3-ubyte.gz"]
    assert mnist.mnist_available("train") and not mnist.mnist_available("test")
    # Second load: from the cache, the server is not asked again.
    x2, _ = load_mnist("train", timeout=5, quiet=True, flatten=True)
    assert len(server.hits) == 2
    np.testing.assert_array_equal(x2, x.reshape(len(x), 784))
    # And with downloading switched off it still works from the cache.
    load_mnist("train", download=False)
    assert len(server.hits) == 2


def test_download_falls_back_to_next_mirror(server, fake, monkeypatch, capsys):
    arrays, blobs = fake
    good = server.serve("good", blobs)
    monkeypatch.setenv(mnist.MIRRORS_ENV, f"{server.url('missing')},{good}")
    x, y = load_mnist("test", timeout=5)
    np.testing.assert_array_equal(y, arrays["t10k-labels-idx1-ubyte.gz"])
    assert server.hits[:2] == ["/missing/t10k-images-idx3-ubyte.gz", "/good/t10k-images-idx3-ubyte.gz"]
    err = capsys.readouterr().err
    assert "downloading t10k-images-idx3-ubyte.gz from the mirror http://127.0.0.1" in err
    assert "B/s" in err  # the bar of bytes received


def test_corrupted_download_leaves_nothing(server, fake, monkeypatch):
    arrays, blobs = fake
    wrong = {name: blob[:-8] + b"\x00" * 8 for name, blob in blobs.items()}  # same size, wrong bytes
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("bad", wrong))
    with pytest.raises(DataNotFoundError) as e:
        load_mnist("train", timeout=5, quiet=True)
    msg = str(e.value)
    assert "sha256 mismatch" in msg and "/bad/train-images-idx3-ubyte.gz" in msg
    assert "--data-dir" in msg and str(mnist.cache_dir()) in msg
    assert cache_files() == []  # no partial file, no temporary file


def test_cut_connection_leaves_nothing(server, fake, monkeypatch):
    _, blobs = fake
    url = server.serve("cut", blobs)
    server.cut.update(f"/cut/{n}" for n in blobs)
    monkeypatch.setenv(mnist.MIRRORS_ENV, url)
    with pytest.raises(DataNotFoundError, match=r"connection closed after \d+ of \d+ bytes"):
        load_mnist("test", timeout=5, quiet=True)
    assert cache_files() == []


def test_good_cached_file_never_replaced_by_bad_download(server, fake, monkeypatch):
    arrays, blobs = fake
    name = "t10k-images-idx3-ubyte.gz"
    wrong = {n: b[:-8] + b"\x00" * 8 for n, b in blobs.items()}
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("good", blobs))
    load_mnist("test", timeout=5, quiet=True)
    good_bytes = (mnist.cache_dir() / name).read_bytes()
    # Loading with a bad mirror configured uses the cache and never asks the mirror.
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("bad", wrong))
    hits = len(server.hits)
    x, _ = load_mnist("test", timeout=5, quiet=True)
    np.testing.assert_array_equal(x, arrays[name])
    assert len(server.hits) == hits
    # A forced download over the good file from the bad mirror: refused, good file intact, no temp file.
    with pytest.raises(ValueError, match="sha256 mismatch"):
        mnist._fetch_atomic(server.url("bad") + name, mnist.cache_dir() / name, mnist.SHA256[name], timeout=5)
    assert (mnist.cache_dir() / name).read_bytes() == good_bytes
    assert cache_files() == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


def test_damaged_cache_file_is_downloaded_again(server, fake, monkeypatch):
    arrays, blobs = fake
    name = "t10k-labels-idx1-ubyte.gz"
    cache = mnist.cache_dir()
    cache.mkdir(parents=True)
    for n in ("t10k-images-idx3-ubyte.gz", name):
        (cache / n).write_bytes(blobs[n])
    (cache / name).write_bytes(b"garbage")
    # Offline: the damaged file is reported, by name, with what to do.
    with pytest.raises(DataFileError, match=r"t10k-labels-idx1-ubyte.gz: sha256 .* Delete it"):
        load_mnist("test", download=False)
    # With a good mirror: a warning, then a verified replacement.
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("good", blobs))
    with pytest.warns(UserWarning, match="Downloading it again"):
        _, y = load_mnist("test", timeout=5, quiet=True)
    np.testing.assert_array_equal(y, arrays[name])
    assert (cache / name).read_bytes() == blobs[name]
    assert server.hits == [f"/good/{name}"]


def test_offline_with_nothing_cached_says_where_to_put_files(monkeypatch):
    for kwargs in ({"download": False}, {}):  # download off, or no mirror configured (autouse: empty list)
        with pytest.raises(DataNotFoundError) as e:
            load_mnist("train", **kwargs)
        msg = str(e.value)
        for name in NAMES:
            assert name in msg
        assert str(mnist.cache_dir()) in msg and "--data-dir" in msg and mnist.MIRRORS_ENV in msg
    assert not mnist.cache_dir().exists() or cache_files() == []
    with pytest.raises(ValueError, match="unknown MNIST split"):
        load_mnist("valid")


def test_data_dir_override(server, fake, tmp_path, monkeypatch):
    arrays, blobs = fake
    d = tmp_path / "mydata"
    d.mkdir()
    # Uncompressed files are accepted too (the names without .gz).
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (d / name[:-3]).write_bytes(gzip.decompress(blobs[name]))
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("good", blobs))
    x, y = load_mnist("test", data_dir=d)
    np.testing.assert_array_equal(x, arrays["t10k-images-idx3-ubyte.gz"])
    assert server.hits == [] and cache_files() == []
    assert mnist.mnist_available("test", data_dir=d) and not mnist.mnist_available("train", data_dir=d)
    # An explicit folder without the files is an error, not a silent download.
    with pytest.raises(DataNotFoundError, match=r"train-images-idx3-ubyte.gz .* not in the data folder"):
        load_mnist("train", data_dir=d)
    assert server.hits == []
    # A .gz in data_dir that is not the published file: refused unless verify=False.
    other_arrays, other_blobs = fake_mnist(seed=9)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        (d / name).write_bytes(other_blobs[name])
    with pytest.raises(DataFileError, match=r"verify=False \(Python\) or pass --no-verify \(scratchvae train, evaluate, plot\)"):
        load_mnist("train", data_dir=d)
    x, _ = load_mnist("train", data_dir=d, verify=False)
    np.testing.assert_array_equal(x, other_arrays["train-images-idx3-ubyte.gz"])


def test_mismatched_image_and_label_files(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    write_idx(d / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(DataFileError, match="does not match the published MNIST file"):
        load_mnist("test", data_dir=d)  # uncompressed files are checked against their sha256 too
    with pytest.raises(DataFileError, match="5 images but .* 4 labels"):
        load_mnist("test", data_dir=d, verify=False)
    write_idx(d / "t10k-images-idx3-ubyte", np.zeros((4, 16, 16), np.uint8))
    with pytest.raises(DataFileError, match="28 x 28"):
        load_mnist("test", data_dir=d, verify=False)


@needs_shared
def test_download_of_the_real_test_files(server, monkeypatch):
    blobs = {n: (SHARED_MNIST / n).read_bytes() for n in NAMES[2:]}
    monkeypatch.setenv(mnist.MIRRORS_ENV, server.serve("real", blobs))
    x, y = load_mnist("test", timeout=10, quiet=True)  # checked against the published sha256
    assert x.shape == (10_000, 28, 28) and y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(x.mean() - 33.791) < 1e-3
    np.testing.assert_array_equal(load_embedded("test")[0], x[:2000])


# ----------------------------------------------------------------------------------------- loader


def test_loader_deterministic_and_covers_every_example():
    a, b = DataLoader(103, 10, seed=7), DataLoader(103, 10, seed=7)
    assert len(a) == 11
    e0 = list(a)
    assert a.epoch == 1 and a.position == 0
    assert all(np.array_equal(u, v) for u, v in zip(e0, b))
    assert [len(i) for i in e0] == [10] * 10 + [3]
    np.testing.assert_array_equal(np.sort(np.concatenate(e0)), np.arange(103))
    e1 = np.concatenate(list(a))
    assert not np.array_equal(np.concatenate(e0), e1)  # a new order each epoch
    np.testing.assert_array_equal(np.sort(e1), np.arange(103))
    other = np.concatenate(list(DataLoader(103, 10, seed=8)))
    assert not np.array_equal(np.concatenate(e0), other)
    # drop_last and no shuffling.
    d = DataLoader(103, 10, drop_last=True, shuffle=False)
    batches = list(d)
    assert len(d) == len(batches) == 10
    np.testing.assert_array_equal(np.concatenate(batches), np.arange(100))


def test_loader_yields_arrays():
    x = np.arange(20).reshape(10, 2)
    y = np.arange(10) * 10
    for (bx, by), idx in zip(DataLoader((x, y), 4, seed=1), DataLoader(10, 4, seed=1)):
        np.testing.assert_array_equal(bx, x[idx])
        np.testing.assert_array_equal(by, y[idx])
    single = list(DataLoader(x, 4, seed=1))
    assert isinstance(single[0], np.ndarray) and single[0].shape == (4, 2)
    with pytest.raises(ValueError, match="same length"):
        DataLoader((x, y[:5]), 4)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(10, 0)


def test_loader_resume_reproduces_order():
    full = DataLoader(50, 8, seed=3)
    reference = [b for _ in range(3) for b in full]  # three uninterrupted epochs
    first = DataLoader(50, 8, seed=3)
    seen = []
    for _ in range(1):
        seen += list(first)
    for i, b in enumerate(first):  # interrupted after 3 batches of epoch 1
        seen.append(b)
        if i == 2:
            break
    state = first.state_dict()
    assert state["epoch"] == 1 and state["position"] == 3
    resumed = DataLoader(50, 8, seed=999)  # the seed comes from the state
    resumed.load_state_dict(state)
    seen += list(resumed) + list(resumed)
    assert len(seen) == len(reference)
    assert all(np.array_equal(u, v) for u, v in zip(seen, reference))
    with pytest.raises(ValueError, match="batch_size=8"):
        DataLoader(50, 16).load_state_dict(state)


def test_loader_seed_none_follows_manual_seed():
    sv.manual_seed(4)
    a = np.concatenate(list(DataLoader(30, 7, seed=None)))
    sv.manual_seed(4)
    b = np.concatenate(list(DataLoader(30, 7, seed=None)))
    np.testing.assert_array_equal(a, b)


def test_validation_split():
    tr, va = validation_split(60_000, 10_000)
    np.testing.assert_array_equal(va, np.arange(50_000, 60_000))
    assert len(tr) == 50_000
    tr, va = validation_split(100, 20, seed=0)
    assert len(va) == 20 and len(np.intersect1d(tr, va)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([tr, va])), np.arange(100))
    np.testing.assert_array_equal(va, validation_split(100, 20, seed=0)[1])
    with pytest.raises(ValueError):
        validation_split(10, 11)


def test_part_files_of_dead_downloads_are_removed_from_the_cache(tmp_path):
    """A download killed with kill -9 leaves .NAME.PID.XXXX.part; the next load removes those of dead PIDs."""
    import os

    cache = mnist.cache_dir()
    cache.mkdir(parents=True)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    dead = cache / f".train-images-idx3-ubyte.gz.{p.pid}.k2j_x9ab.part"
    alive = cache / f".train-images-idx3-ubyte.gz.{os.getppid()}.k2j_x9ab.part"
    mine = cache / "notes.part"  # not named like ours: left alone
    for f in (dead, alive, mine):
        f.write_bytes(b"partial")
    with pytest.raises(DataNotFoundError):
        load_mnist("train", download=False)
    assert not dead.exists() and alive.exists() and mine.exists()


def test_downloads_name_their_temporary_with_the_pid(monkeypatch, tmp_path):
    import os

    seen = []
    real = mnist.tempfile.mkstemp

    def spy(**kw):
        seen.append(kw["prefix"])
        return real(**kw)

    monkeypatch.setattr(mnist.tempfile, "mkstemp", spy)
    with pytest.raises(Exception):
        mnist._fetch_atomic("http://127.0.0.1:9/none", tmp_path / "f.gz", None, timeout=0.5)
    assert seen == [f".f.gz.{os.getpid()}."] and list(tmp_path.iterdir()) == []


@needs_shared
def test_uncompressed_real_files_pass_their_sha256(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    for name in mnist.FILES["test"]:
        (d / name[:-3]).write_bytes(gzip.decompress((SHARED_MNIST / name).read_bytes()))
    x, y = load_mnist("test", data_dir=d)  # verified against SHA256_RAW
    assert x.shape == (10_000, 28, 28) and y[:5].tolist() == [7, 2, 1, 0, 4]
    raw = d / "t10k-labels-idx1-ubyte"
    raw.write_bytes(raw.read_bytes()[:-1] + b"\x00")  # one label changed: still a valid IDX file
    with pytest.raises(DataFileError, match="does not match the published MNIST file"):
        load_mnist("test", data_dir=d)
