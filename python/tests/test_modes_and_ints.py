"""What main's #16 and #17 added, seen from Python: models with `int` inputs (token ids of
examples/text_classify.net) take integer arrays of any width and refuse floats and bad ids;
models with state and randomness (examples/digits_bn_cnn.net: batch norm, dropout) train as
`netc run` does with the same seed, state included, and run in inference mode in predict and
forward."""

import numpy as np
import pytest

import netc

from conftest import EXAMPLES, read_safetensors

TEXT = EXAMPLES / "text_classify.net"
BN = EXAMPLES / "digits_bn_cnn.net"


@pytest.fixture(scope="module")
def topics():
    """The data of text_classify.net as stored: uint8 token ids [2000, 16], topics [2000]."""
    return np.load(EXAMPLES / "data/topics_tokens.npy"), np.load(EXAMPLES / "data/topics_labels.npy")


def test_fields_and_inputs_say_which_arrays_are_integers():
    m = netc.compile(TEXT)
    assert m.fields["tokens"] == {
        "shape": (None, 16),
        "integer": True,
        "bound": 64,  # the embedding's rows
        "model_input": True,
        "required": True,
    }
    assert m.fields["labels"]["integer"] and m.fields["labels"]["bound"] == 4


def test_fit_on_integer_arrays_is_netc_run_bit_for_bit(tmp_path, cli, topics):
    tokens, labels = topics
    cli("run", TEXT, "--steps", 60, "--seed", 3, "--quiet", "--save", tmp_path / "cli.safetensors")
    m = netc.compile(TEXT, seed=3)
    # The data block's training set is the first 1600 sentences.
    m.fit(tokens=tokens[:1600].astype(np.int64), labels=labels[:1600].astype(np.int32), steps=60)
    m.save(tmp_path / "py.safetensors")
    assert (tmp_path / "py.safetensors").read_bytes() == (tmp_path / "cli.safetensors").read_bytes()


def test_predict_takes_any_integer_width_and_equals_netc_predict(tmp_path, cli, topics):
    tokens, labels = topics
    m = netc.compile(TEXT)
    m.fit(tokens=tokens[:1600], labels=labels[:1600], steps=30)
    m.save(tmp_path / "w.safetensors")
    np.save(tmp_path / "tokens.npy", tokens[1600:].astype(np.int64))
    cli("predict", TEXT, "--load", tmp_path / "w.safetensors", "--input", tmp_path / "tokens.npy", "-o", tmp_path / "p.npy")
    expected = np.load(tmp_path / "p.npy")
    for dtype in (np.uint8, np.int16, np.int32, np.int64, np.uint64):
        assert np.array_equal(m.predict(tokens[1600:].astype(dtype)), expected), dtype
    assert np.array_equal(m.forward(tokens=tokens[1600:])["scores"], expected)
    # The embedding has a gradient; the ids themselves are not differentiated.
    _, grads = m.loss_and_grads(tokens=tokens[:8], labels=labels[:8])
    assert set(grads) == set(m.params)
    [table] = [n for n, v in m.params.items() if v.shape == (64, 16)]
    assert grads[table].any()


def test_float_arrays_for_an_int_input_are_type_errors(topics):
    tokens, labels = topics
    m = netc.compile(TEXT)
    floats = tokens[:4].astype(np.float32)
    with pytest.raises(TypeError, match=r"`tokens` has dtype float32, but model text_classify reads it as integers \(it is declared int\).*astype\(numpy.int64\)"):
        m.predict(floats)
    with pytest.raises(TypeError, match=r"`tokens` has dtype float64, but train text_classify reads it as integers"):
        m.fit(tokens=tokens[:4].astype(np.float64), labels=labels[:4], steps=1)
    with pytest.raises(TypeError, match="`tokens` has dtype bool"):
        m.forward(tokens=tokens[:4] > 3)
    assert m.steps == 0


def test_ids_out_of_range_are_value_errors_naming_the_sample(topics):
    tokens, labels = topics
    m = netc.compile(TEXT)
    bad = tokens[:4].astype(np.int64)
    bad[2, 5] = 64
    with pytest.raises(ValueError, match=r"value 64 at item 2 of field `tokens` is not a valid id: it indexes an axis of 64"):
        m.predict(bad)
    with pytest.raises(ValueError, match=r"value 64 at .* is not a valid id"):
        m.fit(tokens=bad, labels=labels[:4], steps=1)
    bad[2, 5] = -1
    with pytest.raises(ValueError, match=r"value -1 at item 2 of field `tokens` is not a valid id"):
        m.forward(tokens=bad)
    bad[2, 5] = 2**40  # would round in float32: refused before it is converted
    with pytest.raises(ValueError, match=r"`tokens` holds 1099511627776.*exact only up to 2\^24"):
        m.predict(bad)
    assert m.steps == 0


def test_fit_with_batch_norm_and_dropout_is_netc_run_state_and_seed_included(tmp_path, cli, digits):
    x, y, _, _ = digits
    cli("run", BN, "--steps", 40, "--seed", 11, "--quiet", "--save", tmp_path / "cli.safetensors")
    m = netc.compile(BN, seed=11)
    assert m.seed == 11
    m.fit(x=x.reshape(-1, 1, 8, 8), y=y, steps=40)
    cli_weights, meta = read_safetensors(tmp_path / "cli.safetensors")
    assert meta["netc.checkpoint"] == "step=40 seed=11"
    assert len(m.state) == 2
    for name, value in m.state.items():  # the running statistics moved, as netc's did
        assert np.array_equal(value, cli_weights[name]), name
        assert not np.array_equal(value, netc.compile(BN, seed=11).state[name]), name
    for name, value in m.params.items():
        assert np.array_equal(value, cli_weights[name]), name


def test_the_seed_draws_dropout_masks_and_data_order(digits):
    x, y, _, _ = digits
    x = x.reshape(-1, 1, 8, 8)
    a, b = netc.compile(BN, seed=1), netc.compile(BN, seed=1)
    b.params.update(a.params)  # the same start; only fit's seed differs below
    la = a.fit(x=x, y=y, steps=10, seed=5)
    lb = b.fit(x=x, y=y, steps=10, seed=6)
    assert not np.array_equal(la, lb)
    c = netc.compile(BN, seed=1)
    assert np.array_equal(c.fit(x=x, y=y, steps=10, seed=5), la)


def test_forward_is_inference_mode_and_leaves_the_state_alone(digits):
    x, y, x_test, _ = digits
    m = netc.compile(BN)
    m.fit(x=x.reshape(-1, 1, 8, 8), y=y, steps=30)
    state = m.state.copy()
    xt = x_test.reshape(-1, 1, 8, 8)[:12]
    out = m.forward(x=xt)["scores"]
    assert np.array_equal(out, m.forward(x=xt)["scores"])  # no dropout
    assert np.array_equal(out, m.predict(xt))
    # Running statistics, not the batch's: each sample alone scores as in the batch.
    alone = np.concatenate([m.forward(x=xt[i : i + 1])["scores"] for i in range(len(xt))])
    np.testing.assert_allclose(alone, out, rtol=1e-5, atol=1e-5)
    # The training-mode loss (batch statistics, dropout) differs from the inference one.
    train_loss, _ = m.loss_and_grads(x=xt, y=y[:12])
    infer_loss, _ = m.loss_and_grads(x=xt, y=y[:12], training=False)
    assert train_loss != infer_loss
    for name, value in m.state.items():
        assert np.array_equal(value, state[name]), name


def test_assigned_state_is_what_predict_and_save_use(tmp_path, cli, digits):
    x, y, x_test, _ = digits
    m = netc.compile(BN)
    m.fit(x=x.reshape(-1, 1, 8, 8), y=y, steps=20)
    xt = x_test.reshape(-1, 1, 8, 8)[:8]
    before = m.predict(xt)
    names = list(m.state)
    mean = next(n for n in names if "mean" in n)
    with pytest.raises(ValueError, match=rf"`{mean}` has shape \(3,\)"):
        m.state[mean] = np.zeros(3, np.float32)
    m.state[mean] = m.state[mean] + 1.0
    assert not np.array_equal(m.predict(xt), before)
    m.save(tmp_path / "w.safetensors")
    saved, _ = read_safetensors(tmp_path / "w.safetensors")
    assert np.array_equal(saved[mean], m.state[mean])
    back = netc.load(BN, tmp_path / "w.safetensors")
    assert np.array_equal(back.predict(xt), m.predict(xt))
