"""Writes the NPY fixtures of tests/data.rs with numpy itself, so the hand-written reader is
checked against real `np.save` output. Run from this directory: python3 make_npy.py"""
import numpy as np

x = (np.arange(12, dtype=np.float32) / 2).reshape(4, 3)
np.save("x_f32.npy", x)
np.save("y_i64.npy", np.array([0, 1, 2, 1], dtype=np.int64))
with open("x_f64_v2.npy", "wb") as f:
    np.lib.format.write_array(f, x.astype(np.float64), version=(2, 0))
np.save("y_u8.npy", np.array([2, 0, 1, 1], dtype=np.uint8))
np.save("x_be_f4.npy", x.astype(">f4"))
np.save("x_fortran.npy", np.asfortranarray(x))
np.save("x_f16.npy", x.astype(np.float16))
np.save("y_f32_targets.npy", np.array([[0.5], [1.5], [2.5], [3.5]], dtype=np.float32))
