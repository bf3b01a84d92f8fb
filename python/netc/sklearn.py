"""scikit-learn estimators over a .net file, so a netc model drops into `cross_val_score`,
`GridSearchCV` and `Pipeline`:

    clf = netc.Classifier("examples/digits_mlp.net", epochs=10)
    cross_val_score(clf, X, y, cv=5)

The file's model and train block are used as written; the keyword arguments override its
settings (they are the estimator's parameters, so `set_params`/`clone` work). `fit` compiles
a fresh model each time (scikit-learn's contract: fitting starts over); the fitted model is
`model_`. Each sample of `X` is reshaped to the model's input shape when the sizes agree (the
8x8 digits as 64 columns feed a `[B, 1, 8, 8]` CNN).
"""

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
except ImportError:  # scikit-learn is optional: the same interface without it

    class BaseEstimator:
        _param_names = ()

        def get_params(self, deep=True):
            return {k: getattr(self, k) for k in self._param_names}

        def set_params(self, **params):
            for k, v in params.items():
                if k not in self._param_names:
                    raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}")
                setattr(self, k, v)
            return self

        def __repr__(self):
            args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if v is not None)
            return f"{type(self).__name__}({args})"

    class ClassifierMixin:
        _estimator_type = "classifier"

        def score(self, X, y, sample_weight=None):
            right = self.predict(X) == np.asarray(y)
            return float(np.average(right, weights=sample_weight))

    class RegressorMixin:
        _estimator_type = "regressor"

        def score(self, X, y, sample_weight=None):
            y = np.asarray(y, dtype=np.float64)
            pred = np.asarray(self.predict(X), dtype=np.float64).reshape(y.shape)
            w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
            resid = np.average((y - pred) ** 2, weights=w, axis=0)
            total = np.average((y - np.average(y, weights=w, axis=0)) ** 2, weights=w, axis=0)
            return float(np.mean(1 - resid / total))


class _Estimator(BaseEstimator):
    _param_names = ("net", "source", "model", "train", "steps", "epochs", "batch", "lr", "seed", "data_dir", "progress")

    def __init__(
        self,
        net=None,
        *,
        source=None,
        model=None,
        train=None,
        steps=None,
        epochs=None,
        batch=None,
        lr=None,
        seed=None,
        data_dir=None,
        progress=False,
    ):
        self.net = net
        self.source = source
        self.model = model
        self.train = train
        self.steps = steps
        self.epochs = epochs
        self.batch = batch
        self.lr = lr
        self.seed = seed
        self.data_dir = data_dir
        self.progress = progress

    def _fit_model(self, X, y):
        from . import compile, _input_field, _target_field

        m = compile(
            self.net,
            source=self.source,
            model=self.model,
            train=self.train,
            seed=self.seed,
            data_dir=self.data_dir,
        )
        x_name = _input_field(m, "x", "fit")
        y_name = _target_field(m, "y", "fit")
        X = self._shape_x(m, X, x_name)
        y = np.asarray(y)
        if y.ndim == 1 and tuple(m.fields[y_name]["shape"][1:]) == (1,):
            y = y[:, None]  # one target value per sample
        m.fit(
            **{x_name: X, y_name: y},
            steps=self.steps,
            epochs=self.epochs,
            batch=self.batch,
            lr=self.lr,
            progress=self.progress,
        )
        self.model_ = m
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        return m

    @staticmethod
    def _shape_x(m, X, name):
        X = np.asarray(X)
        per_sample = tuple(d for d in m.fields[name]["shape"][1:])
        if X.ndim >= 1 and X.shape[1:] != per_sample and int(np.prod(X.shape[1:])) == int(np.prod(per_sample)):
            X = X.reshape((X.shape[0],) + per_sample)
        return X

    def _check_fitted(self):
        if not hasattr(self, "model_"):
            raise _not_fitted(type(self).__name__)

    def _outputs(self, X):
        self._check_fitted()
        m = self.model_
        name = next(iter(m.inputs))
        return m.predict(self._shape_x_input(m, X, name))

    @staticmethod
    def _shape_x_input(m, X, name):
        X = np.asarray(X)
        per_sample = tuple(m.inputs[name][1:])
        if X.ndim >= 1 and X.shape[1:] != per_sample and int(np.prod(X.shape[1:])) == int(np.prod(per_sample)):
            X = X.reshape((X.shape[0],) + per_sample)
        return X


def _not_fitted(name):
    try:
        from sklearn.exceptions import NotFittedError
    except ImportError:
        NotFittedError = AttributeError
    return NotFittedError(f"this {name} is not fitted yet: call fit(X, y) first")


class Classifier(ClassifierMixin, _Estimator):
    """A classifier from a .net file whose loss reads class indices (e.g. `cross_entropy`).

    `y` may hold any labels: they are numbered in sorted order (`classes_`), and the model's
    output must have room for that many classes. `predict` returns labels, `predict_proba`
    the softmax of the model's output, `decision_function` the output itself.
    """

    def fit(self, X, y):
        y = np.asarray(y)
        if y.ndim != 1:
            raise ValueError(f"y must be one label per sample (1-D), not shape {y.shape}")
        self.classes_, encoded = np.unique(y, return_inverse=True)
        from . import compile, _target_field

        probe = compile(self.net, source=self.source, model=self.model, train=self.train)
        room = probe.fields[_target_field(probe, "y", "fit")]["bound"]
        if room is None:
            raise ValueError(f"train {probe.train} does not read class indices: use netc.Regressor")
        if len(self.classes_) > room:
            raise ValueError(f"y has {len(self.classes_)} classes, but the model's output has room for {room}")
        self._fit_model(X, encoded.reshape(-1).astype(np.int64))
        return self

    def decision_function(self, X):
        return self._outputs(X)

    def predict_proba(self, X):
        scores = self._outputs(X)[:, : len(self.classes_)].astype(np.float64)
        scores -= scores.max(axis=1, keepdims=True)
        p = np.exp(scores)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        scores = self._outputs(X)[:, : len(self.classes_)]
        return self.classes_[np.argmax(scores, axis=1)]


class Regressor(RegressorMixin, _Estimator):
    """A regressor from a .net file whose loss reads float targets (e.g. `mse`). A 1-D `y`
    feeds a target of one value per sample, and `predict` then returns 1-D too."""

    def fit(self, X, y):
        y = np.asarray(y, dtype=np.float32)
        self._y_1d = y.ndim == 1
        self._fit_model(X, y)
        return self

    def predict(self, X):
        out = self._outputs(X)
        return out.reshape(-1) if self._y_1d and out.ndim == 2 and out.shape[1] == 1 else out
