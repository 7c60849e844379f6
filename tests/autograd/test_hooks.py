"""Tensor hooks: replacement gradients, handles, order, post-accumulate hooks."""

import compgrad


def test_hook_may_replace_the_gradient_and_can_be_removed():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    h = x.register_hook(lambda g: g * 10)
    (x * 1).sum().backward()
    assert x.grad.tolist() == [10.0, 10.0]
    h.remove()
    x.grad = None
    (x * 1).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_hooks_on_intermediates_change_what_flows_on():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g * 0)
    (y * y).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]


def test_hooks_run_in_registration_order_before_retained_grad():
    x = compgrad.tensor([1.0], requires_grad=True)
    y = x * 2
    order = []
    y.retain_grad()
    y.register_hook(lambda g: order.append(("first", g.item())) or g + 1)
    y.register_hook(lambda g: order.append(("second", g.item())) or g * 3)
    (y * 1).sum().backward()
    assert order == [("first", 1.0), ("second", 2.0)]
    assert y.grad.item() == 6.0               # retained after the hooks ran
    assert x.grad.item() == 12.0


def test_post_accumulate_grad_hook_sees_the_stored_grad():
    x = compgrad.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_post_accumulate_grad_hook(lambda t: seen.append(t.grad.tolist()))
    (x * 3).sum().backward()
    (x * 1).sum().backward()
    assert seen == [[3.0, 3.0], [4.0, 4.0]]


def test_node_hooks():
    x = compgrad.tensor([1.0], requires_grad=True)
    y = x * 2
    seen = []
    y.grad_fn.register_prehook(lambda gout: seen.append("pre"))
    y.grad_fn.register_hook(lambda gin, gout: seen.append("post"))
    y.sum().backward()
    assert seen == ["pre", "post"]
