"""Reference values for tests/fields.rs: PyTorch's cross-entropy over [B, T, C] scores with
[B, T] integer targets (classes last; torch wants them at axis 1, hence the transpose), mean
over every position, and its gradient wrt the scores. Writes cross_entropy_seq.json.

    /work/main/bench/.venv/bin/python tests/data/cross_entropy_seq.py
"""
import json
import os

import torch

scores = torch.tensor(
    [[[0.3, -1.2, 0.8, 1.9], [-0.4, 1.1, 0.2, -0.9], [1.4, -0.7, 0.6, 0.1]],
     [[0.7, 0.2, -1.1, 0.4], [1.6, -0.5, 0.9, -1.3], [-0.8, 1.2, 0.35, 0.75]]],
    dtype=torch.float64, requires_grad=True)
targets = torch.tensor([[3, 1, 0], [2, 0, 1]])
loss = torch.nn.functional.cross_entropy(scores.transpose(1, 2), targets)
loss.backward()
out = {"loss": loss.item(), "grad": scores.grad.flatten().tolist()}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "cross_entropy_seq.json"), "w") as f:
    json.dump(out, f, indent=1)
