#!/usr/bin/env python3
"""Build the MNIST subset shipped inside the package: ``scratchvae/data/mnist_subset.npz``.

    python scripts/build_embedded_mnist.py ../shared/data/mnist

Takes the first 10,000 training and the first 2,000 test images and labels (uint8, original order)
from the four original MNIST ``.gz`` files in the given folder, checks the files against their
published sha256, and writes them as an ``.npz`` whose bytes do not depend on when it was built:
entries in sorted order, fixed zip time stamps, deflate level 9.  It then checks the result against
the checksums recorded in ``scratchvae/data/embedded.py`` and prints them if they differ.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scratchvae.data import embedded  # noqa: E402
from scratchvae.data.idx import read_idx_images, read_idx_labels  # noqa: E402
from scratchvae.data.mnist import FILES, SHA256, sha256_file  # noqa: E402

SIZES = {"train": 10_000, "test": 2_000}


def subset_arrays(folder: Path) -> dict[str, np.ndarray]:
    arrays = {}
    for split, n in SIZES.items():
        for kind, name, read in zip(("images", "labels"), FILES[split], (read_idx_images, read_idx_labels)):
            path = folder / name
            got = sha256_file(path)
            if got != SHA256[name]:
                sys.exit(f"{path}: sha256 {got} is not that of the original MNIST file ({SHA256[name]}).")
            arrays[f"{split}_{kind}"] = np.ascontiguousarray(read(path)[:n], dtype=np.uint8)
    return arrays


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An .npz (readable by ``np.load``) with no time stamps or other build-dependent bytes."""
    tmp = path.with_suffix(".npz.part")
    with zipfile.ZipFile(tmp, "w") as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arrays[key], allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    tmp.replace(path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mnist_dir", type=Path, help="folder with the four original MNIST .gz files")
    ap.add_argument("--out", type=Path, default=ROOT / "scratchvae" / "data" / embedded.FILENAME,
                    help="where to write the subset (default: inside the package)")
    args = ap.parse_args(argv)

    arrays = subset_arrays(args.mnist_dir)
    write_npz(args.out, arrays)
    file_sha = hashlib.sha256(args.out.read_bytes()).hexdigest()
    content_sha = embedded.content_sha256(arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    print(f"  file sha256:    {file_sha}")
    print(f"  content sha256: {content_sha}")
    ok = True
    if content_sha != embedded.CONTENT_SHA256:
        print(f"content differs from embedded.CONTENT_SHA256 ({embedded.CONTENT_SHA256}): update it.")
        ok = False
    if file_sha != embedded.FILE_SHA256:
        # Same content, different bytes: another zlib version compresses differently.
        print(f"file bytes differ from embedded.FILE_SHA256 ({embedded.FILE_SHA256}): update it.")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
