"""Once, outside CI: netc's W10 (bench/w10_transformer.net) trains like the PyTorch and JAX
peers. Three SGD steps on the benchmark batch from bench/data/w10_init.safetensors, on each
system; prints each step's loss and the largest relative difference of the losses and of
the weights after the three steps (netc's --save against torch's).

Usage: bench/.venv/bin/python bench/check_w10.py [NETC_BINARY]   (after bench/gen.py)
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

import common as c
import peer_torch

STEPS = 3


def netc(binary, x, y):
    """netc run of a copy of W10 reading the batch from NPY files: losses, weights after."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", x)
        np.save(tmp / "y.npy", y)
        net = (c.HERE / "w10_transformer.net").read_text()
        net = net.replace("data d { source: synthetic(samples: 32, classes: 10, seed: 1) }",
                          'data d {\n  x: npy("x.npy")\n  labels: npy("y.npy", int)\n}')
        net = net.replace("  batch: 32\n", f"  batch: 32\n  steps: {STEPS}\n")
        (tmp / "w10.net").write_text(net)
        out = subprocess.run([binary, "run", str(tmp / "w10.net"), "--load", str(c.DATA / "w10_init.safetensors"),
                              "--save", str(tmp / "after.safetensors"), "--json"],
                             capture_output=True, text=True, check=True).stdout
        rec = json.loads([l for l in out.splitlines() if l.startswith("{")][-1])
        return rec, load_file(tmp / "after.safetensors")


def torch_steps(x, y):
    modules, forward = peer_torch.transformer(c.weights("w10"))
    opt = torch.optim.SGD([p for m in modules for p in m.parameters()], lr=c.SHAPES["w10"][3])
    losses = []
    for _ in range(STEPS):
        loss = F.cross_entropy(forward(torch.from_numpy(x)), torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():  # the loss after the last update
        losses.append(F.cross_entropy(forward(torch.from_numpy(x)), torch.from_numpy(y)).item())
    block, final, head = modules
    t, a = c.TRANSFORMER, c.TRANSFORMER["attn"]
    hidden, mlp = t["mlp"]
    wq, wk, wv = block.self_attn.in_proj_weight.detach().chunk(3)
    bq, _, bv = block.self_attn.in_proj_bias.detach().chunk(3)
    weights = {f"{a}.Wq": wq.T, f"{a}.Wk": wk.T, f"{a}.Wv": wv.T, f"{a}.bq": bq, f"{a}.bv": bv,
               f"{a}.Wo": block.self_attn.out_proj.weight.T, f"{a}.bo": block.self_attn.out_proj.bias}
    for module, name in ((block.linear1, hidden), (block.linear2, mlp), (head, t["head"])):
        weights[f"{name}.W"], weights[f"{name}.b"] = module.weight.T, module.bias
    for module, name in ((block.norm1, t["norm1"]), (block.norm2, t["norm2"]), (final, t["final_norm"])):
        weights[f"{name}.gamma"], weights[f"{name}.beta"] = module.weight, module.bias
    return losses, {k: v.detach().numpy() for k, v in weights.items()}


def jax_losses(x, y):
    import jax
    import jax.numpy as jnp

    import peer_jax

    p = {k: jnp.asarray(v) for k, v in c.weights("w10").items()}

    def loss_fn(p):
        logp = jax.nn.log_softmax(peer_jax.transformer_forward(p, jnp.asarray(x)))
        return -jnp.take_along_axis(logp, jnp.asarray(y)[:, None], 1).mean()

    losses = []
    for _ in range(STEPS):
        loss, g = jax.value_and_grad(loss_fn)(p)
        p = jax.tree.map(lambda w, d: w - c.SHAPES["w10"][3] * d, p, g)
        losses.append(float(loss))
    return losses


def main(binary):
    x, y = c.batch("w10")
    rec, after = netc(binary, x, y)
    print("netc run --json:", {k: v for k, v in rec.items() if "loss" in k})
    t_losses, t_after = torch_steps(x, y)
    j_losses = jax_losses(x, y)
    print("torch losses of each step, then after the last:", t_losses)
    print("jax losses of each step:", j_losses)
    for what, n, t, j in [(f"of step {STEPS}", rec["final_loss"], t_losses[STEPS - 1], j_losses[-1]),
                          (f"after {STEPS} steps", rec["train_loss"], t_losses[STEPS], None)]:
        line = f"netc loss {what}: {n!r}; relative to torch {abs(n - t) / t:.2e}"
        print(line + (f", to jax {abs(n - j) / j:.2e}" if j is not None else ""))
    worst = max((np.abs(after[k] - v).max() / np.abs(v).max(), k) for k, v in t_after.items())
    print(f"weights after {STEPS} steps, netc vs torch: largest max|diff| / max|torch| {worst[0]:.2e} ({worst[1]})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(c.HERE.parent / "target/release/netc"))
