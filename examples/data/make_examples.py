"""Writes the NPY files of examples/regression.net and examples/tagging.net (seeded, so the
files in the repository are exactly what this script writes):

    /work/main/bench/.venv/bin/python examples/data/make_examples.py

regression/: x [1024, 4] uniform in [-1, 1); y [1024, 1] = sin(pi x0) x1 + 0.5 x2^2 - x3 plus
Gaussian noise of std 0.05 (so the best possible mse is 0.0025).

tagging/: tokens [2048, 8] of ids 1..5, padded with 0 after a random length of 4..8; tags
[2048, 8] with tag[t] = (tok[t] + tok[t-1]) mod 3 (tok[-1] = 0) and 0 at padding; mask
[2048, 8] = 1 at real tokens, 0 at padding.
"""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(18)

out = os.path.join(here, "regression")
os.makedirs(out, exist_ok=True)
x = rng.uniform(-1.0, 1.0, size=(1024, 4)).astype(np.float32)
y = np.sin(np.pi * x[:, 0]) * x[:, 1] + 0.5 * x[:, 2] ** 2 - x[:, 3]
y = (y + rng.normal(0.0, 0.05, size=1024)).astype(np.float32)[:, None]
np.save(os.path.join(out, "x.npy"), x)
np.save(os.path.join(out, "y.npy"), y)

out = os.path.join(here, "tagging")
os.makedirs(out, exist_ok=True)
n, t = 2048, 8
lengths = rng.integers(4, t + 1, size=n)
tokens = rng.integers(1, 6, size=(n, t))
mask = (np.arange(t)[None, :] < lengths[:, None]).astype(np.float32)
tokens = (tokens * mask).astype(np.int64)
previous = np.concatenate([np.zeros((n, 1), dtype=np.int64), tokens[:, :-1]], axis=1)
tags = ((tokens + previous) % 3 * mask).astype(np.int64)
np.save(os.path.join(out, "tokens.npy"), tokens.astype(np.uint8))
np.save(os.path.join(out, "tags.npy"), tags.astype(np.uint8))
np.save(os.path.join(out, "mask.npy"), mask.astype(np.uint8))
