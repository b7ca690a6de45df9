"""Write ``nbfl/data/digits.npz``: the 8x8 digits the built-in trainer and the demo use.

The data are scikit-learn's ``sklearn.datasets.load_digits()``: the test set of the
UCI "Optical Recognition of Handwritten Digits" data (optdigits; Alpaydin and Kaynak,
1998, CC BY 4.0), 1,797 images of 8x8 pixels, each pixel a count from 0 to 16, and
their labels 0..9. nbfl ships them as uint8 (some 45 kB compressed), so a participant's
small install needs no scikit-learn; :func:`nbfl.data.load_digits_split` reads the file.
Run once, with scikit-learn installed, from the repository root:

    python scripts/make_digits.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits

OUT = Path(__file__).resolve().parent.parent / "nbfl" / "data" / "digits.npz"


def main() -> None:
    digits = load_digits()
    data, target = digits.data, digits.target
    # every value is a whole count in 0..16 (labels 0..9): uint8 holds them exactly
    assert np.array_equal(data, np.round(data)) and data.min() >= 0 and data.max() <= 16
    np.savez_compressed(OUT, data=data.astype(np.uint8), target=target.astype(np.uint8))
    print(f"wrote {OUT}: {data.shape[0]} images, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
