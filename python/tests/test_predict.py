"""predict and forward: equal to `netc predict`, in inference mode, on any number of samples."""

import numpy as np
import pytest

import netc

from conftest import EXAMPLES


@pytest.fixture(scope="module")
def trained(tmp_path_factory, cli):
    """digits_mlp trained by the CLI: (weights file, model loaded from it)."""
    weights = tmp_path_factory.mktemp("w") / "mlp.safetensors"
    cli("run", EXAMPLES / "digits_mlp.net", "--steps", 200, "--save", weights)
    return weights, netc.load(EXAMPLES / "digits_mlp.net", weights)


def test_predict_equals_netc_predict(tmp_path, cli, trained, digits):
    weights, m = trained
    _, _, x_test, _ = digits
    np.save(tmp_path / "x.npy", x_test)
    cli("predict", EXAMPLES / "digits_mlp.net", "--load", weights, "--input", tmp_path / "x.npy", "-o", tmp_path / "out.npy")
    expected = np.load(tmp_path / "out.npy")
    got = m.predict(x_test)
    assert got.dtype == np.float32 and got.shape == (297, 10)
    assert np.array_equal(got, expected)
    # The reference interpreter (f64, rounded per op) agrees closely.
    cli(
        "predict", EXAMPLES / "digits_mlp.net", "--load", weights, "--input", tmp_path / "x.npy",
        "-o", tmp_path / "interp.npy", "--engine", "interp",
    )
    np.testing.assert_allclose(got, np.load(tmp_path / "interp.npy"), rtol=1e-4, atol=1e-5)


def test_batches_and_single_samples_agree(trained, digits):
    _, m = trained
    _, _, x, _ = digits
    whole = m.predict(x)
    np.testing.assert_allclose(m.predict(x, batch=7), whole, rtol=1e-5, atol=1e-6)
    one = np.stack([m.predict(x[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(one, whole[:5], rtol=1e-5, atol=1e-6)


def test_forward_gives_every_output_by_name(trained, digits):
    _, m = trained
    _, _, x, _ = digits
    out = m.forward(x=x[:4])
    assert list(out) == ["scores"] and np.array_equal(out["scores"], m.predict(x[:4]))
    with pytest.raises(TypeError, match="has no input `z`"):
        m.forward(x=x[:4], z=x[:4])
    with pytest.raises(TypeError, match="needs the input `x`"):
        m.forward()


def test_no_samples_give_an_empty_result(trained):
    _, m = trained
    assert m.predict(np.zeros((0, 64), np.float32)).shape == (0, 10)


def test_predict_leaves_the_parameters_alone(trained, digits):
    _, m = trained
    before = m.params.copy()
    m.predict(digits[2])
    for name, value in m.params.items():
        assert np.array_equal(value, before[name])


def test_several_outputs_and_inputs():
    source = """
model two(a: [B, 3], b: [B, 3]) -> (s: [B, 3], p: [B, 3]) {
  let s = a + b
  let p = a * b
}
"""
    m = netc.compile(source=source)
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.ones((2, 3), np.float32) * 2
    out = m.forward(a=a, b=b)
    assert np.array_equal(out["s"], a + b) and np.array_equal(out["p"], a * b)
    assert np.array_equal(m.predict({"a": a, "b": b}, output="p"), a * b)
    with pytest.raises(TypeError, match="has 2 inputs"):
        m.predict(a)
    with pytest.raises(ValueError, match="has no output `q`"):
        m.predict({"a": a, "b": b}, output="q")
    with pytest.raises(ValueError, match="`b` has 3 samples, but `a` has 2"):
        m.forward(a=a, b=np.ones((3, 3)))


def test_inference_mode_uses_running_statistics_and_no_dropout(digits):
    m = netc.compile(EXAMPLES / "digits_bn_cnn.net")
    x, y, x_test, _ = digits
    m.fit(x=x.reshape(-1, 1, 8, 8), y=y, steps=60)
    xt = x_test.reshape(-1, 1, 8, 8)
    a = m.predict(xt[:16])
    assert np.array_equal(a, m.predict(xt[:16]))  # no dropout: the same twice
    # Running statistics, not the batch's: a sample scores the same alone as in a batch.
    np.testing.assert_allclose(m.predict(xt[3:4])[0], a[3], rtol=1e-5, atol=1e-5)
