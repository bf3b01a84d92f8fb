"""JAX peers of issue #8 (jax.jit of a grad train step): python bench/peer_jax.py w1|w2|w3|w5|w7|w9|w10|w11"""
import sys
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

import common as c


def forward(spec, p, x, train=False, key=None, stats=None):
    """`train`: batch statistics (the updated running ones go into `stats`) and dropout with
    `key`, as flax's use_running_average=False / deterministic=False; otherwise inference."""
    for op, *a in spec:
        if op == "dense":
            x = x @ p[a[0]] + p[a[1]]
        elif op == "conv":
            pad = [(a[3], a[3])] * 2
            x = lax.conv_general_dilated(x, p[a[0]], (a[2], a[2]), pad, dimension_numbers=("NCHW", "OIHW", "NCHW"))
            x = x + p[a[1]]
        elif op == "relu":
            x = jax.nn.relu(x)
        elif op == "pool":
            x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, a[0], a[0]), (1, 1, a[1], a[1]), "VALID")
        elif op == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif op == "bn":
            gamma, beta, mean, var = (p[n] for n in a)
            axes = tuple(i for i in range(x.ndim) if i != 1)
            shape = [1, -1] + [1] * (x.ndim - 2)
            if train:
                mu, sigma2 = x.mean(axes), x.var(axes)
                n = x.size // x.shape[1]
                stats[a[2]] = 0.9 * mean + 0.1 * mu
                stats[a[3]] = 0.9 * var + 0.1 * sigma2 * (n / (n - 1))
            else:
                mu, sigma2 = mean, var
            scale = lax.rsqrt(sigma2 + 1e-5) * gamma
            x = (x - mu.reshape(shape)) * scale.reshape(shape) + beta.reshape(shape)
        elif op == "dropout" and train:
            key, sub = jax.random.split(key)
            x = jnp.where(jax.random.bernoulli(sub, 1 - a[0], x.shape), x / (1 - a[0]), 0)
    return x


def loss_fn(workload, p, x, y, l2=0.0):
    logp = jax.nn.log_softmax(forward(c.NETS[workload], p, x))
    loss = -jnp.take_along_axis(logp, y[:, None], 1).mean()
    if l2:
        loss = loss + l2 * 0.5 * (jnp.sum(p["W1"] ** 2) + jnp.sum(p["W2"] ** 2))
    return loss


def sgd(workload, lr, l2=0.0):
    def step(p, x, y):
        loss, g = jax.value_and_grad(partial(loss_fn, workload, l2=l2))(p, x, y)
        return jax.tree.map(lambda w, d: w - lr * d, p, g), loss

    return step


def accuracy(workload, p, x, y):
    return float((np.asarray(forward(c.NETS[workload], p, jnp.asarray(x))).argmax(1) == y).mean())


def w1():
    x, y = (jnp.asarray(a) for a in c.spiral())
    step = sgd("w1", lr=1.0, l2=1e-3)
    train = jax.jit(lambda p: lax.fori_loop(0, 10000, lambda _, p: step(p, x, y)[0], p))
    t = time.perf_counter()
    p = jax.block_until_ready(train(c.weights("w1")))
    c.report("jax", "w1", seconds=time.perf_counter() - t, final_loss=float(loss_fn("w1", p, x, y, 1e-3)),
             train_accuracy=accuracy("w1", p, x, np.asarray(y)))


def steps(workload):
    x, y = (jnp.asarray(a) for a in c.batch(workload))
    p = c.weights(workload)
    step = jax.jit(sgd(workload, lr=c.SHAPES[workload][3]), donate_argnums=0)
    t = time.perf_counter()
    p, _ = jax.block_until_ready(step(p, x, y))
    first_call = time.perf_counter() - t
    first = c.since_process_start()

    def train():
        nonlocal p
        p, loss = step(p, x, y)
        loss.block_until_ready()

    infer = jax.jit(partial(forward, c.NETS[workload]))
    c.step_report("jax", workload, train, lambda: infer(p, x).block_until_ready(), first, first_call_s=first_call)


def w5():
    (x, y), (tx, ty) = c.digits()

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(p, v, x, y):
        loss, g = jax.value_and_grad(partial(loss_fn, "w5"))(p, x, y)
        v = jax.tree.map(lambda v, d: 0.9 * v + d, v, g)
        return jax.tree.map(lambda w, v: w - 0.05 * v, p, v), v, loss

    p = {k: jnp.asarray(w) for k, w in c.weights("w5").items()}
    v = jax.tree.map(jnp.zeros_like, p)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(20):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            b = order[i:i + 32]
            p, v, loss = step(p, v, x[b], y[b])
    loss.block_until_ready()
    c.report("jax", "w5", seconds=time.perf_counter() - t, test_accuracy=accuracy("w5", p, tx, ty))


def bn_steps(workload):
    """Train steps of a network with batch norm and dropout: the running statistics are state
    beside the parameters, and each step gets its own dropout key."""
    spec, lr = c.NETS[workload], c.SHAPES[workload][3]
    x, y = (jnp.asarray(a) for a in c.batch(workload))
    w = c.weights(workload)
    p = {k: v for k, v in w.items() if not c.is_state(k)}
    s = {k: v for k, v in w.items() if c.is_state(k)}

    def loss_fn(p, s, x, y, key):
        stats = {}
        logp = jax.nn.log_softmax(forward(spec, {**p, **s}, x, train=True, key=key, stats=stats))
        return -jnp.take_along_axis(logp, y[:, None], 1).mean(), stats

    @partial(jax.jit, donate_argnums=(0, 1))
    def step(p, s, x, y, key):
        (loss, stats), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, x, y, key)
        return jax.tree.map(lambda w, d: w - lr * d, p, g), stats, loss

    root = jax.random.key(0)
    t = time.perf_counter()
    p, s, _ = jax.block_until_ready(step(p, s, x, y, jax.random.fold_in(root, 0)))
    first_call = time.perf_counter() - t
    first = c.since_process_start()
    counter = 0

    def train():
        nonlocal p, s, counter
        counter += 1
        p, s, loss = step(p, s, x, y, jax.random.fold_in(root, counter))
        loss.block_until_ready()

    infer = jax.jit(lambda p, s, x: forward(spec, {**p, **s}, x))
    c.step_report("jax", workload, train, lambda: infer(p, s, x).block_until_ready(), first, first_call_s=first_call)


def layernorm(p, name, x):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + 1e-5) * p[f"{name}.gamma"] + p[f"{name}.beta"]


def transformer_forward(p, x):
    """W10: the pre-norm block of netc's prelude multihead_attention (no key bias, W [in, out]),
    exact gelu, the final layernorm, the mean over positions and the head."""
    t = c.TRANSFORMER
    a, heads = t["attn"], t["heads"]
    b, n, _ = x.shape

    def split(z):  # [B, T, dim] -> [B, heads, T, dim / heads]
        return z.reshape(b, n, heads, -1).transpose(0, 2, 1, 3)

    h = layernorm(p, t["norm1"], x)
    q, k, v = split(h @ p[f"{a}.Wq"] + p[f"{a}.bq"]), split(h @ p[f"{a}.Wk"]), split(h @ p[f"{a}.Wv"] + p[f"{a}.bv"])
    weights = jax.nn.softmax(q @ k.swapaxes(-1, -2) * q.shape[-1] ** -0.5, axis=-1)
    joined = (weights @ v).transpose(0, 2, 1, 3).reshape(b, n, -1)
    x = x + joined @ p[f"{a}.Wo"] + p[f"{a}.bo"]
    hidden, mlp = t["mlp"]
    h = jax.nn.gelu(layernorm(p, t["norm2"], x) @ p[f"{hidden}.W"] + p[f"{hidden}.b"], approximate=False)
    x = x + h @ p[f"{mlp}.W"] + p[f"{mlp}.b"]
    return layernorm(p, t["final_norm"], x).mean(1) @ p[f"{t['head']}.W"] + p[f"{t['head']}.b"]


def lstm_forward(p, x):
    """lax.scan of torch's LSTM cell (gates i, f, g, o) over x [B, T, D]; scores of the final
    state."""
    pre = c.LSTM["prefix"]
    w_ih, w_hh = p[f"{pre}.weight_ih_l0"].T, p[f"{pre}.weight_hh_l0"].T
    b = p[f"{pre}.bias_ih_l0"] + p[f"{pre}.bias_hh_l0"]
    xw = jnp.einsum("btd,dg->tbg", x, w_ih) + b  # the input products of every step at once

    def cell(carry, xw_t):
        h, cs = carry
        i, f, g, o = jnp.split(xw_t + h @ w_hh, 4, axis=1)
        cs = jax.nn.sigmoid(f) * cs + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(cs)
        return (h, cs), None

    zeros = jnp.zeros((x.shape[0], c.LSTM["hidden"]), x.dtype)
    (h, _), _ = lax.scan(cell, (zeros, zeros), xw)
    w, bias = (p[k] for k in c.LSTM["head"])
    return h @ w + bias


def w10():
    sequence_steps("w10", transformer_forward)


def w11():
    sequence_steps("w11", lstm_forward)


def sequence_steps(workload, forward):
    """Train steps of a sequence model forward(p, x) -> scores (W10, W11)."""
    x, y = (jnp.asarray(a) for a in c.batch(workload))
    p = {k: jnp.asarray(v) for k, v in c.weights(workload).items()}
    lr = c.SHAPES[workload][3]

    def loss_fn(p, x, y):
        logp = jax.nn.log_softmax(forward(p, x))
        return -jnp.take_along_axis(logp, y[:, None], 1).mean()

    @partial(jax.jit, donate_argnums=0)
    def step(p, x, y):
        loss, g = jax.value_and_grad(loss_fn)(p, x, y)
        return jax.tree.map(lambda w, d: w - lr * d, p, g), loss

    t = time.perf_counter()
    p, _ = jax.block_until_ready(step(p, x, y))
    first_call = time.perf_counter() - t
    first = c.since_process_start()

    def train():
        nonlocal p
        p, loss = step(p, x, y)
        loss.block_until_ready()

    infer = jax.jit(forward)
    c.step_report("jax", workload, train, lambda: infer(p, x).block_until_ready(), first, first_call_s=first_call)


if __name__ == "__main__":
    w = sys.argv[1]
    {"w1": w1, "w5": w5, "w9": lambda: bn_steps(w), "w10": w10, "w11": w11}.get(w, lambda: steps(w))()
