"""Reference values for tests/torch_attention.rs, computed once with PyTorch in float64 (CPU)
and written as one safetensors file of float64 tensors (`reference.safetensors`): the output
of netc's prelude `multihead_attention(x, heads:, dim:, mask:)` and the gradients of
sum(output * v) with respect to every parameter and to x, in three cases:

- mha: torch.nn.MultiheadAttention(8, 2, batch_first=True) itself on x [3, 5, 8];
- masked: the same module and weights with a causal mask (netc: nonzero = may attend; torch's
  boolean attn_mask says the opposite, True = may not, so torch gets the negation);
- proj: 5 input features projected to dim 6 in 3 heads (torch's module needs the query's
  features to equal dim, so this case is the explicit formula torch's module computes:
  softmax(q kᵀ / √(dim / heads)) v per head, joined and projected).

netc's layout (src/frontend/prelude.net): Wq, Wk, Wv [features, dim], Wo [dim, dim] with
x @ W, i.e. torch's in_proj_weight = [Wqᵀ; Wkᵀ; Wvᵀ] and out_proj.weight = Woᵀ; biases bq, bv,
bo and no key bias (torch's key part of in_proj_bias is 0 here; its gradient is 0, which the
script asserts, because the softmax cancels a key bias). The weights and x are seeded numpy
draws rounded to float32, so that netc's float32 runs see exactly these values.

Run: /work/main/bench/.venv/bin/python tests/data/torch_attention/make_reference.py
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file

torch.use_deterministic_algorithms(True)
rng = np.random.default_rng(17)
out = {}


def draw(*shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def put(name, value):
    value = value.detach().numpy() if isinstance(value, torch.Tensor) else value
    out[name] = np.ascontiguousarray(np.asarray(value, dtype=np.float64))


def weights(features, dim):
    return {"Wq": draw(features, dim), "bq": draw(dim), "Wk": draw(features, dim), "Wv": draw(features, dim),
            "bv": draw(dim), "Wo": draw(dim, dim), "bo": draw(dim)}


def module_case(name, w, x, v, heads, allowed=None):
    """torch.nn.MultiheadAttention loaded with netc's weights `w`."""
    dim = w["Wo"].shape[0]
    mha = torch.nn.MultiheadAttention(dim, heads, batch_first=True, dtype=torch.float64)
    t = {k: torch.from_numpy(a) for k, a in w.items()}
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([t["Wq"].T, t["Wk"].T, t["Wv"].T]))
        mha.in_proj_bias.copy_(torch.cat([t["bq"], torch.zeros(dim, dtype=torch.float64), t["bv"]]))
        mha.out_proj.weight.copy_(t["Wo"].T)
        mha.out_proj.bias.copy_(t["bo"])
    xt = torch.from_numpy(x).requires_grad_(True)
    mask = None if allowed is None else torch.from_numpy(allowed == 0)
    y, _ = mha(xt, xt, xt, attn_mask=mask, need_weights=False)
    if allowed is None:  # the module computes the formula with this layout
        assert torch.allclose(y, formula({k: torch.from_numpy(a) for k, a in w.items()}, xt, heads), atol=1e-12)
    (y * torch.from_numpy(v)).sum().backward()
    wq, wk, wv = mha.in_proj_weight.grad.chunk(3)
    bq, bk, bv = mha.in_proj_bias.grad.chunk(3)
    assert bk.abs().max() < 1e-12, f"the key bias's gradient is {bk}"
    grads = {"Wq": wq.T, "bq": bq, "Wk": wk.T, "Wv": wv.T, "bv": bv, "Wo": mha.out_proj.weight.grad.T,
             "bo": mha.out_proj.bias.grad}
    finish(name, w, x, v, y, grads, xt.grad, heads, allowed)


def formula(t, xt, heads):
    b, n, _ = xt.shape

    def split(z):
        return z.reshape(b, n, heads, -1).transpose(1, 2)

    q, k, vv = split(xt @ t["Wq"] + t["bq"]), split(xt @ t["Wk"]), split(xt @ t["Wv"] + t["bv"])
    a = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    return (a @ vv).transpose(1, 2).reshape(b, n, -1) @ t["Wo"] + t["bo"]


def formula_case(name, w, x, v, heads):
    """The explicit formula (features != dim)."""
    t = {k: torch.from_numpy(a).requires_grad_(True) for k, a in w.items()}
    xt = torch.from_numpy(x).requires_grad_(True)
    y = formula(t, xt, heads)
    (y * torch.from_numpy(v)).sum().backward()
    finish(name, w, x, v, y, {k: p.grad for k, p in t.items()}, xt.grad, heads, None)


def finish(name, w, x, v, y, grads, dx, heads, allowed):
    for k, a in w.items():
        put(f"{name}/weights/{k}", a)
        put(f"{name}/grads/{k}", grads[k])
    put(f"{name}/x", x)
    put(f"{name}/v", v)
    put(f"{name}/output", y)
    put(f"{name}/dx", dx)
    put(f"{name}/heads", np.array([heads]))
    if allowed is not None:
        put(f"{name}/mask", allowed)


B, T = 3, 5
w, x, v = weights(8, 8), draw(B, T, 8, scale=1.0), draw(B, T, 8, scale=1.0)
module_case("mha", w, x, v, heads=2)
module_case("masked", w, x, v, heads=2, allowed=np.tril(np.ones((T, T))))
formula_case("proj", weights(5, 6), draw(B, T, 5, scale=1.0), draw(B, T, 6, scale=1.0), heads=3)
save_file(out, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.safetensors"))
