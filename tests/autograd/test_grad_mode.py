"""no_grad, enable_grad, set_grad_enabled, inference_mode: context managers, decorators,
thread-local."""

import threading

import compgrad


def x():
    return compgrad.tensor([1.0], requires_grad=True)


def test_context_managers():
    t = x()
    with compgrad.no_grad():
        assert not compgrad.is_grad_enabled() and not (t * 2).requires_grad
        with compgrad.enable_grad():
            assert (t * 2).requires_grad
    assert compgrad.is_grad_enabled()
    with compgrad.set_grad_enabled(False):
        assert not (t * 2).requires_grad
    assert compgrad.is_grad_enabled()
    with compgrad.inference_mode():
        assert compgrad.is_inference_mode_enabled() and not (t * 2).requires_grad
    with compgrad.inference_mode(False):
        assert (t * 2).requires_grad
    assert not compgrad.is_inference_mode_enabled()


def test_set_grad_enabled_as_a_function():
    compgrad.set_grad_enabled(False)
    try:
        assert not compgrad.is_grad_enabled()
    finally:
        compgrad.set_grad_enabled(True)
    assert compgrad.is_grad_enabled()


def test_decorators():
    @compgrad.no_grad()
    def f(t):
        return t * 2

    @compgrad.enable_grad()
    def g(t):
        return t * 2

    @compgrad.inference_mode()
    def h(t):
        return t * 2

    @compgrad.set_grad_enabled(False)
    def k(t):
        return t * 2

    assert compgrad.is_grad_enabled()
    t = x()
    assert not f(t).requires_grad and not h(t).requires_grad and not k(t).requires_grad
    with compgrad.no_grad():
        assert g(t).requires_grad
    assert compgrad.is_grad_enabled()


def test_grad_mode_is_thread_local():
    seen = []

    def worker():
        seen.append(compgrad.is_grad_enabled())

    with compgrad.no_grad():
        th = threading.Thread(target=worker)
        th.start()
        th.join()
    assert seen == [True]
