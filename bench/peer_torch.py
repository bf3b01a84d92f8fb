"""PyTorch eager peers of issue #8: python bench/peer_torch.py w1|w2|w3|w5|w7|w9|w10|w11|w12"""
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import common as c

torch.set_num_threads(c.THREADS)
torch.set_num_interop_threads(1)


def forward(spec, p, x, train=True):
    """`train`: batch statistics (updating the running ones in place) and dropout, as
    model.train(); otherwise the running statistics and no dropout, as model.eval()."""
    for op, *a in spec:
        if op == "dense":
            x = x @ p[a[0]] + p[a[1]]
        elif op == "conv":
            x = F.conv2d(x, p[a[0]], p[a[1]].reshape(-1), stride=a[2], padding=a[3])
        elif op == "relu":
            x = torch.relu(x)
        elif op == "pool":
            x = F.max_pool2d(x, a[0], a[1])
        elif op == "flatten":
            x = x.flatten(1)
        elif op == "bn":
            gamma, beta, mean, var = (p[n] for n in a)
            x = F.batch_norm(x, mean, var, gamma, beta, training=train, momentum=0.1, eps=1e-5)
        elif op == "dropout":
            x = F.dropout(x, a[0], training=train)
    return x


def params(workload):
    return {k: torch.from_numpy(v).requires_grad_(not c.is_state(k)) for k, v in c.weights(workload).items()}


def trainer(workload, p, lr, momentum=0.0, l2=0.0):
    opt = torch.optim.SGD([v for k, v in p.items() if not c.is_state(k)], lr=lr, momentum=momentum)

    def step(x, y):
        loss = F.cross_entropy(forward(c.NETS[workload], p, x), y)
        if l2:
            loss = loss + l2 * 0.5 * (p["W1"].square().sum() + p["W2"].square().sum())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def accuracy(workload, p, x, y):
    with torch.no_grad():
        return (forward(c.NETS[workload], p, torch.from_numpy(x), train=False).argmax(1).numpy() == y).mean().item()


def w1():
    x, y = c.spiral()
    p = params("w1")
    step = trainer("w1", p, lr=1.0, l2=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    t = time.perf_counter()
    for _ in range(10000):
        loss = step(xt, yt)
    c.report("torch", "w1", seconds=time.perf_counter() - t, final_loss=loss.item(),
             train_accuracy=accuracy("w1", p, x, y))


def steps(workload):
    x, y = (torch.from_numpy(a) for a in c.batch(workload))
    p = params(workload)
    step = trainer(workload, p, lr=c.SHAPES[workload][3])
    step(x, y)
    first = c.since_process_start()

    def infer():
        with torch.no_grad():
            forward(c.NETS[workload], p, x, train=False)

    c.step_report("torch", workload, lambda: step(x, y), infer, first)


def w5():
    (x, y), (tx, ty) = c.digits()
    p = params("w5")
    step = trainer("w5", p, lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    t = time.perf_counter()
    for _ in range(20):
        order = rng.permutation(len(x))
        for i in range(0, len(x), 32):
            b = order[i:i + 32]
            step(torch.from_numpy(x[b]), torch.from_numpy(y[b]))
    c.report("torch", "w5", seconds=time.perf_counter() - t, test_accuracy=accuracy("w5", p, tx, ty))


def w11():
    """torch.nn.LSTM (batch_first) from the shared weights, SGD on the final state's scores."""
    x, y = (torch.from_numpy(a) for a in c.batch("w11"))
    w = c.weights("w11")
    pre, hidden = c.LSTM["prefix"], c.LSTM["hidden"]
    lstm = torch.nn.LSTM(x.shape[2], hidden, batch_first=True)
    with torch.no_grad():
        for name, value in lstm.named_parameters():
            value.copy_(torch.from_numpy(w[f"{pre}.{name}"]))
    head = [torch.from_numpy(w[k]).requires_grad_() for k in c.LSTM["head"]]
    opt = torch.optim.SGD(list(lstm.parameters()) + head, lr=c.SHAPES["w11"][3])

    def forward():
        out, _ = lstm(x)
        return out[:, -1] @ head[0] + head[1]

    def step():
        loss = F.cross_entropy(forward(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()
    first = c.since_process_start()

    def infer():
        with torch.no_grad():
            forward()

    c.step_report("torch", "w11", step, infer, first)


def transformer(w):
    """W10 as PyTorch writes it: nn.TransformerEncoderLayer (pre-norm, exact gelu, no dropout)
    plus the final layernorm and the head, loaded from netc's weights `w`. netc's W [in, out]
    is torch's Linear weight transposed; its attention has no key bias, so torch's key part of
    in_proj_bias starts at 0 (its gradient is 0: the softmax cancels a key bias) and stays
    there up to rounding. Returns the modules and forward()."""
    t = c.TRANSFORMER
    dim = w[f"{t['attn']}.Wq"].shape[1]
    hidden, mlp = t["mlp"]
    block = torch.nn.TransformerEncoderLayer(dim, t["heads"], w[f"{hidden}.W"].shape[1], dropout=0.0,
                                             activation="gelu", batch_first=True, norm_first=True)
    final, head = torch.nn.LayerNorm(dim), torch.nn.Linear(dim, w[f"{t['head']}.W"].shape[1])
    a = t["attn"]
    g = {k: torch.from_numpy(v) for k, v in w.items()}
    with torch.no_grad():
        att = block.self_attn
        att.in_proj_weight.copy_(torch.cat([g[f"{a}.Wq"].T, g[f"{a}.Wk"].T, g[f"{a}.Wv"].T]))
        att.in_proj_bias.copy_(torch.cat([g[f"{a}.bq"], torch.zeros(dim), g[f"{a}.bv"]]))
        att.out_proj.weight.copy_(g[f"{a}.Wo"].T)
        att.out_proj.bias.copy_(g[f"{a}.bo"])
        for module, name in ((block.linear1, hidden), (block.linear2, mlp), (head, t["head"])):
            module.weight.copy_(g[f"{name}.W"].T)
            module.bias.copy_(g[f"{name}.b"])
        for module, name in ((block.norm1, t["norm1"]), (block.norm2, t["norm2"]), (final, t["final_norm"])):
            module.weight.copy_(g[f"{name}.gamma"])
            module.bias.copy_(g[f"{name}.beta"])

    def forward(x):
        return head(final(block(x)).mean(1))

    return [block, final, head], forward


def w10():
    x, y = (torch.from_numpy(a) for a in c.batch("w10"))
    modules, forward = transformer(c.weights("w10"))
    opt = torch.optim.SGD([p for m in modules for p in m.parameters()], lr=c.SHAPES["w10"][3])

    def step():
        loss = F.cross_entropy(forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    step()
    first = c.since_process_start()

    def infer():
        with torch.no_grad():
            forward(x)

    c.step_report("torch", "w10", step, infer, first)


def w12():
    """`netc predict`'s job: read the weights and the samples, the forward pass in batches
    under inference_mode, write the scores as NPY."""
    p = {k: torch.from_numpy(v) for k, v in c.weights("w2").items()}
    x = np.load(c.DATA / "w12_x.npy")
    out = np.empty((len(x), 10), np.float32)
    t = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(x), c.W12_BATCH):
            out[i:i + c.W12_BATCH] = forward(c.NETS["w2"], p, torch.from_numpy(x[i:i + c.W12_BATCH])).numpy()
    forward_s = time.perf_counter() - t
    np.save(c.DATA / "w12_out_torch.npy", out)
    c.report("torch", "w12", forward_s=forward_s, samples=len(x))


if __name__ == "__main__":
    w = sys.argv[1]
    {"w1": w1, "w5": w5, "w10": w10, "w11": w11, "w12": w12}.get(w, lambda: steps(w))()
