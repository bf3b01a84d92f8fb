"""Reference values from PyTorch for tests/torch_reference.rs.

Run once (the tests never run Python) with the bench venv:

    /work/main/bench/.venv/bin/python tests/data/torch/make_reference.py

It writes tests/data/torch/reference.json: float64 values and first derivatives of every
elementwise built-in at special points, pow's special cases, ties of maximum/minimum/amax,
the losses, and three float32 optimizer steps of torch.optim.Adam / AdamW. Non-finite numbers
are written as the strings "inf", "-inf" and "nan".
"""

import json
import math
import os

import torch
import torch.nn.functional as F

F64 = torch.float64


def num(v):
    v = float(v.detach()) if torch.is_tensor(v) else float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def nums(t):
    return [num(v) for v in t.detach().reshape(-1).tolist()]


# ---- elementwise built-ins at special points --------------------------------------------------

POINTS = [0.0, 1e-300, -1e-300, 1e-17, -1e-17, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0,
          20.0, -20.0, 30.0, -30.0, 40.0, -40.0, 100.0, -100.0, 700.0, -700.0]

# netc expression (of `x`) -> torch function. softplus: PyTorch's default threshold (20)
# returns x itself above 20, off by e^-x; netc computes ln(1 + e^x) exactly, so the
# reference is softplus with the threshold out of the way (log1p(exp(x)), exact in this range).
FUNCTIONS = {
    "exp(x)": torch.exp,
    "log(x)": torch.log,
    "sqrt(x)": torch.sqrt,
    "abs(x)": torch.abs,
    "sigmoid(x)": torch.sigmoid,
    "tanh(x)": torch.tanh,
    "relu(x)": F.relu,
    "leaky_relu(x)": lambda x: F.leaky_relu(x, 0.01),
    "leaky_relu(x, alpha: 0.2)": lambda x: F.leaky_relu(x, 0.2),
    "elu(x)": lambda x: F.elu(x, 1.0),
    "elu(x, alpha: 0.5)": lambda x: F.elu(x, 0.5),
    "elu(x, alpha: 2)": lambda x: F.elu(x, 2.0),
    "softplus(x)": lambda x: F.softplus(x, beta=1.0, threshold=1e9),
}


def elementwise():
    out = []
    for expr, f in FUNCTIONS.items():
        x = torch.tensor(POINTS, dtype=F64, requires_grad=True)
        y = f(x)
        y.sum().backward()
        out.append({"expr": expr, "x": nums(x), "y": nums(y), "dy": nums(x.grad)})
    return out


# ---- pow: zero base, zero exponent, negative base with an integer exponent -----------------------

POW = [(0.0, 0.0), (0.0, 2.0), (0.0, 1.0), (0.0, 0.5), (0.0, -1.0), (0.0, 3.0),
       (-2.0, 3.0), (-2.0, 2.0), (-2.0, 0.0), (-2.0, -1.0), (-2.0, 0.5),
       (2.0, 0.0), (2.0, -1.5), (1.5, 2.5), (-3.0, -2.0), (0.5, 1.0)]


def power():
    a = torch.tensor([p[0] for p in POW], dtype=F64, requires_grad=True)
    b = torch.tensor([p[1] for p in POW], dtype=F64, requires_grad=True)
    y = a ** b
    y.sum().backward()
    general = {"a": nums(a), "b": nums(b), "y": nums(y), "da": nums(a.grad), "db": nums(b.grad)}
    # Constant exponents (x ** c with c a number): d/dx only.
    consts = []
    xs = [0.0, -2.0, 1.5, -0.5]
    for c in [0.0, 1.0, 2.0, 3.0, -1.0, 0.5]:
        x = torch.tensor(xs, dtype=F64, requires_grad=True)
        y = x ** c
        y.sum().backward()
        consts.append({"c": c, "x": nums(x), "y": nums(y), "dx": nums(x.grad)})
    return {"general": general, "constant": consts}


# ---- ties --------------------------------------------------------------------------------------

def ties():
    a0 = [1.0, 2.0, 3.0, 0.0, -1.5]
    b0 = [1.0, 5.0, -3.0, 0.0, -1.5]
    w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], dtype=F64)
    out = {"a": a0, "b": b0, "w": nums(w)}
    for name, f in [("max", torch.maximum), ("min", torch.minimum)]:
        a = torch.tensor(a0, dtype=F64, requires_grad=True)
        b = torch.tensor(b0, dtype=F64, requires_grad=True)
        (f(a, b) * w).sum().backward()
        out[name] = {"da": nums(a.grad), "db": nums(b.grad)}
    m = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    out["m"] = m
    for name, f in [("amax", torch.amax), ("amin", torch.amin)]:
        for dims in [(1,), (0,), (0, 1)]:
            x = torch.tensor(m, dtype=F64, requires_grad=True)
            y = f(x, dim=dims)
            weights = torch.arange(1, y.numel() + 1, dtype=F64).reshape(y.shape)
            (y * weights).sum().backward()
            out[f"{name}{''.join(map(str, dims))}"] = {"y": nums(y), "dx": nums(x.grad)}
    return out


# ---- losses ------------------------------------------------------------------------------------

def losses():
    s0 = [[-1.3, 0.4, 2.1], [0.7, -0.2, 1.6], [0.5, 0.5, -0.5], [2.0, 1.0, 0.0]]
    t0 = [[0.9, 1.7, 0.3], [2.2, 0.6, 1.1], [0.0, 0.1, 0.2], [1.0, 1.0, 1.0]]
    labels = [2, 0, 1, 1]
    out = {"scores": s0, "targets": t0, "labels": labels}
    y = torch.tensor(labels)
    s = torch.tensor(s0, dtype=F64, requires_grad=True)
    l = F.cross_entropy(s, y)
    l.backward()
    out["cross_entropy"] = {"value": num(l), "ds": nums(s.grad)}
    s = torch.tensor(s0, dtype=F64, requires_grad=True)
    t = torch.tensor(t0, dtype=F64, requires_grad=True)
    l = F.mse_loss(s, t)  # mean over all elements
    l.backward()
    out["mse"] = {"value": num(l), "ds": nums(s.grad), "dt": nums(t.grad)}
    # multi_margin_loss divides the CS231n sum over j != y by the number of classes too:
    # netc's svm is C times it. Row 2 puts a score exactly on the margin (relu'(0) = 0).
    classes = len(s0[0])
    for margin in [1.0, 0.5]:
        s = torch.tensor(s0, dtype=F64, requires_grad=True)
        l = F.multi_margin_loss(s, y, margin=margin) * classes
        l.backward()
        out[f"svm_margin_{margin}"] = {"margin": margin, "value": num(l), "ds": nums(s.grad)}
    return out


# ---- optimizers: three float32 steps -----------------------------------------------------------

X = [[0.5, -1.0], [1.5, 0.3], [-0.7, 0.8], [0.2, 0.2], [-1.2, -0.4], [0.9, 1.1]]
Y = [0, 2, 1, 0, 1, 2]
W0 = [[0.3, -0.2, 0.1], [-0.4, 0.25, 0.05]]
B0 = [0.1, -0.1, 0.05]

# (name, netc optimizer setting, netc weight_decay setting, torch constructor). netc decays
# weights (W) only, never biases: in torch terms, a parameter group for b with weight_decay 0.
CONFIGS = [
    ("adam_eps1e-8", "adam(lr: 0.01, eps: 1e-8)", 0.0,
     lambda g: torch.optim.Adam(g, lr=0.01, eps=1e-8)),
    ("adam_eps1e-6_betas", "adam(lr: 0.01, beta1: 0.8, beta2: 0.99, eps: 1e-6)", 0.0,
     lambda g: torch.optim.Adam(g, lr=0.01, betas=(0.8, 0.99), eps=1e-6)),
    ("adam_eps1e-2", "adam(lr: 0.01, eps: 0.01)", 0.0,
     lambda g: torch.optim.Adam(g, lr=0.01, eps=1e-2)),
    ("adam_eps1e-6", "adam(lr: 0.01, eps: 1e-6)", 0.0,
     lambda g: torch.optim.Adam(g, lr=0.01, eps=1e-6)),
    ("adam_l2", "adam(lr: 0.01)", 0.1,
     lambda g: torch.optim.Adam(g, lr=0.01, weight_decay=0.1)),
    ("adamw", "adamw(lr: 0.01)", 0.0,
     lambda g: torch.optim.AdamW(g, lr=0.01, weight_decay=0.01)),
    ("adamw_strong", "adamw(lr: 0.05, beta1: 0.8, beta2: 0.99, eps: 1e-6, weight_decay: 0.5)", 0.0,
     lambda g: torch.optim.AdamW(g, lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.5)),
]


def optimizers():
    out = {"x": X, "labels": Y, "W": W0, "b": B0, "steps": 3, "runs": []}
    x = torch.tensor(X, dtype=torch.float32)
    y = torch.tensor(Y)
    for name, setting, coupled, make in CONFIGS:
        W = torch.tensor(W0, dtype=torch.float32, requires_grad=True)
        b = torch.tensor(B0, dtype=torch.float32, requires_grad=True)
        opt = make([{"params": [W]}, {"params": [b], "weight_decay": 0.0}])
        losses = []
        for _ in range(3):
            opt.zero_grad()
            loss = F.cross_entropy(x @ W + b, y)
            losses.append(loss.item())
            loss.backward()
            opt.step()
        out["runs"].append({"name": name, "optimizer": setting, "weight_decay": coupled,
                            "losses": losses, "W": nums(W), "b": nums(b)})
    return out


def main():
    ref = {
        "torch": torch.__version__,
        "elementwise": elementwise(),
        "pow": power(),
        "ties": ties(),
        "losses": losses(),
        "optimizers": optimizers(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
