"""Writes the data of examples/char_lstm.net from examples/data/char_lstm/corpus.txt:

    /work/main/bench/.venv/bin/python examples/data/make_char_lstm.py            # NPY files
    /work/main/bench/.venv/bin/python examples/data/make_char_lstm.py --corpus   # corpus.txt too

corpus.txt is netc's own documentation (README.md and docs/*.md as of the commit that added it,
MIT like the rest of the project), lower-cased, with every character outside printable ASCII
and newline removed: 76,110 characters of 69 kinds. `--corpus` rebuilds it from the docs as
they are now (then the NPY files, the alphabet and the numbers stated in char_lstm.net change).

char_lstm/: the text cut into 1189 windows of 64 characters, one after another (no overlap);
tokens are the ids of each window's characters and next the ids of the characters one
position later (the targets of a language model). An id is the character's index in ALPHABET,
printed by this script as a .net string for `decode`. Every 10th window (the 10th, 20th, ...)
is held out: tokens_test.npy and next_test.npy [118, 64]; the others train: tokens.npy and
next.npy [1071, 64]. (Holding out windows spread over the whole text keeps the held-out text
the same kind as the training text: the docs' last 10% is the C ABI, unlike the rest.)
"""
import os
import sys

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
out = os.path.join(here, "char_lstm")
T = 64

if "--corpus" in sys.argv:
    names = ["README.md", "docs/language.md", "docs/architecture.md", "docs/robustness.md", "docs/abi.md"]
    text = "\n".join(open(os.path.join(root, n), encoding="utf-8").read() for n in names).lower()
    text = "".join(c for c in text if 32 <= ord(c) < 127 or c == "\n")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "corpus.txt"), "w", encoding="ascii") as f:
        f.write(text)

text = open(os.path.join(out, "corpus.txt"), encoding="ascii").read()
alphabet = "".join(sorted(set(text)))
ids = np.array([alphabet.index(c) for c in text], dtype=np.uint8)
n = (len(ids) - 1) // T
tokens = ids[: n * T].reshape(n, T)
next_ids = ids[1 : n * T + 1].reshape(n, T)
held_out = np.arange(n) % 10 == 9
np.save(os.path.join(out, "tokens.npy"), tokens[~held_out])
np.save(os.path.join(out, "next.npy"), next_ids[~held_out])
np.save(os.path.join(out, "tokens_test.npy"), tokens[held_out])
np.save(os.path.join(out, "next_test.npy"), next_ids[held_out])
literal = alphabet.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
print(f"{len(text)} characters, {len(alphabet)} kinds, {n} windows of {T}, {held_out.sum()} held out")
print(f'ALPHABET = "{literal}"')
