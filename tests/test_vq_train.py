"""Training the VQ codec: k-means levels, GAN pieces, a tiny run end to end, CLI options."""

import json

import pytest
import torch

import lic
from lic.codecs.vq_model import VQArchitecture, VQAutoencoder
from lic.train import gan
from lic.train.vq import msssim_loss
from lic.train.vq_levels import finetune_codebook, spherical_kmeans
from helpers import photo_like, run_lic


@pytest.mark.parametrize("k", [1, 7, 37, 200])
def test_kmeans_reduction_gives_the_requested_number_of_distinct_unit_codes(k):
    torch.manual_seed(0)
    codes = torch.nn.functional.normalize(torch.randn(200, 8), dim=1)
    weights = torch.rand(200) * (torch.rand(200) > 0.5)  # half of the codes unused
    reduced = spherical_kmeans(codes, weights, k, seed=1)
    assert reduced.shape == (k, 8)
    assert torch.allclose(reduced.norm(dim=1), torch.ones(k), atol=1e-5)
    assert torch.unique(reduced, dim=0).shape[0] == k
    assert torch.equal(reduced, spherical_kmeans(codes, weights, k, seed=1))


def test_kmeans_refuses_more_codes_than_it_has():
    with pytest.raises(ValueError):
        spherical_kmeans(torch.eye(4), torch.ones(4), 5)


def test_finetuning_moves_only_the_codebook():
    torch.manual_seed(0)
    model = VQAutoencoder(VQArchitecture((8, 8, 8, 8), (1, 1, 1, 1), 4, 32))
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    codebook = torch.nn.functional.normalize(torch.randn(8, 4), dim=1)
    x = torch.rand(2, 3, 32, 32)
    tuned = finetune_codebook(model, codebook, lambda: x, 3, 0.05, lambda a, b: (a - b).abs().mean())
    assert not torch.equal(tuned, codebook) and torch.allclose(tuned.norm(dim=1), torch.ones(8), atol=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.decoder.state_dict().items())


def test_augmentation_is_shared_and_differentiable():
    real, fake = torch.rand(3, 3, 32, 32), torch.rand(3, 3, 32, 32, requires_grad=True)
    a, b = gan.augment_pair(real, fake, torch.Generator().manual_seed(0))
    c, _ = gan.augment_pair(real, real.clone(), torch.Generator().manual_seed(0))
    assert torch.equal(a, c) and b.shape == fake.shape
    b.sum().backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0


def test_gan_losses_and_feature_matching():
    disc = gan.PatchDiscriminator(8)
    x = torch.rand(2, 3, 64, 64)
    logits, features = disc(x)
    assert logits.ndim == 4 and len(features) == 4
    assert gan.hinge_discriminator_loss(logits, logits) >= 0
    assert gan.feature_matching_loss(features, features) == 0


def test_msssim_loss_works_on_small_crops():
    x = torch.rand(2, 3, 128, 128)
    assert msssim_loss(x, x) < 1e-4 and msssim_loss(torch.rand_like(x), x) > 0.5


def _train(images, out, steps, *extra):
    args = ["train", str(images), "--model", "vq", "--out", str(out), "--channels", "8,8,8,8", "--blocks", "1,1,1,1",
            "--code-dim", "4", "--codebook-size", "64", "--levels", "2", "--steps", str(steps), "--batch", "2",
            "--crop", "64", "--level-steps", "1", "--save-every", "1", "--val-dir", str(images),
            "--val-images", "1", "--val-every", "0", "--device", "cpu", *extra]
    return run_lic(*args)


def test_tiny_run_with_gan_exports_every_level_and_resumes(images, tmp_path):
    out = tmp_path / "run"
    r = _train(images, out, 2, "--disc-start", "1", "--max-minutes", "0")
    assert r.exit_code == 0, r.output
    assert "resume" in r.output and not (out / "model.safetensors").exists()
    r = _train(images, out, 2, "--disc-start", "1")
    assert r.exit_code == 0, r.output
    run = json.loads((out / "run.json").read_text())
    assert run["finished"] and run["steps_done"] == 2 and run["model"]["levels"] == {"1": 32, "2": 64}
    for level, row in run["validation"]["levels"].items():
        assert row["bpp"] > 0 and row["K"] == 2 ** (int(level) + 4)
    logged = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(e.get("final") for e in logged)
    model = out / "model.safetensors"
    image = lic.decompress(lic.compress(photo_like(40, 40), quality=2, model=str(model)), model=str(model))
    assert image.size == (40, 40)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "vq", "--N", "8"], "--model hyperprior or video only"),
        (["--intra-quality", "2"], "--model video only"),
        (["--codebook-size", "64"], "--model vq only"),
        (["--model", "vq", "--channels", "8,8"], "four resolutions"),
        (["--model", "vq", "--channels", "a,b"], "comma-separated"),
        (["--model", "vq", "--crop", "40"], "multiple of 16"),
        (["--model", "vq", "--codebook-size", "100"], "at least 4096"),
    ],
)
def test_options_of_the_other_family_are_refused(images, tmp_path, extra, message):
    r = run_lic("train", str(images), "--out", str(tmp_path / "o"), *extra)
    assert r.exit_code != 0 and message in r.output, r.output


def test_lpips_loss_without_cached_weights_is_a_clear_error(monkeypatch, tmp_path):
    from lic.errors import InputError
    from lic.train.vq import lpips_loss

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(InputError, match="never downloads"):
        lpips_loss(torch.device("cpu"))
