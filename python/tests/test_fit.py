"""Model.fit: the same training as `netc run` (bit for bit with the same seed), settings from
the train block or the keywords, callbacks, the progress bar, continuing training."""

import io
import math
import warnings

import numpy as np
import pytest

import netc
from netc import _progress

from conftest import EXAMPLES, read_safetensors


def test_fit_on_the_data_block_is_netc_run_bit_for_bit(tmp_path, cli_json, mlp_file):
    report = cli_json("run", mlp_file, "--save", tmp_path / "cli.safetensors")
    m = netc.compile(mlp_file)
    losses = m.fit()
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()
    assert len(losses) == report["steps"] == m.steps == 940
    assert losses.dtype == np.float32 and losses[-1] == np.float32(report["final_loss"])
    scores = m.evaluate()
    assert scores["test_accuracy"] == report["test_accuracy"] > 0.9
    assert scores["accuracy"] == report["train_accuracy"]


def test_fit_on_arrays_reaches_netc_runs_weights_and_accuracy(tmp_path, cli_json, digits, mlp_file):
    x_train, y_train, x_test, y_test = digits
    report = cli_json("run", mlp_file, "--seed", 7, "--save", tmp_path / "cli.safetensors")
    m = netc.compile(mlp_file, seed=7)
    m.fit(x=x_train, y=y_train)
    cli_weights, meta = read_safetensors(tmp_path / "cli.safetensors")
    for name, value in m.params.items():
        assert np.array_equal(value, cli_weights[name]), name
    assert meta["netc.checkpoint"] == "step=940 seed=7"
    accuracy = m.evaluate(x=x_test, y=y_test)["accuracy"]
    assert accuracy == report["test_accuracy"]
    assert np.mean(np.argmax(m.predict(x_test), axis=1) == y_test) == pytest.approx(accuracy)


def test_sklearn_digits_are_the_same_data(digits):
    sklearn = pytest.importorskip("sklearn.datasets")
    x, y = sklearn.load_digits(return_X_y=True)
    x_train, y_train, _, _ = digits
    assert np.array_equal((x[:1500] / 16).astype(np.float32), x_train)
    assert np.array_equal(y[:1500], y_train)


def test_keywords_override_the_train_block(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    assert len(m.fit(x=x, y=y, steps=30)) == 30
    assert len(m.fit(x=x, y=y, epochs=2, batch=100)) == 2 * 15
    assert m.steps == 60
    with pytest.raises(TypeError, match="steps= or epochs="):
        m.fit(x=x, y=y, steps=3, epochs=1)
    with pytest.raises(ValueError, match="batch must be at least 1"):
        m.fit(x=x, y=y, batch=0)
    with pytest.raises(ValueError, match="lr must be"):
        m.fit(x=x, y=y, lr=float("nan"))


def test_lr_zero_changes_nothing_and_seed_orders_the_data(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    before = m.params.copy()
    m.fit(x=x, y=y, steps=5, lr=0.0)
    for name, value in m.params.items():
        assert np.array_equal(value, before[name])
    a, b = netc.compile(mlp_file), netc.compile(mlp_file)
    la = a.fit(x=x, y=y, steps=20, seed=1)
    lb = b.fit(x=x, y=y, steps=20, seed=2)
    assert not np.array_equal(la, lb)  # other batches
    c = netc.compile(mlp_file)
    assert np.array_equal(c.fit(x=x, y=y, steps=20, seed=1), la)


def test_fit_continues_from_the_current_weights(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    first = m.fit(x=x, y=y, epochs=3)
    second = m.fit(x=x, y=y, epochs=1)
    assert second.mean() < first[:47].mean() / 2
    assert m.steps == 4 * 47
    assert np.array_equal(m.history, second)
    m.reset()
    assert m.steps == 0
    assert np.array_equal(m.fit(x=x, y=y, epochs=3), first)


def test_named_fields_and_the_x_y_aliases():
    m = netc.compile(EXAMPLES / "tagging.net")
    tokens = np.load(EXAMPLES / "data/tagging/tokens.npy")
    tags = np.load(EXAMPLES / "data/tagging/tags.npy").astype(np.int64)
    mask = np.load(EXAMPLES / "data/tagging/mask.npy").astype(np.float32)
    losses = m.fit(tokens=tokens, tags=tags, mask=mask, steps=200)
    assert losses[-20:].mean() < losses[:20].mean() / 2
    with pytest.raises(TypeError, match="reads 2 fields besides the model's inputs"):
        m.fit(x=tokens, y=tags)
    with pytest.raises(TypeError, match="got `tokens` twice"):
        m.fit(x=tokens, tokens=tokens, tags=tags, mask=mask)
    scores = m.evaluate(tokens=tokens, tags=tags, mask=mask)
    assert set(scores) == {"loss", "accuracy(logits, tags, mask)"} or set(scores) == {"loss", "accuracy"}


def test_callback_sees_every_step_and_false_stops(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    seen = []

    def callback(step, loss):
        seen.append((step, loss))
        if step == 25:
            return False

    losses = m.fit(x=x, y=y, callback=callback)
    assert [s for s, _ in seen] == list(range(1, 26))
    assert np.array_equal(np.float32([l for _, l in seen]), losses)
    assert m.steps == 25 and len(m.history) == 25


def test_an_exception_in_the_callback_stops_after_that_step_and_propagates(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)

    def callback(step, loss):
        if step == 7:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        m.fit(x=x, y=y, callback=callback)
    assert m.steps == 7 and len(m.history) == 7
    # The model is usable afterwards.
    assert m.predict(x[:3]).shape == (3, 10)


def test_a_callback_cannot_use_the_model_it_trains_but_views_show_live_values(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    w = m.params["dense_2.W"]
    norms = []

    def callback(step, loss):
        norms.append(float(np.linalg.norm(w)))
        if step == 3:
            m.predict(x[:1])

    with pytest.raises(netc.NetcError, match="busy in this thread"):
        m.fit(x=x, y=y, callback=callback)
    assert len(set(norms)) == 3  # the view changed after each step


def test_the_progress_bar_only_when_asked_or_on_a_terminal(mlp_file, digits, capsys):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    m.fit(x=x, y=y, steps=10)
    assert capsys.readouterr().err == ""  # pytest's stderr is not a terminal
    m.fit(x=x, y=y, steps=10, progress=True)
    err = capsys.readouterr().err
    assert "step 10/10" in err and "loss" in err and "samples/s" in err
    assert err.endswith("\r")  # the bar erases itself


def test_wanted_follows_the_stream():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    import sys

    saved = sys.stderr
    try:
        sys.stderr = Tty()
        assert _progress.wanted(None)
        sys.stderr = io.StringIO()
        assert not _progress.wanted(None)
        assert _progress.wanted(True) and not _progress.wanted(False)
    finally:
        sys.stderr = saved


def test_a_missing_data_file_falls_back_with_a_warning():
    m = netc.compile(EXAMPLES / "mlp.net")  # MNIST files are not in the repository
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = m.fit(steps=3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert any("uses its `otherwise` source" in str(w.message) for w in caught)


def test_a_model_without_train_block_cannot_fit():
    m = netc.compile(source="model tiny(x: [B, 2]) -> [B, 1] { x |> dense(1) }")
    with pytest.raises(TypeError, match="no train block"):
        m.fit(x=np.ones((4, 2)), y=np.ones((4, 1)))
    with pytest.raises(netc.NetcError, match="no train block"):
        m.fit()
