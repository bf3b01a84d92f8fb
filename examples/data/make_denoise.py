"""Writes denoise/noisy.npy and denoise/clean.npy: the digits of digits.csv (pixels scaled to
0..1) and the same digits with noise, for examples/unet_tiny.net (see README.md in this
folder). Deterministic: running it again writes the same bytes.

    python3 examples/data/make_denoise.py      # needs numpy

Noise: Gaussian with standard deviation 0.3 added to every pixel, then 10% of the pixels
(chosen at random) set to 0 or 1 at random (salt and pepper); values clipped to [0, 1].
Both arrays are float32 [1797, 1, 8, 8], in the order of digits.csv.
"""
import pathlib

import numpy as np

here = pathlib.Path(__file__).parent
rows = np.loadtxt(here / "digits.csv", delimiter=",", skiprows=1, dtype=np.float32)
clean = (rows[:, :64] / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)

rng = np.random.default_rng(31)
noisy = clean + rng.normal(0.0, 0.3, size=clean.shape).astype(np.float32)
salt = rng.random(clean.shape) < 0.1
noisy[salt] = rng.integers(0, 2, size=int(salt.sum())).astype(np.float32)
noisy = np.clip(noisy, 0.0, 1.0).astype(np.float32)

out = here / "denoise"
out.mkdir(exist_ok=True)
np.save(out / "noisy.npy", noisy)
np.save(out / "clean.npy", clean)
split = 1500
print(f"{len(clean)} images; mse of the noisy test images: {np.mean((noisy[split:] - clean[split:]) ** 2):.4f}")
