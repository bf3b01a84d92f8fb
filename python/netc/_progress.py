"""The progress bar of `Model.fit`: drawn only on a terminal or in a notebook (never into a
log file or a pipe), redrawn at most ten times a second by the training loop."""

import sys
import time


def wanted(progress):
    """True to draw a bar: `progress` if given, else whether stderr is a terminal or a
    notebook's output."""
    if progress is not None:
        return bool(progress)
    stream = sys.stderr
    try:
        if stream.isatty():
            return True
    except (AttributeError, ValueError):
        return False
    # Jupyter's kernel replaces stderr with a stream that renders "\r" as a redraw.
    return type(stream).__module__.startswith("ipykernel")


class Bar:
    """`step 1200/3000 [#########.............] loss 0.4312  18403 samples/s`."""

    width = 30

    def __init__(self, stream=None):
        self.stream = stream if stream is not None else sys.stderr
        self.total = 0
        self.started = time.monotonic()
        self.drawn = 0

    def start(self, total):
        self.total = max(int(total), 1)
        self.started = time.monotonic()
        self.update(0, float("nan"), 0.0)

    def update(self, step, loss, samples_per_second):
        done = min(step / self.total, 1.0)
        filled = int(done * self.width)
        bar = "#" * filled + "." * (self.width - filled)
        elapsed = time.monotonic() - self.started
        eta = elapsed / done - elapsed if done > 0 else float("nan")
        line = f"step {step}/{self.total} [{bar}] loss {loss:.4f}  {samples_per_second:.0f} samples/s"
        if eta == eta:
            line += f"  eta {eta:.0f} s"
        pad = max(self.drawn - len(line), 0)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.drawn = len(line)

    def close(self):
        self.stream.write("\r" + " " * self.drawn + "\r")
        self.stream.flush()
