"""A view of a detached alias of a parameter stays outside autograd when an
optimizer updates the parameter in place (no_grad): the parameter gains no
history, so the view has none to follow (as in PyTorch)."""

import compgrad as torch


def test_view_of_detached_parameter_after_optimizer_step():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    row = model.weight.detach()[1]
    model(torch.randn(2, 3)).sum().backward()
    opt.step()
    assert not row.requires_grad and row.grad_fn is None
    row.numpy()   # (raised: "Can't call numpy() on Tensor that requires grad")


def test_view_still_follows_a_base_that_gains_a_history():
    base = torch.zeros(3)
    view = base[1:]
    base.add_(torch.ones(3, requires_grad=True))
    assert view.requires_grad and view.grad_fn is not None
