"""Reference values for tests/torch_rnn.rs, computed once with PyTorch (float32, CPU) and
written as one safetensors file of float64 tensors (`reference.safetensors`):

- lstm: three SGD steps of a classifier over torch.nn.LSTM(5, 8, batch_first=True),
  scores = Linear(out[:, -1] + out.mean(1)), cross-entropy loss, lr 0.5: the loss of each
  step and every parameter after the three steps;
- gru, rnn: the output sequence of torch.nn.GRU / torch.nn.RNN(5, 6) and the gradients of
  sum(output * v) with respect to every parameter and the input.

The initial weights are seeded numpy draws, written with everything else. netc
names the parameters after the layer instance (`enc.weight_ih_l0`) as torch's state_dict does;
netc's dense weight W is torch's Linear weight transposed.

Run: /work/main/bench/.venv/bin/python tests/data/torch_rnn/make_reference.py
"""
import os

import numpy as np
import torch
from safetensors.numpy import save_file

torch.set_default_dtype(torch.float32)
torch.use_deterministic_algorithms(True)
rng = np.random.default_rng(19)
B, T, D, H, C = 4, 7, 5, 8, 3


def draw(*shape, scale=0.4):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


out = {}


def put(name, value):
    out[name] = np.ascontiguousarray(np.asarray(value.detach().numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float64))


# ---- LSTM classifier, three SGD steps --------------------------------------------------------
x = draw(B, T, D, scale=1.0)
labels = np.array([0, 2, 1, 2])
lstm = torch.nn.LSTM(D, H, batch_first=True)
head = torch.nn.Linear(H, C)
with torch.no_grad():
    for name, p in lstm.named_parameters():
        v = draw(*p.shape)
        p.copy_(torch.from_numpy(v))
        put(f"lstm/init/enc.{name}", v)
    w, b = draw(H, C), draw(C)  # netc's dense: W [H, C], b [C]
    head.weight.copy_(torch.from_numpy(w.T.copy()))
    head.bias.copy_(torch.from_numpy(b))
    put("lstm/init/head.W", w)
    put("lstm/init/head.b", b)
opt = torch.optim.SGD(list(lstm.parameters()) + list(head.parameters()), lr=0.5)
losses = []
for step in range(3):
    opt.zero_grad()
    seq, _ = lstm(torch.from_numpy(x))
    scores = head(seq[:, -1] + seq.mean(1))
    loss = torch.nn.functional.cross_entropy(scores, torch.from_numpy(labels))
    loss.backward()
    opt.step()
    losses.append(loss.item())
for n, p in lstm.named_parameters():
    put(f"lstm/final/enc.{n}", p)
put("lstm/final/head.W", head.weight.detach().numpy().T)
put("lstm/final/head.b", head.bias)
put("lstm/x", x)
put("lstm/labels", labels)
put("lstm/losses", np.array(losses))

# ---- GRU and RNN: outputs and gradients ------------------------------------------------------
for kind, module in [("gru", torch.nn.GRU(D, 6, batch_first=True)), ("rnn", torch.nn.RNN(D, 6, batch_first=True))]:
    with torch.no_grad():
        for name, p in module.named_parameters():
            v = draw(*p.shape)
            p.copy_(torch.from_numpy(v))
            put(f"{kind}/weights/{kind}.{name}", v)
    xt = torch.from_numpy(draw(B, T, D, scale=1.0)).requires_grad_(True)
    v = draw(B, T, 6, scale=1.0)
    seq, _ = module(xt)
    (seq * torch.from_numpy(v)).sum().backward()
    put(f"{kind}/x", xt)
    put(f"{kind}/v", v)
    put(f"{kind}/output", seq)
    for n, p in module.named_parameters():
        put(f"{kind}/grads/{kind}.{n}", p.grad)
    put(f"{kind}/dx", xt.grad)

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.safetensors")
save_file(out, path, metadata={"torch": torch.__version__, "script": "make_reference.py"})
print("wrote", path)
