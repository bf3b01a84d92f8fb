"""loss_and_grads: against backpropagation written out in numpy (float64), against the
gradient netc's own train step applies (`netc run`, one full-batch SGD step), and in both
modes without changing the model's state."""

import numpy as np
import pytest

import netc

from conftest import EXAMPLES, read_safetensors

TINY = """
model tiny(x: [B, 4]) -> scores: [B, 3] {
  x |> dense(5) |> tanh |> dense(3)
}

data points {
  x: npy("x.npy")
  labels: npy("labels.npy", int)
  shuffle: false
}

train tiny {
  loss: cross_entropy(scores, labels) + 0.01 * l2()
  optimizer: sgd(lr: 1)
  steps: 1
  seed: 3
}
"""


def numpy_loss_and_grads(p, x, labels):
    """The loss above and its gradients, by hand in float64. dense(n) is x @ W + b; l2() is
    ½ΣW² over the weights (not the biases); cross_entropy averages −log softmax over the batch."""
    W1, b1, W2, b2 = (p[k].astype(np.float64) for k in ("dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"))
    x = x.astype(np.float64)
    h = np.tanh(x @ W1 + b1)
    s = h @ W2 + b2
    s = s - s.max(axis=1, keepdims=True)
    logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
    n = len(x)
    loss = -logp[np.arange(n), labels].mean() + 0.01 * 0.5 * ((W1**2).sum() + (W2**2).sum())
    ds = np.exp(logp)
    ds[np.arange(n), labels] -= 1
    ds /= n
    dW2 = h.T @ ds + 0.01 * W2
    dh = ds @ W2.T
    dz = dh * (1 - h**2)
    dW1 = x.T @ dz + 0.01 * W1
    return loss, {"dense_1.W": dW1, "dense_1.b": dz.sum(0), "dense_2.W": dW2, "dense_2.b": ds.sum(0)}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(16, 4)).astype(np.float32), rng.integers(0, 3, size=16)


def test_gradients_match_numpy_backpropagation(data):
    x, labels = data
    m = netc.compile(source=TINY)
    loss, grads = m.loss_and_grads(x=x, y=labels)
    want_loss, want = numpy_loss_and_grads(m.params, x, labels)
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert list(grads) == list(m.params)
    for name, g in grads.items():
        assert g.dtype == np.float32 and g.shape == m.params[name].shape
        np.testing.assert_allclose(g, want[name], rtol=1e-4, atol=1e-6, err_msg=name)


def test_gradients_are_what_netc_run_steps_by(tmp_path, cli, data):
    """One full-batch SGD step with lr 1 moves each parameter by exactly minus its gradient."""
    x, labels = data
    (tmp_path / "tiny.net").write_text(TINY)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "labels.npy", labels.astype(np.int64))
    cli("run", tmp_path / "tiny.net", "--save", tmp_path / "after.safetensors", "--quiet")
    after, _ = read_safetensors(tmp_path / "after.safetensors")
    m = netc.compile(tmp_path / "tiny.net")  # the same seed: the same initial parameters
    _, grads = m.loss_and_grads(x=x, y=labels)
    for name, before in m.params.items():
        step = before.astype(np.float64) - after[name]
        # `before - after` carries the rounding of the update: one ulp of the parameter.
        tolerance = 2 * np.spacing(np.abs(before)).max() + 1e-7
        np.testing.assert_allclose(step, grads[name], rtol=0, atol=tolerance, err_msg=name)
    # And fit does the same step.
    m.fit(x=x, labels=labels)
    for name, value in m.params.items():
        assert np.array_equal(value, after[name]), name


def test_loss_is_the_evaluated_loss(data):
    x, labels = data
    m = netc.compile(source=TINY)
    loss, _ = m.loss_and_grads(x=x, y=labels, training=False)
    assert loss == pytest.approx(m.evaluate(x=x, y=labels)["loss"], rel=1e-6)


def test_modes_differ_with_batch_norm_and_leave_the_state_alone(digits):
    x, y, _, _ = digits
    x = x.reshape(-1, 1, 8, 8)
    m = netc.compile(EXAMPLES / "digits_bn_cnn.net")
    m.fit(x=x, y=y, steps=20)
    state = m.state.copy()
    assert len(state) >= 2  # batch norm's running mean and variance
    train_loss, train_grads = m.loss_and_grads(x=x[:64], y=y[:64])
    infer_loss, infer_grads = m.loss_and_grads(x=x[:64], y=y[:64], training=False)
    assert train_loss != infer_loss
    assert set(train_grads) == set(infer_grads) == set(m.params)
    again, _ = m.loss_and_grads(x=x[:64], y=y[:64])
    assert again == train_loss  # the same random numbers (the next step's)
    for name, value in m.state.items():
        assert np.array_equal(value, state[name]), name


def test_gradients_need_every_field(data):
    x, labels = data
    m = netc.compile(source=TINY)
    with pytest.raises(ValueError, match="reads the field `labels`"):
        m.loss_and_grads(x=x)
    with pytest.raises(ValueError, match="hold no samples"):
        m.loss_and_grads(x=x[:0], y=labels[:0])
