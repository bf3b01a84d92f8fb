"""Writes sorted_tokens.npy and sorted_labels.npy: the "is this sequence sorted?" data set of
examples/transformer.net (see README.md in this folder). Deterministic: running it again
writes the same bytes.

    python3 examples/data/make_sorted.py      # needs numpy

Each sample is 8 digits (token ids 0..9); the label is 1 when they are in non-decreasing
order. Half the samples are sorted (8 digits drawn at random, then sorted). The other half
are not, and most of those are hard: a sorted sequence with two neighbouring digits swapped
(one inversion, somewhere in the middle of an otherwise ordered run), or with one digit
replaced by a random one that breaks the order; the rest are random digits (almost never
sorted). A model must compare neighbours at every position to tell them apart, which a bag
of tokens cannot do: the positions matter.
"""
import pathlib

import numpy as np

SAMPLES, LENGTH, DIGITS = 4000, 8, 10

rng = np.random.default_rng(17)


def is_sorted(s):
    return bool(np.all(s[:-1] <= s[1:]))


tokens = np.zeros((SAMPLES, LENGTH), dtype=np.uint8)
labels = np.zeros(SAMPLES, dtype=np.uint8)
for i in range(SAMPLES):
    s = np.sort(rng.integers(0, DIGITS, size=LENGTH))
    if i % 2 == 1:
        kind = rng.random()
        while is_sorted(s):
            if kind < 0.4:
                # swap two neighbours (different digits, or it stays sorted)
                j = rng.integers(0, LENGTH - 1)
                s[j], s[j + 1] = s[j + 1], s[j]
            elif kind < 0.8:
                s[rng.integers(0, LENGTH)] = rng.integers(0, DIGITS)
            else:
                s = rng.integers(0, DIGITS, size=LENGTH)
    tokens[i] = s
    labels[i] = is_sorted(s)

here = pathlib.Path(__file__).parent
np.save(here / "sorted_tokens.npy", tokens)
np.save(here / "sorted_labels.npy", labels)
print(f"{SAMPLES} sequences, {labels.mean():.3f} sorted")
