"""Train the digits MLP of examples/digits_mlp.net from Python, look inside it, and hand it to
the CLI. Run from the repository's root after `pip install ./python`:

    python examples/python/digits.py [--epochs 20] [--out digits.safetensors]
"""

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import netc

root = Path(__file__).resolve().parents[2]
p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--epochs", type=int, default=20)
p.add_argument("--out", type=Path, default=Path("digits.safetensors"))
args = p.parse_args()

# The data block's CSV, read with numpy: 64 pixels 0..16 and a label per row.
table = np.loadtxt(root / "examples/data/digits.csv", delimiter=",", skiprows=1)
x, y = (table[:, :64] / 16).astype(np.float32), table[:, 64].astype(np.int64)
x_train, y_train, x_test, y_test = x[:1500], y[:1500], x[1500:], y[1500:]

m = netc.compile(root / "examples/digits_mlp.net")
print(m)
print("fit takes:", {name: f["shape"] for name, f in m.fields.items()})

# Train, watching the loss every epoch through the callback (47 steps of 32 samples).
def every_epoch(step, loss):
    if step % 47 == 0:
        print(f"  epoch {step // 47:2d}  loss {loss:.4f}")

losses = m.fit(x=x_train, y=y_train, epochs=args.epochs, callback=every_epoch)
print(f"{len(losses)} steps in {m.last_fit['seconds']:.2f} s; test scores:", m.evaluate(x=x_test, y=y_test))

# The parameters are numpy views of the model's memory; gradients come on request.
w = m.params["dense_1.W"]
print(f"dense_1.W {w.shape}, mean |w| {np.abs(w).mean():.4f}")
loss, grads = m.loss_and_grads(x=x_test, y=y_test)
print(f"test loss {loss:.4f}; largest gradient: {max(grads, key=lambda k: np.abs(grads[k]).max())}")

# Predictions here and from `netc predict` on the saved weights are the same numbers.
m.save(args.out)
netc_bin = Path(os.environ.get("NETC_BIN", root / "target/debug/netc"))
if netc_bin.exists():
    with tempfile.TemporaryDirectory() as tmp:
        np.save(f"{tmp}/x.npy", x_test)
        subprocess.run([netc_bin, "predict", root / "examples/digits_mlp.net", "--load", args.out,
                        "--input", f"{tmp}/x.npy", "-o", f"{tmp}/pred.npy", "--quiet"], check=True)
        same = np.array_equal(np.load(f"{tmp}/pred.npy"), m.predict(x_test))
    print(f"netc predict on {args.out} gives the same scores: {same}")
    sys.exit(0 if same else 1)
print(f"({netc_bin} is not built: `cargo build` to compare with netc predict)")
