"""scaled_dot_product_attention, MultiheadAttention and the Transformer encoder vs PyTorch.

Weights are copied from the torch module through its state_dict; dropout is 0 (or the
module is in eval mode) so both sides are deterministic.
"""

import numpy as np
import pytest

import compgrad
from compgrad.nn._attention import scaled_dot_product_attention
from compgrad.nn.modules.activation_attention import MultiheadAttention
from compgrad.nn.modules.transformer import TransformerEncoder, TransformerEncoderLayer

torch = pytest.importorskip("torch")
TF = torch.nn.functional

RNG = np.random.default_rng(0)


def _arr(*shape, dtype=np.float64):
    return RNG.standard_normal(shape).astype(dtype)


def _pair(a, requires_grad=False):
    """The same array as a compgrad and a torch tensor."""
    return (compgrad.tensor(a, requires_grad=requires_grad),
            torch.tensor(a, requires_grad=requires_grad))


def _close(ours, theirs, rtol=1e-6, atol=1e-7):
    assert (ours is None) == (theirs is None)
    if ours is None:
        return
    assert tuple(ours.shape) == tuple(theirs.shape)
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), rtol=rtol,
                               atol=atol)


def _copy_weights(ours, theirs):
    """Load the torch module's state_dict into ours (and check the keys agree)."""
    sd = theirs.state_dict()
    assert list(ours.state_dict()) == list(sd)
    ours.load_state_dict({k: compgrad.tensor(v.numpy()) for k, v in sd.items()})


def _randomize(module):
    """Non-zero biases etc., so every parameter matters."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, dtype=p.dtype) * 0.5)


# --- scaled_dot_product_attention --------------------------------------------------------

def _bool_mask(*shape, p=0.3):
    m = RNG.random(shape) > p
    return m


SDPA_CASES = {
    "plain4d": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 7)),
    "3d": dict(q=(3, 4, 5), k=(3, 6, 5), v=(3, 6, 5)),
    "2d": dict(q=(4, 5), k=(6, 5), v=(6, 2)),
    "causal": dict(q=(2, 2, 5, 4), k=(2, 2, 5, 4), v=(2, 2, 5, 4), is_causal=True),
    "causal_rect": dict(q=(2, 3, 4), k=(2, 6, 4), v=(2, 6, 4), is_causal=True),
    "scale": dict(q=(2, 4, 5), k=(2, 6, 5), v=(2, 6, 5), scale=0.37),
    "bool_mask": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 5), mask=("bool", (4, 6))),
    "bool_mask_bcast": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 5),
                            mask=("bool", (2, 1, 4, 6))),
    "float_mask": dict(q=(2, 3, 4, 5), k=(2, 3, 6, 5), v=(2, 3, 6, 5),
                       mask=("float", (3, 4, 6))),
    "gqa": dict(q=(2, 4, 3, 5), k=(2, 2, 6, 5), v=(2, 2, 6, 5), enable_gqa=True),
}


def _sdpa_inputs(case):
    case = dict(case)
    arrays = [_arr(*case.pop(n)) for n in ("q", "k", "v")]
    mask = case.pop("mask", None)
    if mask is not None:
        kind, shape = mask
        mask = _bool_mask(*shape) if kind == "bool" else _arr(*shape)
        if kind == "bool":
            mask[..., 0] = True  # at least one key per row: no fully masked rows here
    return arrays, mask, case


@pytest.mark.parametrize("name", list(SDPA_CASES))
def test_sdpa_values_and_grads_match_torch(name):
    arrays, mask, kwargs = _sdpa_inputs(SDPA_CASES[name])
    ours_in = [compgrad.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    om = tm = None
    if mask is not None:
        om, tm = compgrad.tensor(mask), torch.tensor(mask)
    out = scaled_dot_product_attention(*ours_in, attn_mask=om, **kwargs)
    ref = TF.scaled_dot_product_attention(*theirs_in, attn_mask=tm, **kwargs)
    _close(out, ref, rtol=1e-10, atol=1e-12)
    g = _arr(*ref.shape)
    out.backward(compgrad.tensor(g))
    ref.backward(torch.tensor(g))
    for a, b in zip(ours_in, theirs_in):
        _close(a.grad, b.grad, rtol=1e-9, atol=1e-11)


def test_sdpa_float32_matches_torch():
    arrays = [_arr(2, 3, 4, 8, dtype=np.float32) for _ in range(3)]
    out = scaled_dot_product_attention(*map(compgrad.tensor, arrays), is_causal=True)
    ref = TF.scaled_dot_product_attention(*map(torch.tensor, arrays), is_causal=True)
    assert out.dtype == compgrad.float32
    _close(out, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_fully_masked_rows_give_zeros(kind):
    arrays = [_arr(1, 3, 4) for _ in range(3)]
    if kind == "bool":
        mask = np.ones((3, 3), dtype=bool)
        mask[1] = False
    else:
        mask = np.zeros((3, 3))
        mask[1] = -np.inf
    ours_in = [compgrad.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = scaled_dot_product_attention(*ours_in, attn_mask=compgrad.tensor(mask))
    ref = TF.scaled_dot_product_attention(*theirs_in, attn_mask=torch.tensor(mask))
    _close(out, ref)
    assert not out[0, 1].detach().numpy().any()
    out.sum().backward()
    ref.sum().backward()
    for a, b in zip(ours_in, theirs_in):
        _close(a.grad, b.grad, rtol=1e-9, atol=1e-11)


def test_sdpa_errors():
    q = compgrad.randn(2, 3, 4)
    with pytest.raises(RuntimeError, match="is_causal"):
        scaled_dot_product_attention(q, q, q, attn_mask=compgrad.ones(3, 3, dtype=compgrad.bool),
                                     is_causal=True)
    with pytest.raises(RuntimeError):
        scaled_dot_product_attention(q, q, q, attn_mask=compgrad.ones(3, 3, dtype=compgrad.int64))
    with pytest.raises(RuntimeError):
        scaled_dot_product_attention(q, q.double(), q)
    with pytest.raises(RuntimeError):
        scaled_dot_product_attention(q, compgrad.randn(2, 3, 5), q)
    tq = torch.randn(2, 3, 4)
    with pytest.raises(RuntimeError):
        TF.scaled_dot_product_attention(tq, tq, tq, attn_mask=torch.ones(3, 3,
                                                                          dtype=torch.int64))
    with pytest.raises(RuntimeError):
        TF.scaled_dot_product_attention(tq, tq.double(), tq)


def test_sdpa_dropout_drops_weights():
    compgrad.manual_seed(0)
    q = compgrad.randn(1, 8, 4)
    v = compgrad.ones(1, 8, 4)
    # every attention row sums to 1 without dropout; dropout breaks that
    full = scaled_dot_product_attention(q, q, v)
    dropped = scaled_dot_product_attention(q, q, v, dropout_p=0.5)
    np.testing.assert_allclose(full.numpy(), 1.0, rtol=1e-6)
    assert not np.allclose(dropped.numpy(), 1.0)
    assert np.allclose(scaled_dot_product_attention(q, q, v, dropout_p=1.0).numpy(), 0.0)


# --- MultiheadAttention ----------------------------------------------------------------------

MHA_CONFIGS = {
    "default": dict(),
    "no_bias": dict(bias=False),
    "bias_kv": dict(add_bias_kv=True),
    "zero_attn": dict(add_zero_attn=True),
    "kdim_vdim": dict(kdim=5, vdim=3),
    "batch_first": dict(batch_first=True),
    "all": dict(add_bias_kv=True, add_zero_attn=True, kdim=5, vdim=3, batch_first=True),
}


def _mha_pair(embed_dim=8, num_heads=2, **config):
    theirs = torch.nn.MultiheadAttention(embed_dim, num_heads, dtype=torch.float64, **config)
    _randomize(theirs)
    ours = MultiheadAttention(embed_dim, num_heads, **config).double()
    _copy_weights(ours, theirs)
    return ours, theirs


def _mha_inputs(config, L=4, S=5, N=3, E=8, batched=True):
    kdim, vdim = config.get("kdim", E), config.get("vdim", E)
    bf = config.get("batch_first", False)

    def shape(n, d):
        if not batched:
            return (n, d)
        return (N, n, d) if bf else (n, N, d)

    return _arr(*shape(L, E)), _arr(*shape(S, kdim)), _arr(*shape(S, vdim))


@pytest.mark.parametrize("name", list(MHA_CONFIGS))
def test_mha_parameters_match_torch(name):
    ours, theirs = _mha_pair(**MHA_CONFIGS[name])
    assert [(n, tuple(p.shape)) for n, p in ours.named_parameters()] == \
        [(n, tuple(p.shape)) for n, p in theirs.named_parameters()]
    assert repr(ours) == repr(theirs)


def _run_mha(ours, theirs, arrays, grads=True, **kw):
    """Forward both (kwargs may hold numpy masks); compare outputs, weights and grads."""
    okw, tkw = {}, {}
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            okw[k], tkw[k] = compgrad.tensor(v), torch.tensor(v)
        else:
            okw[k] = tkw[k] = v
    oin = [compgrad.tensor(a, requires_grad=grads) for a in arrays]
    tin = [torch.tensor(a, requires_grad=grads) for a in arrays]
    out, w = ours(*oin, **okw)
    ref, rw = theirs(*tin, **tkw)
    _close(out, ref, rtol=1e-9, atol=1e-11)
    _close(w, rw, rtol=1e-9, atol=1e-11)
    if grads:
        g = _arr(*ref.shape)
        loss = (out * compgrad.tensor(g)).sum()
        tloss = (ref * torch.tensor(g)).sum()
        if w is not None:
            gw = _arr(*rw.shape)
            loss = loss + (w * compgrad.tensor(gw)).sum()
            tloss = tloss + (rw * torch.tensor(gw)).sum()
        loss.backward()
        tloss.backward()
        for a, b in zip(oin, tin):
            _close(a.grad, b.grad, rtol=1e-8, atol=1e-10)
        for p, q in zip(ours.parameters(), theirs.parameters()):
            _close(p.grad, q.grad, rtol=1e-8, atol=1e-10)
    return out, w


@pytest.mark.parametrize("name", list(MHA_CONFIGS))
@pytest.mark.parametrize("need_weights,average", [(True, True), (True, False), (False, True)])
def test_mha_forward_and_grads_match_torch(name, need_weights, average):
    config = MHA_CONFIGS[name]
    ours, theirs = _mha_pair(**config)
    _run_mha(ours, theirs, _mha_inputs(config), need_weights=need_weights,
             average_attn_weights=average)


def _masks(kind, L=4, S=5, N=3, H=2):
    """attn_mask / key_padding_mask pairs (True = masked), never masking a whole row."""
    kw = {}
    if "attn2d" in kind:
        m = RNG.random((L, S)) < 0.4
        m[:, 0] = False
        kw["attn_mask"] = m if "bool" in kind else np.where(m, -np.inf, _arr(L, S))
    if "attn3d" in kind:
        m = RNG.random((N * H, L, S)) < 0.4
        m[..., 1] = False
        kw["attn_mask"] = m if "bool" in kind else np.where(m, -2.0, _arr(N * H, L, S))
    if "kpm" in kind:
        m = np.zeros((N, S), dtype=bool)
        m[0, -2:] = True
        m[2, 0] = True
        kw["key_padding_mask"] = m if "bool" in kind else np.where(m, -np.inf, 0.0)
    return kw


MASK_KINDS = ["bool_attn2d", "float_attn2d", "bool_attn3d", "float_attn3d", "bool_kpm",
              "float_kpm", "bool_attn2d_kpm", "float_attn3d_kpm"]


@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_masks_match_torch(kind, need_weights):
    config = {"batch_first": True} if "3d" in kind else {}
    ours, theirs = _mha_pair(**config)
    _run_mha(ours, theirs, _mha_inputs(config), need_weights=need_weights, **_masks(kind))


@pytest.mark.parametrize("name", ["default", "bias_kv", "zero_attn", "all"])
def test_mha_masks_with_extra_keys_match_torch(name):
    config = MHA_CONFIGS[name]
    ours, theirs = _mha_pair(**config)
    _run_mha(ours, theirs, _mha_inputs(config), **_masks("bool_attn2d_kpm"))


def test_mha_causal_hint_matches_torch():
    ours, theirs = _mha_pair()
    causal = np.triu(np.ones((4, 4), dtype=bool), 1)
    arrays = _mha_inputs({}, S=4)
    for need in (True, False):
        _run_mha(ours, theirs, arrays, attn_mask=causal, is_causal=True, need_weights=need)
    with pytest.raises(RuntimeError, match="Need attn_mask"):
        ours(*map(compgrad.tensor, arrays), is_causal=True)


@pytest.mark.parametrize("name", ["default", "batch_first", "all"])
def test_mha_unbatched_matches_torch(name):
    config = MHA_CONFIGS[name]
    ours, theirs = _mha_pair(**config)
    arrays = _mha_inputs(config, batched=False)
    kpm = np.array([False, False, True, False, True])
    _run_mha(ours, theirs, arrays, key_padding_mask=kpm)
    _run_mha(ours, theirs, arrays, need_weights=False, key_padding_mask=kpm)


def test_mha_self_attention_float32():
    theirs = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    _randomize(theirs)
    ours = MultiheadAttention(16, 4, batch_first=True)
    _copy_weights(ours, theirs)
    x = _arr(2, 7, 16, dtype=np.float32)
    ox, tx = _pair(x)
    out, w = ours(ox, ox, ox)
    ref, rw = theirs(tx, tx, tx)
    assert out.dtype == compgrad.float32
    _close(out, ref, rtol=1e-5, atol=1e-5)
    _close(w, rw, rtol=1e-5, atol=1e-6)


def test_mha_fully_padded_batch_entry_matches_torch():
    ours, theirs = _mha_pair()
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[1] = True  # every key of batch entry 1 is padding
    arrays = _mha_inputs({})
    for need in (True, False):  # NaN with weights (plain softmax), zeros through SDPA
        oin, tin = [compgrad.tensor(a) for a in arrays], [torch.tensor(a) for a in arrays]
        out, w = ours(*oin, key_padding_mask=compgrad.tensor(kpm), need_weights=need)
        ref, rw = theirs(*tin, key_padding_mask=torch.tensor(kpm), need_weights=need)
        np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), rtol=1e-9,
                                   atol=1e-11, equal_nan=True)


def test_mha_errors_match_torch():
    with pytest.raises(AssertionError):
        MultiheadAttention(10, 3)
    with pytest.raises(AssertionError):
        torch.nn.MultiheadAttention(10, 3)
    with pytest.raises(ValueError):
        MultiheadAttention(0, 2)
    with pytest.raises(ValueError):
        torch.nn.MultiheadAttention(0, 2)
    ours, theirs = _mha_pair()
    arrays = _mha_inputs({})
    cases = [dict(attn_mask=np.zeros((3, 3), dtype=bool)),
             dict(attn_mask=np.zeros((2, 4, 5), dtype=bool)),
             dict(attn_mask=np.zeros((1, 1, 4, 5), dtype=bool)),
             dict(key_padding_mask=np.zeros((3, 4), dtype=bool)),
             dict(key_padding_mask=np.zeros((3, 5), dtype=np.int64))]
    for kw in cases:
        okw = {k: compgrad.tensor(v) for k, v in kw.items()}
        tkw = {k: torch.tensor(v) for k, v in kw.items()}
        with pytest.raises(Exception) as ref_err:
            theirs(*map(torch.tensor, arrays), **tkw)
        with pytest.raises(ref_err.type):
            ours(*map(compgrad.tensor, arrays), **okw)
    bad = [_arr(4, 3, 6), _arr(5, 3, 8), _arr(5, 3, 8)]  # wrong embedding size
    with pytest.raises(AssertionError, match="embedding dimension"):
        ours(*map(compgrad.tensor, bad))
    with pytest.raises(AssertionError):
        ours(compgrad.randn(2, 2, 3, 8), compgrad.randn(2, 2, 3, 8), compgrad.randn(2, 2, 3, 8))


def test_mha_dropout_only_in_training():
    m = MultiheadAttention(8, 2, dropout=0.5)
    x = compgrad.randn(4, 2, 8)
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_mha_init_like_torch():
    m = MultiheadAttention(8, 2, add_bias_kv=True)
    assert not m.in_proj_bias.detach().numpy().any()
    assert not m.out_proj.bias.detach().numpy().any()
    bound = np.sqrt(6.0 / (8 + 24))  # xavier_uniform on (3E, E)
    assert np.abs(m.in_proj_weight.detach().numpy()).max() <= bound
    assert m.bias_k.detach().numpy().any() and m.bias_v.detach().numpy().any()
    plain = MultiheadAttention(8, 2)
    assert plain.bias_k is None and plain.bias_v is None
    assert type(m.out_proj).__mro__[1] is compgrad.nn.Linear


# --- TransformerEncoderLayer / TransformerEncoder -------------------------------------------

LAYER_CONFIGS = {
    "relu": dict(),
    "gelu": dict(activation="gelu"),
    "callable": dict(activation="callable"),
    "module": dict(activation="module"),
    "norm_first": dict(norm_first=True),
    "batch_first": dict(batch_first=True),
    "no_bias": dict(bias=False),
    "eps": dict(layer_norm_eps=1e-3, norm_first=True, batch_first=True),
}


def _activation(lib, which):
    if which == "callable":
        return lib.tanh
    if which == "module":
        return lib.nn.GELU(approximate="tanh")
    return which


def _layer_pair(config, d_model=8, nhead=2, dim_feedforward=16):
    config = dict(config)
    act = config.pop("activation", "relu")
    theirs = torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0,
                                              activation=_activation(torch, act),
                                              dtype=torch.float64, **config)
    _randomize(theirs)
    ours = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout=0.0,
                                   activation=_activation(compgrad, act), **config).double()
    _copy_weights(ours, theirs)
    return ours, theirs


def _compare_layers(ours, theirs, x, **masks):
    okw = {k: compgrad.tensor(v) for k, v in masks.items()}
    tkw = {k: torch.tensor(v) for k, v in masks.items()}
    ox, tx = _pair(x, requires_grad=True)
    out, ref = ours(ox, **okw), theirs(tx, **tkw)
    _close(out, ref, rtol=1e-9, atol=1e-10)
    g = _arr(*ref.shape)
    out.backward(compgrad.tensor(g))
    ref.backward(torch.tensor(g))
    _close(ox.grad, tx.grad, rtol=1e-8, atol=1e-10)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        _close(p.grad, q.grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", list(LAYER_CONFIGS))
def test_encoder_layer_matches_torch(name):
    config = LAYER_CONFIGS[name]
    ours, theirs = _layer_pair(config)
    assert repr(ours) == repr(theirs)
    shape = (3, 5, 8) if config.get("batch_first") else (5, 3, 8)
    _compare_layers(ours, theirs, _arr(*shape))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_encoder_layer_masks_match_torch(kind):
    ours, theirs = _layer_pair({"batch_first": True})
    src_mask = np.triu(np.ones((5, 5), dtype=bool), 1)
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[1, 3:] = True
    if kind == "float":
        src_mask = np.where(src_mask, -np.inf, 0.0)
        kpm = np.where(kpm, -np.inf, 0.0)
    _compare_layers(ours, theirs, _arr(3, 5, 8), src_mask=src_mask,
                    src_key_padding_mask=kpm)


def test_encoder_layer_unbatched_matches_torch():
    ours, theirs = _layer_pair({})
    _compare_layers(ours, theirs, _arr(5, 8))


def test_encoder_layer_bad_activation():
    with pytest.raises(RuntimeError, match="relu/gelu"):
        TransformerEncoderLayer(8, 2, activation="swish")
    with pytest.raises(RuntimeError, match="relu/gelu"):
        torch.nn.TransformerEncoderLayer(8, 2, activation="swish")


@pytest.mark.parametrize("with_norm", [False, True])
def test_encoder_matches_torch(with_norm):
    def build(lib, layer):
        norm = lib.nn.LayerNorm(8) if with_norm else None
        return lib.nn.TransformerEncoder(layer, 3, norm=norm, enable_nested_tensor=False) \
            if lib is torch else TransformerEncoder(layer, 3, norm=norm)

    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, dtype=torch.float64)
    theirs = build(torch, tl).double()
    _randomize(theirs)
    ours = build(compgrad, TransformerEncoderLayer(8, 2, 16, dropout=0.0)).double()
    _copy_weights(ours, theirs)
    assert repr(ours) == repr(theirs)
    mask = np.triu(np.ones((5, 5), dtype=bool), 1)
    kpm = np.zeros((3, 5), dtype=bool)
    kpm[0, -1] = True
    _compare_layers(ours, theirs, _arr(5, 3, 8), mask=mask, src_key_padding_mask=kpm)


def test_encoder_layers_are_independent_copies():
    layer = TransformerEncoderLayer(8, 2, 16)
    enc = TransformerEncoder(layer, 2)
    assert enc.layers[0] is not layer and enc.layers[0] is not enc.layers[1]
    w0, w1 = enc.layers[0].linear1.weight, enc.layers[1].linear1.weight
    assert w0 is not w1 and np.array_equal(w0.detach().numpy(), w1.detach().numpy())
    with compgrad.no_grad():
        w0.fill_(1.0)
    assert not np.array_equal(w0.detach().numpy(), w1.detach().numpy())
    assert not np.array_equal(layer.linear1.weight.detach().numpy(), w0.detach().numpy())
    assert enc.norm is None and enc.num_layers == 2


def test_encoder_trains_in_float32():
    """A few SGD steps on the same data reduce the loss identically in both libraries."""
    tl = torch.nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    theirs = torch.nn.TransformerEncoder(tl, 2, enable_nested_tensor=False)
    ours = TransformerEncoder(TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                      batch_first=True), 2)
    _copy_weights(ours, theirs)
    x = _arr(4, 6, 8, dtype=np.float32)
    y = _arr(4, 6, 8, dtype=np.float32)
    losses = []
    for model, lib in ((ours, compgrad), (theirs, torch)):
        seq = []
        for _ in range(3):
            model.zero_grad()
            loss = ((model(lib.tensor(x)) - lib.tensor(y)) ** 2).mean()
            loss.backward()
            with lib.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
            seq.append(loss.item())
        losses.append(seq)
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-4)
    assert losses[0][-1] < losses[0][0]
