"""Arrays in: dtypes and layouts converted once or refused with the field and the shape it
needs; parameters as read-only views of the model's buffers, assigned with checks."""

import gc

import numpy as np
import pytest

import netc


@pytest.fixture
def m(mlp_file):
    return netc.compile(mlp_file)


def test_wrong_feature_count_names_the_field_and_the_shape(m, digits):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match=r"`x` has shape \(1500, 63\), but train digits_mlp reads it as \(N, 64\)"):
        m.fit(x=x[:, :63], y=y)
    with pytest.raises(ValueError, match=r"`x` has shape \(5, 63\), but model digits_mlp reads it as \(N, 64\)"):
        m.predict(x[:5, :63])


def test_a_single_sample_needs_its_batch_axis(m, digits):
    x = digits[0]
    with pytest.raises(ValueError, match=r"add the batch axis: x\[None\]"):
        m.predict(x[0])
    assert m.predict(x[0][None]).shape == (1, 10)


def test_class_indices_must_be_integers_in_range(m, digits):
    x, y, _, _ = digits
    with pytest.raises(TypeError, match=r"`labels` has dtype float64, but train digits_mlp reads it as class indices"):
        m.fit(x=x, y=y.astype(np.float64))
    bad = y.copy()
    bad[10] = 10
    with pytest.raises(ValueError, match="label 10 at .* is out of range for 10 classes"):
        m.fit(x=x, y=bad)
    bad[10] = -1
    with pytest.raises(ValueError, match="not a class index"):
        m.fit(x=x, y=bad)
    for dtype in (np.int8, np.uint8, np.int32, np.int64, np.uint64):
        m.loss_and_grads(x=x[:8], y=y[:8].astype(dtype))


def test_non_numeric_arrays_are_type_errors(m, digits):
    x, y, _, _ = digits
    with pytest.raises(TypeError, match="`x` has dtype <U1"):
        m.predict(np.full((2, 64), "a"))
    with pytest.raises(TypeError, match="`x` has dtype complex128"):
        m.predict(np.ones((2, 64), np.complex128))
    with pytest.raises(TypeError, match="`x` cannot be read as a numpy array"):
        m.predict([[1, 2], [3]])


def test_samples_must_agree_and_fields_must_exist(m, digits):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match="has 1499 samples"):
        m.fit(x=x, y=y[:-1])
    with pytest.raises(ValueError, match=r"(?s)reads no field named `lables`.*did you mean `labels`"):
        m.fit(x=x, lables=y)
    with pytest.raises(ValueError, match="reads the field `labels` .*which was not given"):
        m.fit(x=x)


def test_other_layouts_and_dtypes_are_converted_once(m, digits):
    x = digits[0][:20]
    expected = m.predict(x)
    wide = np.zeros((20, 128), np.float32)
    wide[:, ::2] = x
    assert not wide[:, ::2].flags.c_contiguous
    assert np.array_equal(m.predict(wide[:, ::2]), expected)
    assert np.array_equal(m.predict(np.asfortranarray(x)), expected)
    assert np.array_equal(m.predict(x.astype(np.float64)), expected)
    assert np.array_equal(m.predict(x.tolist()), expected)
    pixels = (x * 16).round().astype(np.uint8)  # integer inputs are numbers
    assert np.array_equal(m.predict(pixels / 16), expected)
    assert m.predict(pixels).shape == (20, 10)


def test_params_are_read_only_views_that_keep_the_model_alive(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    w = m.params["dense_1.W"]
    assert w.dtype == np.float32 and w.shape == (64, 64) and not w.flags.writeable
    assert w.base is m
    with pytest.raises(ValueError, match="read-only"):
        w[0, 0] = 1.0
    with pytest.raises(ValueError):
        w.flags.writeable = True
    before = w.copy()
    m.fit(x=x, y=y, steps=5)
    assert not np.array_equal(w, before)  # the view shows the trained values
    snapshot = w.copy()
    del m
    gc.collect()
    assert np.array_equal(w, snapshot)  # the view keeps the buffer alive


def test_assigning_params_checks_shape_and_dtype(m, digits):
    x = digits[0][:4]
    zeros = {name: np.zeros(v.shape, np.float64) for name, v in m.params.items()}
    m.params = zeros
    assert np.array_equal(m.predict(x), np.zeros((4, 10), np.float32))
    m.params["dense_2.b"] = np.arange(10, dtype=np.float32)
    assert np.array_equal(m.predict(x), np.tile(np.arange(10, dtype=np.float32), (4, 1)))
    with pytest.raises(ValueError, match=r"`dense_2.b` has shape \(9,\), but model digits_mlp reads it as \(10,\)"):
        m.params["dense_2.b"] = np.zeros(9, np.float32)
    with pytest.raises(TypeError, match="`dense_2.b` has dtype int64"):
        m.params["dense_2.b"] = np.zeros(10, np.int64)
    with pytest.raises(KeyError, match="did you mean `dense_2.b`"):
        m.params["dense_2.bb"] = np.zeros(10, np.float32)
    with pytest.raises(TypeError):
        del m.params["dense_2.b"]
    # All or nothing: a bad tensor leaves the others unwritten.
    with pytest.raises(ValueError):
        m.params.update({"dense_2.b": np.ones(10, np.float32), "dense_1.b": np.ones(3, np.float32)})
    assert np.array_equal(m.params["dense_2.b"], np.arange(10, dtype=np.float32))


def test_params_behave_as_a_mapping(m):
    p = m.params
    assert len(p) == 4 and "dense_1.W" in p and "nope" not in p
    assert [k for k in p] == list(p.keys())
    assert {k: v.shape for k, v in p.items()} == {k: v.shape for k, v in zip(p.keys(), p.values())}
    assert p.get("nope") is None and p.get("dense_1.b").shape == (64,)
    assert dict(p).keys() == set(p.keys())
    assert "dense_1.W': (64, 64)" in repr(p)
    assert len(m.optimizer_state) == 4  # momentum: a velocity per parameter
    assert len(m.state) == 0
