"""Writes topics_tokens.npy and topics_labels.npy: a small synthetic text-classification data
set for examples/text_classify.net (see README.md in this folder). Deterministic: running it
again writes the same bytes.

    python3 examples/data/make_topics.py      # needs numpy

Each sample is a "sentence" of 16 token ids from a vocabulary of 64: ids 0..39 are filler
words shared by every class (drawn with Zipf-like frequencies), ids 40..63 are 4 topics of 6
words each. A sentence of topic c holds 2 to 4 words of topic c at random places, half of the
sentences one word of another topic as a distractor, and the rest filler. 3% of the labels
are then replaced by a random class (label noise), so no model reaches 100%.
"""
import pathlib

import numpy as np

SAMPLES, LENGTH, FILLER, TOPICS, PER_TOPIC, NOISE = 2000, 16, 40, 4, 6, 0.03

rng = np.random.default_rng(2024)
zipf = 1.0 / np.arange(1, FILLER + 1)
zipf /= zipf.sum()
tokens = np.zeros((SAMPLES, LENGTH), dtype=np.uint8)
labels = np.zeros(SAMPLES, dtype=np.uint8)
for i in range(SAMPLES):
    c = i % TOPICS
    sentence = rng.choice(FILLER, size=LENGTH, p=zipf)
    k = rng.integers(2, 5)
    where = rng.choice(LENGTH, size=k + 1, replace=False)
    sentence[where[:k]] = FILLER + c * PER_TOPIC + rng.integers(0, PER_TOPIC, size=k)
    if rng.random() < 0.5:
        other = (c + rng.integers(1, TOPICS)) % TOPICS
        sentence[where[k]] = FILLER + other * PER_TOPIC + rng.integers(0, PER_TOPIC)
    tokens[i] = sentence
    labels[i] = c if rng.random() >= NOISE else rng.integers(0, TOPICS)
order = rng.permutation(SAMPLES)
here = pathlib.Path(__file__).parent
np.save(here / "topics_tokens.npy", tokens[order])
np.save(here / "topics_labels.npy", labels[order])
print(f"wrote {SAMPLES} sentences of {LENGTH} tokens, {TOPICS} topics, to {here}")
