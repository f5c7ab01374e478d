"""The integer hyper-synthesis: exact, order-independent, close to the float network."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lic.entropy.integer_net import IntegerLayer, IntegerNet, quantize_network


def _reference_layer(layer: IntegerLayer, x: np.ndarray) -> np.ndarray:
    """The same layer in plain int64 numpy arithmetic, written independently of torch."""
    w = layer.weight.numpy().astype(np.int64)
    s, p = layer.stride, layer.padding
    c, h, wd = x.shape
    k = w.shape[-1]
    if layer.transposed:
        cout = w.shape[1]
        full = np.zeros((cout, (h - 1) * s + k, (wd - 1) * s + k), np.int64)
        for i in range(k):
            for j in range(k):
                full[:, i : i + s * h : s, j : j + s * wd : s] += np.einsum("co,chw->ohw", w[:, :, i, j], x)
        oh, ow = (h - 1) * s - 2 * p + k + layer.output_padding, (wd - 1) * s - 2 * p + k + layer.output_padding
        full = np.pad(full, ((0, 0), (0, layer.output_padding), (0, layer.output_padding)))
        acc = full[:, p : p + oh, p : p + ow]
    else:
        xp = np.pad(x, ((0, 0), (p, p), (p, p)))
        oh, ow = (h + 2 * p - k) // s + 1, (wd + 2 * p - k) // s + 1
        acc = np.zeros((w.shape[0], oh, ow), np.int64)
        for i in range(k):
            for j in range(k):
                acc += np.einsum("oc,chw->ohw", w[:, :, i, j], xp[:, i : i + s * oh : s, j : j + s * ow : s])
    acc += layer.bias.numpy()[:, None, None]
    out = np.empty_like(acc)
    multipliers = [1] * len(acc) if layer.multiplier is None else layer.multiplier.tolist()
    for o, (sh, m) in enumerate(zip(layer.shift.tolist(), multipliers)):
        scaled = acc[o] * m
        out[o] = (scaled + (1 << (sh - 1))) >> sh if sh > 0 else scaled << -sh
    return out if layer.clip is None else np.clip(out, 0, layer.clip)


@pytest.fixture(scope="module")
def converted():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.ConvTranspose2d(8, 12, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
        nn.ConvTranspose2d(12, 16, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
        nn.Conv2d(16, 10, 3, padding=1),
    )
    calibration = torch.round(torch.randn(4, 8, 6, 7) * 3 * 16) / 16
    integer = quantize_network(net, calibration, 1 / 16, torch.full((10,), 1 / 1024), input_bound=2**12)
    return net, integer


def test_matches_an_independent_int64_implementation(converted):
    _, integer = converted
    x = torch.randint(-200, 200, (1, 8, 5, 9), dtype=torch.int64)
    got = integer(x.double())
    ref = x[0].numpy()
    for layer in integer.layers:
        ref = _reference_layer(layer, ref)
    np.testing.assert_array_equal(got[0].numpy().astype(np.int64), ref)


def test_result_does_not_depend_on_summation_order_or_threads(converted):
    _, integer = converted
    x = torch.randint(-300, 300, (1, 8, 7, 7)).double()
    base = integer(x)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = integer(x)
    finally:
        torch.set_num_threads(threads)
    perm = torch.randperm(8)
    first = integer.layers[0]
    permuted = IntegerNet(
        [IntegerLayer(first.weight[perm], first.bias, first.shift, True, 2, 2, 1, first.clip, multiplier=first.multiplier)] + integer.layers[1:],
        integer.input_bound,
    )(x[:, perm])
    assert torch.equal(base, single) and torch.equal(base, permuted)


def test_approximates_the_float_network(converted):
    net, integer = converted
    z = torch.round(torch.randn(2, 8, 6, 7, generator=torch.Generator().manual_seed(5)) * 2 * 16) / 16
    with torch.no_grad():
        expected = copy.deepcopy(net).double()(z.double())
    got = integer(z * 16) / 1024
    rel = (got - expected).abs().max() / expected.abs().max()
    assert rel < 0.02  # int8 weights, 10-bit activations: ~1 % worst case measured


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_narrow_weights_use_their_whole_range(converted, bits):
    """Per-channel multipliers: every channel's largest weight is the width's largest integer
    (a power-of-two rescale alone left channels between half and all of the range)."""
    net, _ = converted
    calibration = torch.round(torch.randn(4, 8, 6, 7, generator=torch.Generator().manual_seed(2)) * 48) / 16
    integer = quantize_network(net, calibration, 1 / 16, torch.full((10,), 1 / 1024), 2**12, weight_bits=bits)
    for layer in integer.layers:
        peak = layer.weight.abs().amax(dim=(0, 2, 3) if layer.transposed else (1, 2, 3))
        assert torch.all(peak[peak > 0] == 2 ** (bits - 1) - 1)


def test_converting_leaves_the_float_network_as_it_was():
    torch.manual_seed(4)
    net = nn.Sequential(nn.ConvTranspose2d(8, 12, 5, stride=2, padding=2, output_padding=1), nn.ReLU(),
                        nn.Conv2d(12, 10, 3, padding=1))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    quantize_network(net, torch.randn(2, 8, 4, 4), 1 / 16, torch.full((10,), 1 / 1024), 2**12)
    after = net.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_four_bit_network_stays_close_to_the_float_one(converted):
    net, _ = converted
    calibration = torch.round(torch.randn(4, 8, 6, 7, generator=torch.Generator().manual_seed(2)) * 48) / 16
    integer = quantize_network(net, calibration, 1 / 16, torch.full((10,), 1 / 1024), 2**12, weight_bits=4)
    with torch.no_grad():
        expected = copy.deepcopy(net).double()(calibration.double())
    rel = ((integer(calibration * 16) / 1024 - expected).norm() / expected.norm()).item()
    assert rel < 0.15


def test_overflowing_network_is_refused(converted):
    _, integer = converted
    with pytest.raises(ValueError, match="exact range"):
        IntegerNet(integer.layers, input_bound=2**50)


def test_serialisation_roundtrip(converted):
    _, integer = converted
    restored = IntegerNet.from_tensors(integer.to_tensors("h"), "h")
    x = torch.randint(-100, 100, (1, 8, 4, 4)).double()
    assert torch.equal(restored(x), integer(x))


def test_files_without_multipliers_compute_with_a_multiplier_of_one(converted):
    """Model files from before per-channel multipliers: the power-of-two rescale only."""
    _, integer = converted
    tensors = {k: v for k, v in integer.to_tensors("h").items() if not k.endswith(".multiplier")}
    restored = IntegerNet.from_tensors(tensors, "h")
    assert all(layer.multiplier is None for layer in restored.layers)
    x = torch.randint(-100, 100, (1, 8, 4, 4), dtype=torch.int64)
    ref = x[0].numpy()
    for layer in restored.layers:
        ref = _reference_layer(layer, ref)
    np.testing.assert_array_equal(restored(x.double())[0].numpy().astype(np.int64), ref)


def test_dead_relu_channels_do_not_swamp_the_next_layer():
    """A ReLU channel that never fires in calibration must not set the next layer's scale."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 3, 3, padding=1))
    with torch.no_grad():
        net[0].bias[0] = -1e3  # channel 0 is always off
        net[2].weight[:, 0] = 50.0  # ...and has huge weights downstream
    calibration = torch.randn(2, 4, 8, 8)
    integer = quantize_network(net, torch.round(calibration * 16) / 16, 1 / 16, torch.full((3,), 1 / 256), input_bound=2**12)
    z = torch.round(calibration * 16) / 16
    with torch.no_grad():
        expected = copy.deepcopy(net).double()(z.double())
    got = integer(z * 16) / 256
    assert (got - expected).abs().max() / expected.abs().max() < 0.02
