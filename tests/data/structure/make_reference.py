"""Reference values for tests/structure.rs: slicing, gather, concat/split/pad and batched
matrix products computed by numpy, with their gradients (and, where PyTorch can express the
case, checked against torch autograd when this script runs), written once to reference.txt
beside this script.

    /work/main/bench/.venv/bin/python tests/data/structure/make_reference.py

Each case is a netc expression over named inputs; the test evaluates it in an eval block and
compares the value, and the gradient of L = sum(value * w) with respect to every float input
(w fixed, in the file), with these numbers. Inputs are multiples of 1/8, exact in binary, so
the text of the file means the same numbers to netc and to numpy.
"""
import pathlib

import numpy as np
import torch

rng = np.random.default_rng(17)


def floats(*shape):
    return rng.integers(-16, 17, size=shape).astype(np.float64) / 8


def ids(shape, high, repeat=True):
    v = rng.integers(0, high, size=shape)
    flat = v.reshape(-1)
    if repeat and flat.size > 1:
        flat[-1] = flat[0]  # a repeated index: its gradient rows must add up
    return flat.reshape(shape)


# name -> (netc expression, numpy/torch function of the inputs, inputs)
x = floats(4, 5, 6)
E = floats(7, 3)
cases = []


def case(name, expr, fn, **inputs):
    cases.append((name, expr, fn, inputs))


# ---- slicing: numpy semantics, clamped bounds, negative steps, ellipsis ----
case("index_first", "x[1]", lambda x: x[1], x=x)
case("index_negative_and_range", "x[-1, 1:3]", lambda x: x[-1, 1:3], x=x)
case("strided_and_tail", "x[:, ::2, -2:]", lambda x: x[:, ::2, -2:], x=x)
case("ellipsis", "x[..., 1]", lambda x: x[..., 1], x=x)
case("ellipsis_middle", "x[1:, ..., ::-3]", lambda x: x[1:, ..., ::-3], x=x)
case("reverse_strided", "x[::-1, 4:0:-2]", lambda x: x[::-1, 4:0:-2], x=x)
case("clamped_stop", "x[1:100]", lambda x: x[1:100], x=x)
case("clamped_start", "x[-100:2, :, ::3]", lambda x: x[-100:2, :, ::3], x=x)
case("last_reversed", "x[:, -1:, ::-1]", lambda x: x[:, -1:, ::-1], x=x)
case("reverse_clamped_stop", "x[..., 5:-7:-1]", lambda x: x[..., 5:-7:-1], x=x)
case("edges", "x[0:1, 4:5, 5:]", lambda x: x[0:1, 4:5, 5:], x=x)

# ---- gather / take, repeated indices ----
tok = ids((2, 4), 7)
case("embedding_rows", "E[tok]", lambda E, tok: E[tok], E=E, tok=tok)
tk = ids((3,), 5)
case("take_axis1", "take(x, tk, axis: 1)", lambda x, tk: np.take(x, tk, axis=1), x=x, tk=tk)
flat = ids((2, 2), 120)
case("take_flat", "take(x, flat)", lambda x, flat: np.take(x, flat), x=x, flat=flat)
case("index_then_gather", "x[1:3][:, tk]", lambda x, tk: x[1:3][:, tk], x=x, tk=tk)

# ---- concat, split, pad ----
y = floats(4, 2, 6)
case("concat_axis1", "concat([x, y, x[:, :1]], axis: 1)", lambda x, y: np.concatenate([x, y, x[:, :1]], axis=1), x=x, y=y)
case("split_middle", "split(x, [1, 3, 1], axis: 1)[1]", lambda x: np.split(x, [1, 4], axis=1)[1], x=x)
case("pad_pairs", "pad(x, [[1, 0], [0, 2], [3, 1]])", lambda x: np.pad(x, [(1, 0), (0, 2), (3, 1)]), x=x)

# ---- batched products (numpy matmul semantics) and einsum ----
a4, b4 = floats(2, 3, 4, 5), floats(2, 3, 5, 6)
case("matmul_batched", "a @ b", lambda a, b: a @ b, a=a4, b=b4)
w56 = floats(5, 6)
case("matmul_stack_times_matrix", "a @ w", lambda a, w: a @ w, a=a4, w=w56)
a3, b3 = floats(3, 4, 5), floats(1, 5, 2)
case("matmul_broadcast_batch", "a @ b", lambda a, b: a @ b, a=a3, b=b3)
bh = floats(3, 5, 2)
case("matmul_matrix_times_stack", "m @ b", lambda m, b: m @ b, m=floats(4, 5), b=bh)
case("matmul_vector_times_stack", "v @ b", lambda v, b: v @ b, v=floats(5), b=bh)
case("matmul_stack_times_vector", "a @ v", lambda a, v: a @ v, a=a3, v=floats(5))
q, k = floats(2, 3, 4, 5), floats(2, 3, 6, 5)
case("matmul_transposed", "q @ transpose(k, perm: [0, 1, 3, 2])", lambda q, k: q @ np.swapaxes(k, -1, -2), q=q, k=k)
case("einsum_attention", 'einsum("bhtd,bhsd->bhts", q, k)', lambda q, k: np.einsum("bhtd,bhsd->bhts", q, k), q=q, k=k)
case("einsum_outer_sum", 'einsum("ij,kj->ki", m, n)', lambda m, n: np.einsum("ij,kj->ki", m, n), m=floats(3, 4), n=floats(2, 4))

# ---- added later, last so that the values drawn for the cases above stay the same ----
case("ellipsis_last", "x[..., -1]", lambda x: x[..., -1], x=x)
case("ellipsis_first_stepped", "x[-2, ..., 1::2]", lambda x: x[-2, ..., 1::2], x=x)


# The same cases written for torch where its spelling differs (None: torch cannot, e.g.
# negative slice steps); its autograd gradients must equal numpy's.
TORCH = {
    "take_axis1": lambda x, tk: torch.index_select(x, 1, tk),
    "take_flat": lambda x, flat: torch.take(x, flat),
    "concat_axis1": lambda x, y: torch.cat([x, y, x[:, :1]], dim=1),
    "split_middle": lambda x: torch.split(x, [1, 3, 1], dim=1)[1],
    "pad_pairs": lambda x: torch.nn.functional.pad(x, (3, 1, 0, 2, 1, 0)),
    "matmul_transposed": lambda q, k: q @ k.transpose(-1, -2),
    "einsum_attention": lambda q, k: torch.einsum("bhtd,bhsd->bhts", q, k),
    "einsum_outer_sum": lambda m, n: torch.einsum("ij,kj->ki", m, n),
    "ellipsis_middle": None,
    "reverse_strided": None,
    "last_reversed": None,
    "reverse_clamped_stop": None,
}


def numpy_grad(fn, inputs, name, w):
    """dL/d(input) for L = sum(fn(inputs) * w): every case is affine in each float input (the
    others fixed), so element i of the gradient is L at the i-th unit tensor minus L at 0."""
    x = inputs[name]
    loss = lambda v: np.sum(np.asarray(fn(**{**inputs, name: v.reshape(x.shape)})) * w)
    zero = loss(np.zeros(x.size))
    grad = np.zeros(x.size)
    for i in range(x.size):
        unit = np.zeros(x.size)
        unit[i] = 1.0
        grad[i] = loss(unit) - zero
    return grad


results = []
torch_checked = 0
cases_by_name = {name: inputs for name, _, _, inputs in cases}
for name, expr, fn, inputs in cases:
    value = np.asarray(fn(**inputs), dtype=np.float64)
    w = floats(*value.shape)
    floats_in = [n for n, v in inputs.items() if not np.issubdtype(v.dtype, np.integer)]
    grads = {n: numpy_grad(fn, inputs, n, w) for n in floats_in}
    torch_fn = TORCH.get(name, fn)
    if torch_fn is not None:
        t = {n: torch.from_numpy(v) if n not in floats_in else torch.from_numpy(v).requires_grad_() for n, v in inputs.items()}
        tv = torch_fn(**t)
        assert np.array_equal(tv.detach().numpy(), value), name
        (tv * torch.from_numpy(w)).sum().backward()
        for n in floats_in:
            assert np.allclose(t[n].grad.numpy().reshape(-1), grads[n], rtol=1e-12, atol=1e-12), (name, n)
        torch_checked += 1
    results.append({
        "name": name,
        "expr": expr,
        "inputs": {n: {"shape": list(v.shape), "data": v.reshape(-1).astype(np.float64).tolist()} for n, v in inputs.items()},
        "value": {"shape": list(value.shape), "data": value.reshape(-1).tolist()},
        "weights": w.reshape(-1).tolist(),
        "grads": {n: g.tolist() for n, g in grads.items()},
    })

def numbers(values):
    return " ".join(repr(float(v)) for v in values)


# A line-based text format the Rust test reads without a JSON parser:
#   case NAME / expr EXPR / input NAME float|int DIMS : VALUES / value DIMS : VALUES /
#   weights : VALUES / grad NAME : VALUES / end     (DIMS space-separated, none for a scalar)
lines = [f"# written by make_reference.py (numpy {np.__version__}, torch {torch.__version__}); do not edit"]
for r in results:
    lines.append(f"case {r['name']}")
    lines.append(f"expr {r['expr']}")
    for n, v in r["inputs"].items():
        kind = "int" if np.issubdtype(np.asarray(cases_by_name[r["name"]][n]).dtype, np.integer) else "float"
        lines.append(f"input {n} {kind} {' '.join(map(str, v['shape']))} : {numbers(v['data'])}")
    lines.append(f"value {' '.join(map(str, r['value']['shape']))} : {numbers(r['value']['data'])}")
    lines.append(f"weights : {numbers(r['weights'])}")
    for n, g in r["grads"].items():
        lines.append(f"grad {n} : {numbers(g)}")
    lines.append("end")
out = pathlib.Path(__file__).with_name("reference.txt")
out.write_text("\n".join(lines) + "\n")
print(f"wrote {len(results)} cases to {out} ({torch_checked} also through torch autograd)")
