"""The PyTorch reference of tests/modes.rs: three momentum-SGD steps of model.net's network
(BatchNorm2d, BatchNorm1d, dropout p = 0) in float32, from the same weights netc loads.

Writes x.npy, y.npy (24 samples, three batches of 8 in file order), init.safetensors (the
starting weights under netc's names, with non-default batch-norm parameters and running
statistics so the update rule is exercised) and reference.safetensors (the weights and running
statistics after the three steps, and `scores`: the eval-mode outputs on all 24 samples).

Run once from this directory with the bench venv: ../../../../main/bench/.venv/bin/python
make_reference.py (torch, numpy, safetensors). Tests never run it."""
import numpy as np
import torch
from safetensors.torch import save_file

torch.manual_seed(0)
rng = np.random.default_rng(0)
x = rng.normal(size=(24, 2, 6, 6)).astype(np.float32)
y = rng.integers(0, 3, size=24).astype(np.int64)
np.save("x.npy", x)
np.save("y.npy", y)


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = torch.nn.BatchNorm2d(4, momentum=0.1, eps=1e-5)
        self.fc1 = torch.nn.Linear(36, 8)
        self.bn2 = torch.nn.BatchNorm1d(8, momentum=0.1, eps=1e-5)
        self.drop = torch.nn.Dropout(0.0)
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x):
        h = torch.relu(self.bn1(self.c1(x)))
        h = torch.flatten(torch.nn.functional.max_pool2d(h, 2), 1)
        h = self.drop(torch.relu(self.bn2(self.fc1(h))))
        return self.out(h)


net = Net()
with torch.no_grad():
    for bn in (net.bn1, net.bn2):
        n = bn.num_features
        bn.weight.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, n).astype(np.float32)))
        bn.bias.copy_(torch.from_numpy(rng.normal(0, 0.1, n).astype(np.float32)))
        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 0.5, n).astype(np.float32)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, n).astype(np.float32)))


def netc_names(net):
    """The network's tensors under netc's names and layouts (dense W is [in, out])."""
    t = {
        "c1.W": net.c1.weight,
        "c1.b": net.c1.bias.reshape(4, 1, 1),
        "fc1.W": net.fc1.weight.t(),
        "fc1.b": net.fc1.bias,
        "dense_1.W": net.out.weight.t(),
        "dense_1.b": net.out.bias,
    }
    for name, bn in (("bn1", net.bn1), ("bn2", net.bn2)):
        t[f"{name}.gamma"] = bn.weight
        t[f"{name}.beta"] = bn.bias
        t[f"{name}.mean"] = bn.running_mean
        t[f"{name}.var"] = bn.running_var
    return {k: v.detach().contiguous().clone() for k, v in t.items()}


save_file(netc_names(net), "init.safetensors")

opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
xs, ys = torch.from_numpy(x), torch.from_numpy(y)
net.train()
for step in range(3):
    batch = slice(8 * step, 8 * step + 8)
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(net(xs[batch]), ys[batch])
    loss.backward()
    opt.step()
    print(f"step {step}: loss {loss.item():.6f}")

net.eval()
with torch.no_grad():
    scores = net(xs)
reference = netc_names(net)
reference["scores"] = scores.contiguous()
save_file(reference, "reference.safetensors")
