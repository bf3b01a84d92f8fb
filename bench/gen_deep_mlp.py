"""W8 of issue #8: write bench/deep/mlp_N.net (default N = 10, 100, 1000, 2000, 5000, 10000), MLPs of N dense layers
(width 64, ReLU between them, softmax cross-entropy over 10 classes on the last).

Usage: python bench/gen_deep_mlp.py [LAYERS ...]
"""
import sys
from pathlib import Path


def deep_mlp(layers, width=64):
    lines = [f"# {layers} dense layers of width {width} (bench/gen_deep_mlp.py)",
             f"model deep_mlp(x: [B, {width}]) -> scores: [B, 10] {{", "  let h0 = x"]
    for i in range(1, layers):
        lines.append(f"  let h{i} = relu(dense(h{i - 1}, {width}, init: he))")
    lines += [f"  dense(h{layers - 1}, 10)", "}", "",
              "data noise { source: synthetic(samples: 256, classes: 10, seed: 0) }", "",
              "train deep_mlp {", "  loss: cross_entropy(scores, labels)", "  optimizer: sgd(lr: 0.01)",
              "  steps: 10", "  batch: 64", "}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    out = Path(__file__).resolve().parent / "deep"
    out.mkdir(exist_ok=True)
    for n in [int(a) for a in sys.argv[1:]] or [10, 100, 1000, 2000, 5000, 10000]:
        (out / f"mlp_{n}.net").write_text(deep_mlp(n))
