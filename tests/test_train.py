"""Training: data from folders and tars, a tiny run end to end, resume, fine-tune start."""

import json
import tarfile

import pytest
import torch

import lic
from lic.errors import InputError
from lic.train.data import CropSampler, load_images
from helpers import photo_like, run_lic


def test_folders_and_tars_load_the_same_images(images, tmp_path):
    with tarfile.open(tmp_path / "pack.tar", "w") as tar:
        for p in sorted(images.glob("*.png")):
            tar.add(p, arcname=p.name)
    from_folder, skipped = load_images([images], 64)
    from_tar, _ = load_images([tmp_path / "pack.tar"], 64)
    assert skipped == 1 and len(from_folder) == 4
    assert all(torch.equal(a, b) for a, b in zip(from_folder, from_tar))
    with pytest.raises(InputError):
        load_images([tmp_path / "nothing"], 64)


def test_crops_are_seeded(images):
    data, _ = load_images([images], 64)
    a = CropSampler(data, 32, 5, torch.device("cpu"), seed=3)()
    b = CropSampler(data, 32, 5, torch.device("cpu"), seed=3)()
    assert a.shape == (5, 3, 32, 32) and torch.equal(a, b) and 0 <= a.min() and a.max() <= 1


def _train(images, out, steps, *extra):
    args = ["train", str(images), "--out", str(out), "--N", "8", "--M", "8", "--steps", str(steps),
            "--batch", "2", "--crop", "64", "--save-every", "2", "--val-dir", str(images),
            "--val-images", "1", "--val-every", "0", "--quality", "2", *extra]
    return run_lic(*args)


def test_tiny_run_exports_a_usable_model_and_resumes(images, tmp_path):
    out = tmp_path / "run"
    r = _train(images, out, 3)
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["steps_done"] == 3 and run["finished"] and run["validation"]["bpp"] > 0
    assert run["model"]["lambda"] == 0.0035 and "hardware" in run
    r = _train(images, out, 5)
    assert r.exit_code == 0, r.output
    assert json.loads((out / "run.json").read_text())["steps_done"] == 5
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in logged if e.get("final")] == [3, 5]
    model = out / "model.safetensors"
    image = lic.decompress(lic.compress(photo_like(40, 40), quality=2, model=str(model)), model=str(model))
    assert image.size == (40, 40)


def test_fine_tune_starts_from_a_checkpoint(images, tmp_path):
    assert _train(images, tmp_path / "a", 2).exit_code == 0
    for i, seed in enumerate(("checkpoint.pt", "weights.safetensors")):
        r = _train(images, tmp_path / f"b{i}", 2, "--init", str(tmp_path / "a" / seed), "--lambda", "0.01")
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / f"b{i}" / "run.json").read_text())["model"]["lambda"] == 0.01


def test_bad_training_options(images, tmp_path):
    r = run_lic("train", str(images), "--out", str(tmp_path), "--model", "nope")
    assert r.exit_code != 0 and "nope" in r.output
    r = run_lic("train", str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--N", "8", "--M", "8")
    assert r.exit_code == 1 and "not a folder" in r.output


def test_likelihoods_stay_float32_under_bf16_autocast():
    from lic.codecs.hyperprior_net import MeanScaleHyperprior

    model = MeanScaleHyperprior(8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.rand(1, 3, 64, 64))
    assert out["x_hat"].dtype == torch.bfloat16
    assert all(l.dtype == torch.float32 for l in out["likelihoods"].values())


def test_carried_weights_keep_buffers_and_fine_tune_finitely(images, tmp_path):
    """float16 buffers turned the 1e-9 likelihood bound and the GDN pedestals into 0, and a
    run started from weights.safetensors met log2(0): NaN within a few steps."""
    from safetensors.torch import load_file

    from lic.codecs.hyperprior_net import MeanScaleHyperprior
    from lic.train.common import load_weights, save_weights

    model = MeanScaleHyperprior(8, 12)
    save_weights(tmp_path / "w.safetensors", model)
    loaded = load_weights(tmp_path / "w.safetensors")
    for name, buffer in model.named_buffers():
        assert torch.equal(loaded[name], buffer), name
    assert loaded["gaussian_conditional.likelihood_lower_bound.bound"] == 1e-9
    big = MeanScaleHyperprior(32, 48)  # enough weights for some to lie below float16's normal range
    save_weights(tmp_path / "big.safetensors", big)
    big_stored = load_file(str(tmp_path / "big.safetensors"))
    assert all(big_stored[name].dtype == torch.float16 for name, _ in big.named_parameters())  # carry-sized
    assert _train(images, tmp_path / "a", 2).exit_code == 0
    r = _train(images, tmp_path / "b", 10, "--init", str(tmp_path / "a" / "weights.safetensors"))
    assert r.exit_code == 0, r.output
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert all(v == v for v in run["last"].values())  # no NaN in loss, bpp, PSNR
    assert all(t.isfinite().all() for t in load_weights(tmp_path / "b" / "weights.safetensors").values())


def test_int8_weights_with_scales_load_as_their_product(tmp_path):
    """The form of ../shared/weights/hyperprior-gpu/: per-channel int8 conv weights + `.qscale`."""
    from safetensors.torch import save_file

    from lic.train.common import load_weights

    q = torch.tensor([[-127, 3], [64, 0]], dtype=torch.int8).view(2, 2, 1, 1)
    scale = torch.tensor([0.01, 0.5]).view(2, 1, 1, 1)
    save_file({"w": q, "w.qscale": scale, "b": torch.ones(2, dtype=torch.float16)}, str(tmp_path / "q.safetensors"))
    loaded = load_weights(tmp_path / "q.safetensors")
    assert set(loaded) == {"w", "b"} and loaded["b"].dtype == torch.float32
    assert torch.equal(loaded["w"], q.float() * scale)


def test_resumed_optimiser_state_follows_the_model_to_its_device(tmp_path, monkeypatch):
    """A CUDA resume failed on the first opt.step(): Adam's moments were loaded while the
    model was on the CPU, and placing it moved only the model. CPU-only stand-in for the move:
    a `place` that casts to float64, which Optimizer.load_state_dict follows as it follows a
    device (load before placing, and the moments stay float32 on a float64 model)."""
    from lic.train import common

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.rand(4, 3)).sum().backward()
    opt.step()
    common.save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "opt": opt.state_dict(),
                                               "torch_rng": torch.get_rng_state()})
    monkeypatch.setattr(common, "place", lambda device, *modules: [m.to(torch.float64) for m in modules])
    model, opt = torch.nn.Linear(3, 2), None
    opt = torch.optim.Adam(model.parameters())
    assert common.restore(tmp_path / "c.pt", None, torch.device("cpu"), {"model": model}, {"opt": opt})
    moments = [v for s in opt.state.values() for k, v in s.items() if k != "step"]
    assert len(moments) == 4 and all(m.dtype == torch.float64 for m in moments)
    model(torch.rand(4, 3, dtype=torch.float64)).sum().backward()
    opt.step()
