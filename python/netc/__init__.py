"""netc from Python: compile a .net file, train it on numpy arrays, predict, differentiate.

    import netc
    m = netc.compile("examples/digits_mlp.net")
    losses = m.fit(x=x_train, y=y_train)      # the file's train block gives the defaults
    scores = m.predict(x_test)                # inference, float32 [N, 10]

The compiler and the compiled code are netc's own (the library the `netc` command uses):
weights saved here load in `netc predict --load` and `netc run --load/--resume`, and back.
"""

from ._netc import CompileError, NetcError, Tensors, __version__
from ._netc import Model as _Model
from . import _progress

__all__ = [
    "compile",
    "load",
    "Model",
    "CompileError",
    "NetcError",
    "Classifier",
    "Regressor",
    "__version__",
]


class Model(_Model):
    """One model of a .net file with its parameters (see `netc.compile`).

    Attributes: `params`, `state`, `optimizer_state` (mappings of numpy views), `inputs`,
    `outputs` (name -> shape, None for the batch axis), `fields` (what `fit` takes),
    `train_settings` (the train block: the defaults of `fit`), `steps`, `history`.
    """

    def fit(
        self,
        x=None,
        y=None,
        *,
        steps=None,
        epochs=None,
        batch=None,
        lr=None,
        seed=None,
        callback=None,
        progress=None,
        **fields,
    ):
        """Train from the current parameters and return the loss of every step (float32).

        `x` is the model's input and `y` the target the loss reads (for a file whose fields
        have other names, pass them by name: `fit(tokens=..., tags=..., mask=...)`). With no
        arrays at all the file's data block is used, as `netc run` does. `steps`/`epochs`,
        `batch`, `lr` override the train block; `seed` orders the data (the first `fit` of a
        model compiled with the same seed as `netc run` draws the same batches, so the weights
        come out bit-identical). `callback(step, loss)` runs after every step; returning False
        stops. `progress`: draw a bar (default: only on a terminal or in a notebook).

        Ctrl-C (KeyboardInterrupt) stops after the current step: the model keeps that step's
        weights, `m.history` has the losses so far, and the KeyboardInterrupt is raised.
        """
        arrays = self._fields(x, y, fields, "fit")
        bar = _progress.Bar() if _progress.wanted(progress) else None
        return self._fit(
            arrays or None,
            steps=steps,
            epochs=epochs,
            batch=batch,
            lr=lr,
            seed=seed,
            callback=callback,
            bar=bar,
        )

    def loss_and_grads(self, x=None, y=None, *, training=True, **fields):
        """The train block's loss on these arrays (one batch of all of them) and its gradient
        with respect to every parameter: `(loss, {name: array})`.

        `training=True` differentiates the loss a train step differentiates (batch
        statistics; dropout draws what the next `fit` step would); `training=False` the
        loss in inference mode. Neither changes the model's state."""
        arrays = self._fields(x, y, fields, "loss_and_grads")
        return self._loss_and_grads(arrays, training=training)

    def evaluate(self, x=None, y=None, **fields):
        """The train block's loss and metrics: on these arrays, or (none given) on the data
        block's training set and, as `test_loss`, `test_accuracy`, …, its test set."""
        return self._evaluate(self._fields(x, y, fields, "evaluate") or None)

    def _fields(self, x, y, fields, what):
        """`x` and `y` renamed to the fields they stand for, beside the named ones."""
        arrays = dict(fields)
        if self.train is None and (arrays or x is not None or y is not None):
            raise TypeError(
                f"{what}(): model {self.name} has no train block in its file, so there is no loss "
                "to train on or differentiate"
            )
        for alias, value, pick in (("x", x, _input_field), ("y", y, _target_field)):
            if value is None:
                continue
            name = pick(self, alias, what)
            if name in arrays:
                raise TypeError(f"{what}() got `{name}` twice (as {alias}= and {name}=)")
            arrays[name] = value
        return arrays

    def __reduce__(self):
        raise TypeError(
            "a netc Model is not picklable; save its weights with m.save(path) and "
            "netc.load(net_file, path) them"
        )


def _input_field(model, alias, what):
    """The field `x` stands for: the model's only input."""
    fields = model.fields
    if alias in fields:
        return alias
    inputs = [n for n, f in fields.items() if f["model_input"]]
    if len(inputs) != 1:
        raise TypeError(
            f"{what}(): model {model.name} has {len(inputs)} inputs ({', '.join(inputs)}); "
            "pass each by name"
        )
    return inputs[0]


def _target_field(model, alias, what):
    """The field `y` stands for: the only field the loss reads that is not a model input."""
    fields = model.fields
    if not fields:
        raise TypeError(f"{what}(): model {model.name} has no train block, so it reads no targets")
    if alias in fields:
        return alias
    targets = [n for n, f in fields.items() if not f["model_input"] and f["required"]]
    if len(targets) != 1:
        raise TypeError(
            f"{what}(): train {model.train} reads {len(targets)} fields besides the model's "
            f"inputs ({', '.join(targets)}); pass each by name"
        )
    return targets[0]


def compile(path=None, *, source=None, model=None, train=None, seed=None, data_dir=None, name=None):
    """Compile a .net file (or its text, `source=`) into a `Model`.

    `model=` and `train=` choose among several in one file; `seed=` draws the initial
    parameters (default: the train block's seed, as `netc run`); `data_dir=` is where the
    data block's files are (default: the file's folder). A source that does not compile
    raises `CompileError`, whose message is netc's diagnostic and which has `line` and
    `column`.
    """
    return Model(
        path, source=source, model=model, train=train, seed=seed, data_dir=data_dir, name=name
    )


def load(path, weights, **options):
    """`compile(path, **options)` with the weights of a file written by `netc run --save` or
    `Model.save` (a checkpoint's optimizer state and step count too)."""
    m = compile(path, **options)
    m.load_weights(weights)
    return m


from .sklearn import Classifier, Regressor  # noqa: E402  (needs compile above)
