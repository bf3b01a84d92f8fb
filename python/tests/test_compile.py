"""netc.compile: files and source text; errors raise CompileError with netc's diagnostic."""

import re

import numpy as np
import pytest

import netc

from conftest import EXAMPLES

SHAPE_ERROR = """model bad(x: [B, 784]) -> [B, 10] {
  param W1: [100, 10] = zeros
  x @ W1
}
"""


def test_compile_a_file_gives_its_model_and_train_block(mlp_file):
    m = netc.compile(mlp_file)
    assert m.name == "digits_mlp" and m.train == "digits_mlp"
    assert m.inputs == {"x": (None, 64)} and m.outputs == {"scores": (None, 10)}
    assert m.fields["labels"] == {"shape": (None,), "integer": True, "bound": 10, "model_input": False, "required": True}
    assert m.train_settings == {"name": "digits_mlp", "epochs": 20, "batch": 32, "lr": 0.05, "seed": 0, "data": "digits"}
    assert list(m.params) == ["dense_1.W", "dense_1.b", "dense_2.W", "dense_2.b"]
    assert "digits_mlp" in repr(m) and "4810 parameters" in repr(m)


def test_compile_source_text():
    m = netc.compile(source="model tiny(x: [B, 2]) -> [B, 1] { x |> dense(1) }")
    assert m.name == "tiny" and m.train is None and m.fields == {}
    assert m.predict(np.ones((3, 2), np.float32)).shape == (3, 1)


def test_a_shape_error_is_a_compile_error_with_the_rendered_diagnostic_and_its_place():
    with pytest.raises(netc.CompileError) as info:
        netc.compile(source=SHAPE_ERROR, name="bad.net")
    e = info.value
    assert (e.line, e.column, e.code) == (3, 3, "E-shape")
    text = str(e)
    assert "matmul inner dimensions differ: 784 vs 100" in text
    assert "bad.net:3:3" in text  # ariadne's header, as the CLI prints it
    assert "this is [B, 784]" in text and "this is [100, 10]" in text
    assert "\x1b[" not in text  # no colour codes
    assert e.diagnostics == ["matmul inner dimensions differ: 784 vs 100"]


def test_the_message_is_the_diagnostic_the_cli_prints(tmp_path, cli):
    path = tmp_path / "bad.net"
    path.write_text(SHAPE_ERROR)
    with pytest.raises(netc.CompileError) as info:
        netc.compile(path)
    done = cli("check", path, check=False)
    assert done.returncode == 1
    assert str(info.value).strip() == done.stderr.strip()


def test_syntax_errors_report_line_and_column():
    with pytest.raises(netc.CompileError) as info:
        netc.compile(source="model m(x: [B, 2]) -> [B, 2] {\n  x +\n}\n")
    assert info.value.code == "E-syntax"
    assert info.value.line == 3 and info.value.column == 1


def test_several_errors_are_all_reported():
    source = "model m(x: [B, 2]) -> [B, 2] {\n  let a = nope(x)\n  let b = alsonope(x)\n  a + b\n}\n"
    with pytest.raises(netc.CompileError) as info:
        netc.compile(source=source)
    assert len(info.value.diagnostics) >= 2
    assert info.value.line == 2


def test_a_missing_file_is_file_not_found():
    with pytest.raises(FileNotFoundError, match="no such file"):
        netc.compile(EXAMPLES / "does_not_exist.net")


def test_choosing_among_several_models():
    source = "model a(x: [B, 2]) -> [B, 2] { x }\nmodel b(x: [B, 3]) -> [B, 3] { x * 2 }\n"
    with pytest.raises(ValueError, match="2 models; choose one with model=NAME: a, b"):
        netc.compile(source=source)
    assert netc.compile(source=source, model="b").inputs == {"x": (None, 3)}
    with pytest.raises(ValueError, match=re.escape("no model is named `c`")):
        netc.compile(source=source, model="c")


def test_path_and_source_are_exclusive(mlp_file):
    with pytest.raises(TypeError):
        netc.compile(mlp_file, source="model a(x: [B, 2]) -> [B, 2] { x }")
    with pytest.raises(TypeError):
        netc.compile()
