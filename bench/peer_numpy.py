"""Hand-written numpy backprop peers of issue #8: python bench/peer_numpy.py w1|w2"""
import sys
import time

import numpy as np

import common as c


def softmax_grad(s, y):
    """d(mean cross-entropy)/d(scores) and the loss."""
    s = s - s.max(1, keepdims=True)
    e = np.exp(s)
    probs = e / e.sum(1, keepdims=True)
    n = len(y)
    loss = -np.log(probs[np.arange(n), y]).mean()
    probs[np.arange(n), y] -= 1
    return probs / n, loss


def w1():
    """The CS231n case study: 2-layer net on the spiral, full batch, L2 1e-3, lr 1.0."""
    x, y = c.spiral()
    p = c.weights("w1")
    W1, b1, W2, b2 = p["W1"], p["b1"], p["W2"], p["b2"]
    reg, lr = 1e-3, 1.0
    t = time.perf_counter()
    for _ in range(10000):
        h = np.maximum(0, x @ W1 + b1)
        d, loss = softmax_grad(h @ W2 + b2, y)
        dW2, db2 = h.T @ d + reg * W2, d.sum(0)
        dh = d @ W2.T
        dh[h <= 0] = 0
        dW1, db1 = x.T @ dh + reg * W1, dh.sum(0)
        W1 -= lr * dW1
        b1 -= lr * db1
        W2 -= lr * dW2
        b2 -= lr * db2
    seconds = time.perf_counter() - t
    acc = ((np.maximum(0, x @ W1 + b1) @ W2 + b2).argmax(1) == y).mean()
    loss += reg * 0.5 * (np.sum(W1 * W1) + np.sum(W2 * W2))  # the last step's loss, as the others report it
    c.report("numpy", "w1", seconds=seconds, final_loss=float(loss), train_accuracy=float(acc))


def w2():
    """784-256-256-10 ReLU MLP, softmax cross-entropy, SGD."""
    x, y = c.batch("w2")
    p = c.weights("w2")
    W = [p[f"dense_{i}.W"] for i in (1, 2, 3)]
    b = [p[f"dense_{i}.b"] for i in (1, 2, 3)]
    lr = c.SHAPES["w2"][3]

    def forward():
        h1 = np.maximum(0, x @ W[0] + b[0])
        h2 = np.maximum(0, h1 @ W[1] + b[1])
        return h1, h2, h2 @ W[2] + b[2]

    def step():
        h1, h2, s = forward()
        d, _ = softmax_grad(s, y)
        grads = [(h2.T @ d, d.sum(0))]
        d = d @ W[2].T
        d[h2 <= 0] = 0
        grads.insert(0, (h1.T @ d, d.sum(0)))
        d = d @ W[1].T
        d[h1 <= 0] = 0
        grads.insert(0, (x.T @ d, d.sum(0)))
        for i, (dw, db) in enumerate(grads):
            W[i] -= lr * dw
            b[i] -= lr * db

    step()
    c.step_report("numpy", "w2", step, forward, c.since_process_start())


if __name__ == "__main__":
    {"w1": w1, "w2": w2}[sys.argv[1]]()
