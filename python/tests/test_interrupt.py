"""Ctrl-C during fit stops after the current step, the model keeps that step's weights and
KeyboardInterrupt reaches the caller; compiled code runs without the GIL, so other Python
threads run meanwhile; a model is used by one thread at a time."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import netc


def test_keyboard_interrupt_in_a_callback_stops_cleanly(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)

    def callback(step, loss):
        if step == 12:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        m.fit(x=x, y=y, callback=callback)
    assert m.steps == 12 and len(m.history) == 12
    # The weights are those of step 12: training 12 steps from scratch gives the same.
    fresh = netc.compile(mlp_file)
    fresh.fit(x=x, y=y, steps=12)
    for name, value in m.params.items():
        assert np.array_equal(value, fresh.params[name]), name
    assert len(m.fit(x=x, y=y, steps=3)) == 3  # and it trains on


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")
def test_sigint_from_another_thread_interrupts_a_long_fit(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    before = m.steps
    # Python raises KeyboardInterrupt on SIGINT only if SIGINT was not ignored when it started;
    # a shell ignores it in the commands it starts in the background (`.ci/run &`).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # Seconds of steps (17 s on a 2-core Xeon): the interrupt must end this fit long before
    # (were signals never checked, it would run to the end and raise nothing).
    total = 400_000
    main = threading.main_thread().ident
    ticks = []

    def interrupt():
        # This thread runs Python while fit trains: the GIL is free.
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            ticks.append(time.monotonic())
            time.sleep(0.01)
        signal.pthread_kill(main, signal.SIGINT)

    sender = threading.Thread(target=interrupt)
    started = time.monotonic()
    sender.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            m.fit(x=x, y=y, steps=total)
    finally:
        sender.join()
        signal.signal(signal.SIGINT, previous)
    took = time.monotonic() - started
    assert took < 30, took
    assert len(ticks) > 10, len(ticks)
    steps = m.steps - before
    assert 0 < steps < total and steps == len(m.history), (steps, len(m.history))
    assert np.all(np.isfinite(m.predict(x[:4])))


def test_a_model_is_shared_by_threads_one_call_at_a_time(mlp_file, digits):
    x, y, _, _ = digits
    m = netc.compile(mlp_file)
    results = {}

    def train():
        results["losses"] = m.fit(x=x, y=y, epochs=3)

    t = threading.Thread(target=train)
    t.start()
    predictions = [m.predict(x[:8]) for _ in range(20)]  # waits while fit holds the model
    t.join()
    assert len(results["losses"]) == 3 * 47
    assert all(p.shape == (8, 10) for p in predictions)


def test_models_train_in_parallel_threads(mlp_file, digits):
    x, y, _, _ = digits
    models = [netc.compile(mlp_file) for _ in range(2)]
    threads = [threading.Thread(target=mm.fit, kwargs=dict(x=x, y=y, epochs=2)) for mm in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = (dict(mm.params.items()) for mm in models)
    for name in a:
        assert np.array_equal(a[name], b[name]), name  # deterministic, whatever the threads did
