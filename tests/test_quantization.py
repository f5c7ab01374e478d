"""Mixed-precision weights: storage, sensitivity measures, bit allocation, model files."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import run_lic
from lic.codecs.hyperprior_net import QUANTIZABLE_LAYERS, MeanScaleHyperprior, rd_loss
from lic.entropy.integer_net import IntegerNet, quantize_network
from lic.errors import InputError
from lic.export.hyperprior import export
from lic.quantization.allocate import allocate_bits, monotone_costs
from lic.quantization.sensitivity import RDProbe, hessian_traces, measured_rd_change
from lic.weights import SUPPORTED_BITS, QuantizedWeight, float_state, pack_signed, unpack_signed


@pytest.mark.parametrize("bits", SUPPORTED_BITS)
def test_packing_round_trips_every_width(bits):
    limit = 2 ** (bits - 1) - 1
    values = np.random.default_rng(bits).integers(-limit, limit + 1, size=1003)
    packed = pack_signed(values, bits)
    assert packed.size == -(-values.size * bits // 8)
    assert np.array_equal(unpack_signed(packed, bits, values.size), values)


def test_quantized_weight_refuses_values_outside_its_width():
    with pytest.raises(ValueError, match="4-bit"):
        QuantizedWeight(torch.full((2, 1, 1, 1), 8, dtype=torch.int8), torch.ones(2, dtype=torch.float16), 4, 0)
    with pytest.raises(ValueError, match="one scale per output channel"):
        QuantizedWeight(torch.zeros((2, 3, 1, 1), dtype=torch.int8), torch.ones(3, dtype=torch.float16), 4, 0)


@pytest.mark.parametrize("channel_dim", [0, 1])
def test_error_shrinks_with_bits_and_storage_round_trips(channel_dim):
    torch.manual_seed(0)
    w = (torch.randn(6, 6, 3, 3) * torch.logspace(-3, -1, 6).view(-1, 1, 1, 1)).movedim(0, channel_dim)
    errors = []
    for bits in (4, 6, 8):
        q = QuantizedWeight.quantize(w, bits, channel_dim)
        again = QuantizedWeight.from_tensors(q.to_tensors("layer.weight"), "layer.weight")
        assert torch.equal(again.dequantize(), q.dequantize())
        # Per-channel scales: each channel's error is relative to its own range.
        per_channel = ((q.dequantize() - w) ** 2).movedim(channel_dim, 0).flatten(1).mean(1)
        range_ = (w ** 2).movedim(channel_dim, 0).flatten(1).mean(1)
        errors.append(float((per_channel / range_).max()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-4


def test_int8_weights_with_a_float_scale_requantize_exactly():
    """Weights that already are int8 x per-channel scale (../shared/weights) survive 8-bit storage."""
    torch.manual_seed(1)
    ints = torch.randint(-127, 128, (4, 3, 5, 5)).float()
    ints[:, 0, 0, 0] = 127
    scale = torch.tensor([0.01, 0.002, 0.03, 0.0005]).half().float().view(-1, 1, 1, 1)
    q = QuantizedWeight.quantize(ints * scale, 8, 0)
    assert torch.equal(q.dequantize(), ints * scale)


def test_integer_layers_store_narrow_weights_packed_and_compute_the_same():
    torch.manual_seed(2)
    net = torch.nn.Sequential(torch.nn.Conv2d(4, 6, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(6, 5, 1))
    x = torch.randint(-40, 40, (2, 4, 8, 8)).double()
    int_net = quantize_network(net, x / 16, 1 / 16, torch.full((5,), 0.25).double(), 2**15, weight_bits=[4, 6])
    tensors = int_net.to_tensors("h")
    assert "h.0.weight.q" in tensors and "h.0.weight" not in tensors
    assert int(int_net.layers[0].weight.abs().max()) <= 7 and int(int_net.layers[1].weight.abs().max()) <= 31
    assert torch.equal(IntegerNet.from_tensors(tensors, "h")(x), int_net(x))


def test_integer_layers_from_files_without_a_width_read_as_int8():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1))
    x = torch.randint(-40, 40, (1, 3, 8, 8)).double()
    int_net = quantize_network(net, x, 1.0, torch.ones(4).double(), 2**15)
    tensors = int_net.to_tensors("h")
    tensors["h.0.geometry"] = tensors["h.0.geometry"][:5]  # the layout before mixed precision
    assert torch.equal(IntegerNet.from_tensors(tensors, "h")(x), int_net(x))


def test_allocation_is_the_best_under_the_budget():
    rng = np.random.default_rng(4)
    layers = [f"l{i}" for i in range(5)]
    params = {l: int(rng.integers(50, 100)) for l in layers}
    size = {l: {b: params[l] * b for b in (4, 6, 8)} for l in layers}
    cost = monotone_costs({l: {4: float(rng.random()), 6: float(rng.random()) / 4, 8: 0.0} for l in layers})
    budget = sum(size[l][6] for l in layers)
    chosen = allocate_bits(cost, size, budget)
    best = min(
        (combo for combo in itertools.product((4, 6, 8), repeat=5)
         if sum(size[l][b] for l, b in zip(layers, combo)) <= budget),
        key=lambda combo: sum(cost[l][b] for l, b in zip(layers, combo)),
    )
    assert sum(cost[l][chosen[l]] for l in layers) == pytest.approx(sum(cost[l][b] for l, b in zip(layers, best)))
    assert sum(size[l][chosen[l]] for l in layers) <= budget
    with pytest.raises(InputError, match="below the smallest"):
        allocate_bits(cost, size, sum(size[l][4] for l in layers) - 1)


def test_monotone_costs_remove_impossible_gains():
    assert monotone_costs({"l": {8: 0.0, 6: -0.2, 4: 0.1}}) == {"l": {8: 0.0, 6: 0.0, 4: 0.1}}
    assert monotone_costs({"l": {8: 0.0, 6: 0.3, 4: 0.1}}) == {"l": {8: 0.0, 6: 0.3, 4: 0.3}}


def _tiny(seed: int = 0) -> tuple[MeanScaleHyperprior, torch.Tensor]:
    from helpers import photo_like

    torch.manual_seed(seed)
    model = MeanScaleHyperprior(N=8, M=12).eval()
    x = torch.from_numpy(photo_like(64, 64, seed)).permute(2, 0, 1)[None].float() / 255
    return model, x


def test_measured_change_is_zero_for_an_unchanged_weight_and_matches_a_full_forward():
    model, x = _tiny()
    probe = RDProbe(model, x, 0.01)
    assert probe.loss_with("g_s.2", model.g_s[2].weight.data) == probe.baseline
    four_bit = QuantizedWeight.quantize(model.h_s[2].weight, 4, 1).dequantize()
    staged = probe.loss_with("h_s.2", four_bit)
    model.h_s[2].weight.data.copy_(four_bit)
    assert staged == pytest.approx(RDProbe(model, x, 0.01).baseline, rel=1e-6)
    changes = measured_rd_change(model, x, 0.01, ("g_s.2",), (2, 8))
    assert changes["g_s.2"][2] > abs(changes["g_s.2"][8])


def test_h_s_is_measured_through_the_integer_network_the_file_holds():
    from lic.export.hyperprior import calibration_z_hat, integer_h_s

    model, x = _tiny()
    build = lambda widths: integer_h_s(model, calibration_z_hat(model, x), widths)  # noqa: E731
    changes = measured_rd_change(model, x, 0.01, ("h_s.4",), (2, 8), integer_h_s=build)
    assert changes["h_s.4"][8] == 0.0 and abs(changes["h_s.4"][2]) > 1e-4  # (an untrained model may gain)
    # the probe's integer h_s is the one the export writes
    exported = export(model, x, {"h_s.4": 2})
    assert torch.equal(exported["h_s.2.weight.q"], build({"h_s.4": 2}).to_tensors("h_s")["h_s.2.weight.q"])


def test_quantized_files_store_gdn_in_float16_and_float16_exports_keep_float32():

    model, x = _tiny()
    gdn = [k for k in model.state_dict() if k.endswith(("beta", "gamma"))]
    assert gdn
    reference, quantized = export(model, x), export(model, x, {"g_s.2": 6})
    assert all(reference[k].dtype == torch.float32 and quantized[k].dtype == torch.float16 for k in gdn)


def test_hutchinson_trace_matches_the_exact_trace():
    model, x = _tiny(1)
    model.train()

    weight = model.g_s[6].weight
    torch.manual_seed(0)
    grad = torch.autograd.grad(rd_loss(model(x), x, 0.01, "mse")["loss"], weight, create_graph=True)[0]
    exact = 0.0
    for i in range(weight.numel()):
        e = torch.zeros(weight.numel())
        e[i] = 1
        exact += float(torch.autograd.grad(grad, weight, e.view_as(weight), retain_graph=True)[0].flatten()[i])
    model.eval()
    estimate = hessian_traces(model, x, 0.01, ("g_s.6",), samples=200)["g_s.6"]
    assert estimate == pytest.approx(exact, rel=0.15)


def test_mixed_precision_model_file_codes_and_is_smaller(tmp_path):
    import lic
    from lic.models import save_model_file
    from helpers import photo_like

    model, x = _tiny(2)
    config = {"name": "tiny", "family": "hyperprior", "quality": 2, "N": 8, "M": 12}
    bits = dict.fromkeys(QUANTIZABLE_LAYERS, 4)
    f16 = save_model_file(tmp_path / "f16.safetensors", export(model, x), config)
    q4 = save_model_file(tmp_path / "q4.safetensors", export(model, x, bits), {**config, "weight_bits": bits})
    assert q4.path.stat().st_size < f16.path.stat().st_size
    tensors = load_file(str(q4.path))
    assert int(tensors["h_s.0.geometry"][5]) == 4 and "g_s.2.weight.qinfo" in tensors
    state = float_state(tensors, "g_s")
    assert torch.equal(state["2.weight"], QuantizedWeight.quantize(model.g_s[2].weight, 4, 1).dequantize())
    image = photo_like(40, 56, 5)
    data = lic.compress(image, quality=2, model=str(q4.path))
    decoded = np.asarray(lic.decompress(data, model=str(q4.path)))
    assert decoded.shape == image.shape


def test_weights_shared_as_int8_with_qscale_load_as_their_product(tmp_path):
    from lic.train.common import load_weights

    model, _ = _tiny(3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    w = state["g_a.0.weight"]
    scale = w.abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    ints = torch.round(w / scale).to(torch.int8)
    state["g_a.0.weight"], state["g_a.0.weight.qscale"] = ints, scale
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    loaded = load_weights(tmp_path / "w.safetensors")
    assert "g_a.0.weight.qscale" not in loaded
    assert torch.equal(loaded["g_a.0.weight"], ints.float() * scale)


@pytest.fixture(scope="module")
def float_weights(tmp_path_factory):
    """A tiny model's float state dict and a folder of calibration photos."""
    from PIL import Image

    from helpers import photo_like

    folder = tmp_path_factory.mktemp("calibration")
    for i in range(2):
        Image.fromarray(photo_like(256, 256, seed=i)).save(folder / f"{i}.png")
    model, _ = _tiny(4)
    path = folder.parent / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, folder


@pytest.mark.slow
def test_export_and_quantize_commands(float_weights, tmp_path):
    import json

    from lic.models import read_model_file

    weights, folder = float_weights
    common = ("-q", 2, "--calibration", folder)
    r = run_lic("export", weights, *common, "-o", tmp_path / "f16.safetensors")
    assert r.exit_code == 0, r.output
    r = run_lic("quantize", weights, *common, "--bits", "4", "-o", tmp_path / "int4.safetensors")
    assert r.exit_code == 0, r.output
    assert "g_s.2" in r.output and "calibration crops" in r.output
    int4 = read_model_file(tmp_path / "int4.safetensors")
    assert set(int4.config["weight_bits"].values()) == {4}
    f16_size, int4_size = (tmp_path / "f16.safetensors").stat().st_size, int4.path.stat().st_size
    assert int4_size < f16_size

    budget = (f16_size + int4_size) // 2
    r = run_lic("quantize", weights, *common, "--size-budget", f"{budget / 1000}KB", "--hessian-samples", 2,
             "-o", tmp_path / "auto.safetensors", "--report", tmp_path / "auto.json")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "auto.safetensors").stat().st_size <= budget
    report = json.loads((tmp_path / "auto.json").read_text())
    assert set(report["measured_rd_change"]) == set(QUANTIZABLE_LAYERS) == set(report["hawq_predicted_change"])
    assert "Spearman" in r.output

    r = run_lic("quantize", weights, *common, "--size-budget", f"{budget / 1000}KB", "--fix", "g_s.0=8,g_a.0=6",
             "--hessian-samples", 1, "-o", tmp_path / "fixed.safetensors", "--report", tmp_path / "fixed.json")
    assert r.exit_code == 0, r.output
    report = json.loads((tmp_path / "fixed.json").read_text())
    assert report["bits"]["g_s.0"] == 8 and report["bits"]["g_a.0"] == 6
    assert "g_s.0" not in report["measured_rd_change"] and len(report["measured_rd_change"]) == len(QUANTIZABLE_LAYERS) - 2


@pytest.mark.parametrize("args, message, code", [
    (("--size-budget", "1KB"), "below the smallest", 1),
    (("--bits", "auto"), "needs --size-budget", 2),
    (("--bits", "g_x.0=4"), "unknown layer", 2),
    (("--bits", "9"), "widths must be in", 2),
])
def test_quantize_refuses_bad_requests_without_writing(float_weights, tmp_path, args, message, code):
    weights, folder = float_weights
    r = run_lic("quantize", weights, "-q", 2, "--calibration", folder, *args, "-o", tmp_path / "out.safetensors")
    assert r.exit_code == code and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "out.safetensors").exists()


def test_export_refuses_to_write_over_its_input(float_weights):
    weights, folder = float_weights
    before = weights.read_bytes()
    r = run_lic("export", weights, "-q", 2, "--calibration", folder, "-o", weights, "--force")
    assert r.exit_code == 1 and "is one of the inputs" in r.output
    assert weights.read_bytes() == before


@pytest.mark.parametrize("transposed", [False, True])
def test_gptq_patches_reproduce_the_layer_and_beat_nearest_rounding_on_its_outputs(transposed):
    from compressai.models.utils import conv, deconv

    from lic.quantization.gptq import sampled_patches, conv_form, input_moments, quantize_layer

    torch.manual_seed(5)
    layer = (deconv if transposed else conv)(12, 10).double()
    # Correlated inputs, like a network's activations: smooth maps mixed across channels.
    x = torch.nn.functional.avg_pool2d(torch.randn(3, 12, 20, 20), 3, 1, 1) @ torch.randn(1, 1, 20, 20)
    x = x.double()
    rows = conv_form(layer, layer.weight) @ sampled_patches(layer, x)
    expected = (layer(x) - layer.bias.view(1, -1, 1, 1)).transpose(0, 1).reshape(rows.shape)
    assert torch.allclose(rows, expected, atol=1e-10)
    layer = layer.float()
    moments = input_moments(layer, lambda: layer(x.float()), ("",))[""]

    def output_error(q):
        with torch.no_grad():
            return float((torch.nn.functional.conv_transpose2d if transposed else torch.nn.functional.conv2d)(
                x.float(), q.dequantize() - layer.weight, stride=2, padding=2, **({"output_padding": 1} if transposed else {})
            ).pow(2).mean())

    for bits in (4, 6):
        assert output_error(quantize_layer(layer, bits, moments)) < 0.9 * output_error(quantize_layer(layer, bits))
