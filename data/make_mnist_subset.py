"""Write ``data/mnist-subset.npz``: the MNIST images that the docs' MNIST page and the quick benchmark use.

The selection is the one the documentation page used on the full arrays before the subset was
shipped: 5,000 training images drawn by ``numpy.random.default_rng(0).permutation`` and the first
1,000 test images. The arrays keep MNIST's own format (``uint8`` images of 28x28, ``uint8``
labels) and names, so :func:`alibi_countergan.datasets.load_mnist` reads the subset like the
full file. The output is deterministic: the same source gives the same file, byte for byte.

Run from the repository's root::

    python data/make_mnist_subset.py path/to/mnist.npz

where ``mnist.npz`` is the standard file (``tf.keras.datasets.mnist.load_data()`` caches it in
``~/.keras/datasets/mnist.npz``).
"""

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

N_TRAIN = 5000
N_TEST = 1000
OUT = Path(__file__).resolve().parent / "mnist-subset.npz"


def subset(source: Path) -> dict:
    """The subset's arrays, selected from the full MNIST file at ``source``."""
    with np.load(source) as d:
        x_train, y_train, x_test, y_test = (d[k] for k in ("x_train", "y_train", "x_test", "y_test"))
    if x_train.shape != (60000, 28, 28) or x_test.shape != (10000, 28, 28):
        raise ValueError(f"{source} is not the standard MNIST file: shapes {x_train.shape} and {x_test.shape}.")
    train = np.random.default_rng(0).permutation(len(x_train))[:N_TRAIN]
    return {"x_train": x_train[train], "y_train": y_train[train], "x_test": x_test[:N_TEST],
            "y_test": y_test[:N_TEST]}


def write(arrays: dict, out: Path) -> None:
    """A compressed ``.npz`` with fixed timestamps (``np.savez_compressed`` stamps the current time)."""
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, array in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue(), compresslevel=9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the full MNIST file (mnist.npz)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    write(subset(args.source), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
