"""Weights files are interchangeable with the CLI's: saved here, read by `netc predict
--load` and continued by `netc run --resume`; written by `netc run --save`, loaded here."""

import numpy as np
import pytest

import netc

from conftest import EXAMPLES, read_safetensors


def test_saved_in_python_predicted_by_the_cli(tmp_path, cli, mlp_file, digits):
    x, y, x_test, _ = digits
    m = netc.compile(mlp_file)
    m.fit(x=x, y=y, epochs=2)
    m.save(tmp_path / "w.safetensors")
    np.save(tmp_path / "x.npy", x_test)
    cli("predict", mlp_file, "--load", tmp_path / "w.safetensors", "--input", tmp_path / "x.npy", "-o", tmp_path / "p.npy")
    assert np.array_equal(np.load(tmp_path / "p.npy"), m.predict(x_test))
    weights, meta = read_safetensors(tmp_path / "w.safetensors")
    assert meta == {"netc.checkpoint": "step=94 seed=0"}
    assert set(weights) == set(m.params) | set(m.optimizer_state)


def test_stopped_in_python_resumed_by_the_cli_is_the_uninterrupted_run(tmp_path, cli, mlp_file):
    cli("run", mlp_file, "--save", tmp_path / "whole.safetensors", "--quiet")
    m = netc.compile(mlp_file)
    m.fit(callback=lambda step, loss: step < 300)  # the data block, stopped after step 300
    assert m.steps == 300
    m.save(tmp_path / "part.safetensors")
    cli("run", mlp_file, "--resume", tmp_path / "part.safetensors", "--save", tmp_path / "resumed.safetensors", "--quiet")
    assert (tmp_path / "resumed.safetensors").read_bytes() == (tmp_path / "whole.safetensors").read_bytes()


def test_written_by_the_cli_loaded_in_python(tmp_path, cli, mlp_file, digits):
    cli("run", mlp_file, "--steps", 100, "--save", tmp_path / "w.safetensors", "--quiet")
    m = netc.load(mlp_file, tmp_path / "w.safetensors")
    assert m.steps == 100
    weights, _ = read_safetensors(tmp_path / "w.safetensors")
    for name, value in {**dict(m.params.items()), **dict(m.optimizer_state.items())}.items():
        assert np.array_equal(value, weights[name]), name
    m.save(tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == (tmp_path / "w.safetensors").read_bytes()


def test_model_state_travels_with_the_weights(tmp_path, cli, digits):
    net = EXAMPLES / "digits_bn_cnn.net"
    x, y, x_test, _ = digits
    m = netc.compile(net)
    m.fit(x=x.reshape(-1, 1, 8, 8), y=y, steps=40)
    names = list(m.state)
    assert names and all("running" in n or "mean" in n or "var" in n for n in names)
    m.save(tmp_path / "bn.safetensors")
    np.save(tmp_path / "x.npy", x_test.reshape(-1, 1, 8, 8))
    cli("predict", net, "--load", tmp_path / "bn.safetensors", "--input", tmp_path / "x.npy", "-o", tmp_path / "p.npy")
    assert np.array_equal(np.load(tmp_path / "p.npy"), m.predict(x_test.reshape(-1, 1, 8, 8)))
    back = netc.load(net, tmp_path / "bn.safetensors")
    for name in names:
        assert np.array_equal(back.state[name], m.state[name])


def test_plain_weights_load_and_the_optimizer_starts_afresh(tmp_path, mlp_file):
    m = netc.compile(mlp_file)
    m.fit(steps=10)
    # A file of the parameters only, as another tool would write it.
    other = netc.compile(mlp_file, seed=5)
    weights = tmp_path / "plain.safetensors"
    _write_params_only(m, weights)
    other.load_weights(weights)
    assert other.steps == 0
    assert all(not v.any() for v in other.optimizer_state.values())
    for name, value in m.params.items():
        assert np.array_equal(other.params[name], value)


def _write_params_only(m, path):
    import json
    import struct

    header, blobs, offset = {}, [], 0
    for name, value in m.params.items():
        raw = np.ascontiguousarray(value, "<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_bad_weights_files_are_clear_errors(tmp_path, mlp_file):
    m = netc.compile(mlp_file)
    with pytest.raises(FileNotFoundError):
        m.load_weights(tmp_path / "none.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises((ValueError, OSError, netc.NetcError)):
        m.load_weights(tmp_path / "junk.safetensors")
    other = netc.compile(source="model o(x: [B, 64]) -> [B, 10] { x |> dense(10) }")
    other.save(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="dense_1.W"):
        m.load_weights(tmp_path / "other.safetensors")
    with pytest.raises(OSError, match="directory"):
        m.save(tmp_path)
    source = tmp_path / "copy.net"
    source.write_text(mlp_file.read_text())
    mine = netc.compile(source)
    with pytest.raises(OSError, match="input"):
        mine.save(source)  # never over the model's own source
    assert source.read_text() == mlp_file.read_text()
