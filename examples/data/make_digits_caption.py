"""Writes the caption data of examples/digits_caption.net from examples/data/digits.csv, and
prints the eval block of the example (its test images and their names):

    /work/main/bench/.venv/bin/python examples/data/make_digits_caption.py

digits_caption/, one row per row of digits.csv (the same order, so the example reads the
images from digits.csv itself and `split: 1500` gives the train and test images of
examples/digits_cnn.net):
- prev.npy [1797, 6] uint8: the decoder's input, the start mark `^` and the digit's name,
  padded with `.` ("^seven", "^one..");
- next.npy [1797, 6] uint8: the characters to predict, one position later ("seven.", "one...").
Ids index ALPHABET = ".^efghinorstuvwxz" (`.` ends a name).

dream/start.npy [1, 64] float32: the first test image (row 1500, a 1) divided by 16, where
examples/dream.net starts.
"""
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "digits_caption")
NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ALPHABET = "." + "^" + "".join(sorted(set("".join(NAMES))))
T = 6
SHOWN = 50  # test images in the example's eval block

table = np.loadtxt(os.path.join(here, "digits.csv"), delimiter=",", skiprows=1)
pixels, labels = table[:, :64], table[:, 64].astype(int)


def ids(text):
    return [ALPHABET.index(c) for c in text]


prev = np.array([ids(("^" + NAMES[y]).ljust(T, ".")) for y in labels], dtype=np.uint8)
nxt = np.array([ids(NAMES[y].ljust(T, ".")) for y in labels], dtype=np.uint8)
os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "prev.npy"), prev)
np.save(os.path.join(out, "next.npy"), nxt)

# The eval block: the first SHOWN test images (rows 1500...) as 0..16 pixel counts.
rows = range(1500, 1500 + SHOWN)
print(f"# ALPHABET {ALPHABET!r}, names of the shown images: {' '.join(NAMES[labels[r]] for r in rows)}")
print("  let pixels = [")
for r in rows:
    print("    [" + ", ".join(str(int(v)) for v in pixels[r]) + "],")
print("  ]")
print("  let truth = [")
for r in rows:
    print("    [" + ", ".join(map(str, prev[r])) + "],")
print("  ]")

# examples/dream.net starts from the first test image (row 1500 of digits.csv, a 1).
dream = os.path.join(here, "dream")
os.makedirs(dream, exist_ok=True)
np.save(os.path.join(dream, "start.npy"), (pixels[1500:1501] / 16).astype(np.float32))
