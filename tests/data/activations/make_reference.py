"""Reference values from PyTorch for tests/activations_reference.rs.

Run once (the tests never run Python) with the bench venv:

    /work/main/bench/.venv/bin/python tests/data/activations/make_reference.py

It writes tests/data/activations/reference.json: float64 values and first derivatives of
erf, gelu (exact and tanh), silu and clip at special points (0, tiny, the regions of erf,
clip's bounds, large magnitudes), comparisons at ties, where with broadcasting (including the
gradient through a branch that is not taken), var with both corrections, and
scaled dot-product attention with and without a boolean mask, and convolution and pooling
with PyTorch's floor rule for the output size, padding for avg_pool2d and the global average. Non-finite
numbers are written as the strings "inf", "-inf" and "nan".
"""

import json
import math
import os

import torch
import torch.nn.functional as F

F64 = torch.float64


def num(v):
    v = float(v)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def nums(t):
    return [num(v) for v in t.detach().reshape(-1).tolist()]


POINTS = [0.0, 1e-300, -1e-300, 1e-17, -1e-17, 1e-8, -1e-8, 0.5, -0.5, 0.84375, -0.84375,
          1.0, -1.0, 1.25, -1.25, 2.0, -2.0, 2.857, -2.857, 3.0, -3.0, 5.0, -5.0, 6.0, -6.0,
          10.0, -10.0, 30.0, -30.0, 100.0, -100.0, 700.0, -700.0]

# netc expression (of `x`) -> torch function.
FUNCTIONS = {
    "erf(x)": torch.erf,
    "gelu(x)": F.gelu,
    "gelu(x, approximate: \"tanh\")": lambda x: F.gelu(x, approximate="tanh"),
    "silu(x)": F.silu,
    "clip(x, -1, 2)": lambda x: torch.clamp(x, -1.0, 2.0),
    "clip(x, lo: 0.5)": lambda x: torch.clamp(x, min=0.5),
    "clip(x, hi: -1)": lambda x: torch.clamp(x, max=-1.0),
    # lo > hi: every value becomes hi, and no gradient flows (torch.clamp's rule)
    "clip(x, 2, -1)": lambda x: torch.clamp(x, 2.0, -1.0),
}


def elementwise():
    out = []
    for expr, f in FUNCTIONS.items():
        x = torch.tensor(POINTS, dtype=F64, requires_grad=True)
        y = f(x)
        y.sum().backward()
        out.append({"expr": expr, "x": nums(x), "y": nums(y), "dy": nums(x.grad)})
    return out


def comparisons():
    a = torch.tensor([1.0, 2.0, -0.0, 0.0, 3.0, -5.0, 1e-300], dtype=F64)
    b = torch.tensor([1.0, 1.0, 0.0, 2.0, -3.0, -5.0, 0.0], dtype=F64)
    return {
        "a": nums(a),
        "b": nums(b),
        ">": nums((a > b).double()),
        "<": nums((a < b).double()),
        ">=": nums((a >= b).double()),
        "<=": nums((a <= b).double()),
        "==": nums((a == b).double()),
        "!=": nums((a != b).double()),
    }


def where():
    x = torch.tensor([[0.5, -1.0, 0.0, 2.0], [-0.5, 3.0, 1.0, -2.0]], dtype=F64, requires_grad=True)
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]], dtype=F64, requires_grad=True)
    b = torch.tensor([10.0, 20.0, 30.0, 40.0], dtype=F64, requires_grad=True)
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0], [-1.0, -2.0, -3.0, -4.0]], dtype=F64)
    # the switch gate: where(x > 0, a·x, b), weighted so each element's gradient differs
    y = torch.where(x > 0, a * x, b)
    (y * w).sum().backward()
    switch = {"x": nums(x), "a": nums(a), "b": nums(b), "w": nums(w), "y": nums(y),
              "dx": nums(x.grad), "da": nums(a.grad), "db": nums(b.grad)}
    # the branch not taken: log(x) at x <= 0 is -inf or NaN, its gradient g/x with g = 0
    # is NaN at 0 and -0 below it, as in torch
    z = torch.tensor([-1.0, 0.0, 0.5, 2.0], dtype=F64, requires_grad=True)
    y = torch.where(z > 0, torch.log(z), z * 3)
    y.sum().backward()
    untaken = {"x": nums(z), "y": nums(y), "dx": nums(z.grad)}
    return {"switch": switch, "untaken": untaken}


def variance():
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0], [2.0, 2.5, -1.0, 0.0], [0.3, 0.1, -0.7, 1.1]],
                     dtype=F64, requires_grad=True)
    w = torch.tensor([[1.0], [2.0], [-1.5]], dtype=F64)
    out = {"x": nums(x)}
    for correction in (0, 1):
        x.grad = None
        y = torch.var(x, dim=1, correction=correction, keepdim=True)
        (y * w).sum().backward()
        out[f"axis1_c{correction}"] = {"y": nums(y), "dx": nums(x.grad)}
    x.grad = None
    y = torch.var(x)
    y.backward()
    out["all"] = {"y": nums(y), "dx": nums(x.grad)}
    return out


def attention():
    # torch's scaled dot-product attention with a boolean mask (True: may attend), batched,
    # the mask broadcast over the batch; every query keeps at least one key.
    g = torch.Generator().manual_seed(17)
    q = torch.randn(2, 3, 4, dtype=F64, generator=g, requires_grad=True)
    k = torch.randn(2, 5, 4, dtype=F64, generator=g, requires_grad=True)
    v = torch.randn(2, 5, 3, dtype=F64, generator=g, requires_grad=True)
    mask = torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    w = torch.randn(2, 3, 3, dtype=F64, generator=g)
    out = {"q": nums(q), "k": nums(k), "v": nums(v), "mask": nums(mask.double()), "w": nums(w)}
    for name, m in (("masked", mask), ("unmasked", None)):
        for t in (q, k, v):
            t.grad = None
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
        (y * w).sum().backward()
        out[name] = {"y": nums(y), "dq": nums(q.grad), "dk": nums(k.grad), "dv": nums(v.grad)}
    return out


def windows():
    # PyTorch's floor rule: a 3x3, stride-2, pad-1 convolution of an even 6x6 input (7/2 rows
    # of windows: 3), avg_pool2d with padding (count_include_pad, torch's default), max_pool2d
    # of an odd 5x5 input, and the global average (x.mean((2, 3))).
    g = torch.Generator().manual_seed(23)
    x = torch.randn(1, 2, 6, 6, dtype=F64, generator=g, requires_grad=True)
    w = torch.randn(3, 2, 3, 3, dtype=F64, generator=g, requires_grad=True)
    x5 = torch.randn(1, 2, 5, 5, dtype=F64, generator=g, requires_grad=True)
    out = {"x": nums(x), "w": nums(w), "x5": nums(x5)}

    def record(name, y, leaves):
        for t in leaves:
            t.grad = None
        c = torch.arange(y.numel(), dtype=F64).reshape(y.shape) * 0.1 + 0.5
        (y * c).sum().backward()
        out[name] = {"shape": list(y.shape), "y": nums(y)}
        for t, key in leaves.items():
            out[name][key] = nums(t.grad)

    record("conv", F.conv2d(x, w, stride=2, padding=1), {x: "dx", w: "dw"})
    record("avgpool", F.avg_pool2d(x, 3, stride=2, padding=1), {x: "dx"})
    record("maxpool", F.max_pool2d(x5, 2, stride=2), {x5: "dx"})
    record("global", x.mean((2, 3)), {x: "dx"})
    return out


def more_windows():
    # conv with groups (2 groups of 2 channels), conv1d (stride 2, pad 1), conv_transpose2d
    # (stride 2, pad 1) and nearest upsampling by 2.
    g = torch.Generator().manual_seed(29)
    x = torch.randn(1, 4, 5, 5, dtype=F64, generator=g, requires_grad=True)
    wg = torch.randn(4, 2, 3, 3, dtype=F64, generator=g, requires_grad=True)
    x1 = torch.randn(2, 3, 7, dtype=F64, generator=g, requires_grad=True)
    w1 = torch.randn(4, 3, 3, dtype=F64, generator=g, requires_grad=True)
    xt = torch.randn(1, 2, 3, 3, dtype=F64, generator=g, requires_grad=True)
    wt = torch.randn(2, 3, 3, 3, dtype=F64, generator=g, requires_grad=True)
    out = {"x": nums(x), "wg": nums(wg), "x1": nums(x1), "w1": nums(w1), "xt": nums(xt), "wt": nums(wt)}

    def record(name, y, leaves):
        for t in leaves:
            t.grad = None
        c = torch.arange(y.numel(), dtype=F64).reshape(y.shape) * 0.1 + 0.5
        (y * c).sum().backward()
        out[name] = {"shape": list(y.shape), "y": nums(y)}
        for t, key in leaves.items():
            out[name][key] = nums(t.grad)

    record("grouped", F.conv2d(x, wg, padding=1, groups=2), {x: "dx", wg: "dwg"})
    record("conv1d", F.conv1d(x1, w1, stride=2, padding=1), {x1: "dx1", w1: "dw1"})
    record("transposed", F.conv_transpose2d(xt, wt, stride=2, padding=1), {xt: "dxt", wt: "dwt"})
    record("upsample", F.interpolate(x, scale_factor=2, mode="nearest"), {x: "dx"})
    return out


def main():
    out = {
        "torch": torch.__version__,
        "elementwise": elementwise(),
        "comparisons": comparisons(),
        "where": where(),
        "var": variance(),
        "attention": attention(),
        "windows": windows(),
        "more_windows": more_windows(),
    }
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
