"""The scikit-learn estimators: the README's example runs, and the estimators work where
scikit-learn puts estimators (clone, cross_val_score, Pipeline, grid search)."""

import re

import numpy as np
import pytest

import netc

from conftest import EXAMPLES, REPO

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer  # noqa: E402


def test_the_readme_example_runs(capsys, monkeypatch):
    readme = (REPO / "python" / "README.md").read_text()
    example = re.search(r"## Ten lines.*?```python\n(.*?)```", readme, re.S).group(1)
    assert len(example.strip().splitlines()) <= 12
    monkeypatch.chdir(REPO)
    exec(compile(example, "README.md", "exec"), {})
    accuracy = float(re.search(r"test accuracy (\S+)", capsys.readouterr().out).group(1))
    assert accuracy > 0.9


@pytest.fixture(scope="module")
def digits_xy():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


def test_classifier_fits_predicts_and_scores(digits_xy):
    X, y = digits_xy
    clf = netc.Classifier(str(EXAMPLES / "digits_mlp.net"), epochs=5)
    assert clf.fit(X[:1500], y[:1500]) is clf
    assert list(clf.classes_) == list(range(10))
    pred = clf.predict(X[1500:])
    assert pred.shape == (297,) and clf.score(X[1500:], y[1500:]) == np.mean(pred == y[1500:]) > 0.85
    proba = clf.predict_proba(X[1500:])
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-6)
    assert np.array_equal(np.argmax(proba, axis=1), pred)
    assert clf.n_features_in_ == 64 and clf.model_.steps == 5 * 47


def test_labels_of_any_kind_map_to_class_indices(digits_xy):
    X, y = digits_xy
    names = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])
    clf = netc.Classifier(str(EXAMPLES / "digits_mlp.net"), epochs=3).fit(X[:1000], names[y[:1000]])
    assert set(clf.predict(X[1000:1100])) <= set(names)
    assert clf.score(X[1000:], names[y[1000:]]) > 0.8
    with pytest.raises(ValueError, match="room for 10"):
        netc.Classifier(str(EXAMPLES / "digits_mlp.net")).fit(X[:20], np.arange(20))


def test_clone_and_params(digits_xy):
    clf = netc.Classifier(str(EXAMPLES / "digits_mlp.net"), epochs=2, lr=0.1)
    assert clf.get_params()["epochs"] == 2 and clf.get_params()["lr"] == 0.1
    twin = clone(clf)
    assert twin.get_params() == clf.get_params() and not hasattr(twin, "model_")
    twin.set_params(epochs=1)
    assert twin.epochs == 1 and clf.epochs == 2
    with pytest.raises(Exception, match="not fitted"):
        twin.predict(digits_xy[0][:2])


def test_cross_validation_and_pipelines(digits_xy):
    X, y = digits_xy
    clf = netc.Classifier(str(EXAMPLES / "digits_mlp.net"), epochs=3)
    scores = cross_val_score(clf, X[:900], y[:900], cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    pipe = make_pipeline(FunctionTransformer(np.sqrt), netc.Classifier(str(EXAMPLES / "digits_mlp.net"), epochs=3))
    assert pipe.fit(X[:900], y[:900]).score(X[900:1200], y[900:1200]) > 0.8
    search = GridSearchCV(clf, {"lr": [0.01, 0.05]}, cv=2).fit(X[:600], y[:600])
    assert search.best_params_["lr"] in (0.01, 0.05)


def test_a_cnn_takes_flat_rows(digits_xy):
    X, y = digits_xy
    clf = netc.Classifier(str(EXAMPLES / "digits_cnn.net"), steps=100).fit(X[:1500], y[:1500])
    assert clf.score(X[1500:], y[1500:]) > 0.7


def test_regressor():
    x = np.load(EXAMPLES / "data/regression/x.npy")
    y = np.load(EXAMPLES / "data/regression/y.npy")[:, 0]
    reg = netc.Regressor(str(EXAMPLES / "regression.net"), steps=1500).fit(x[:800], y[:800])
    pred = reg.predict(x[800:])
    assert pred.shape == (224,)
    assert reg.score(x[800:], y[800:]) > 0.8
    with pytest.raises(ValueError, match="does not read class indices"):
        netc.Classifier(str(EXAMPLES / "regression.net")).fit(x[:10], np.arange(10) % 2)

