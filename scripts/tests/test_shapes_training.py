"""Shapes-model training: the batched training forward matches the runtime forward, stages resume from their
checkpoints, and a few steps of every stage export a model folder that validates."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import sora.shapes_training as training
import train_shapes
from sora.manifest import validate_manifest
from sora.shapes_export import export_shapes_model
from sora.shapes_world import SIZE


@pytest.mark.parametrize("tdtm", [False, True])
def test_batched_training_forward_equals_the_runtime_forward_per_sample(tdtm):
    _, stdit = training.build_text_and_dit()
    torch.manual_seed(0)
    for param in stdit.parameters():  # adaLN-zero init would make every output zero
        param.data.normal_(0, 0.05)
    stdit.eval()
    z = torch.randn(2, 4, 5, 8, 8)  # odd T: TDTM's leftover frame is covered too
    t = torch.tensor([700.0, 200.0])
    y = torch.randn(2, 6, 64)
    valid = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    with torch.no_grad():
        batched = training.dit_forward(stdit, z, t, y, valid, tdtm=tdtm)
        for b in range(2):
            mask = torch.zeros(1, 300)
            mask[0, : int(valid[b].sum())] = 1
            caption = torch.zeros(1, 1, 300, 64)
            caption[0, 0, :6] = y[b]
            size = torch.tensor([float(SIZE)])
            alone = stdit(z[b : b + 1], t[b : b + 1], caption, mask, torch.tensor([24.0]), size, size, tdtm=tdtm)
            assert torch.allclose(batched[b : b + 1], alone, atol=1e-5)


@pytest.fixture()
def few_combinations(monkeypatch):
    small = training.training_combinations()[:6]
    monkeypatch.setattr(training, "training_combinations", lambda: small)
    return small


def test_a_stage_resumes_from_its_checkpoint(tmp_path, few_combinations):
    training.train_vae_spatial(tmp_path, steps=2, budget_s=60, batch=2)
    first = training.load_checkpoint(tmp_path / "vae_spatial.pt")
    assert first["step"] == 2 and first["done"]
    training.train_vae_spatial(tmp_path, steps=2, budget_s=60, batch=2)  # finished: skipped
    assert torch.equal(training.load_checkpoint(tmp_path / "vae_spatial.pt")["encoder"]["net.0.weight"],
                       first["encoder"]["net.0.weight"])
    training.train_vae_spatial(tmp_path / "b", steps=4, budget_s=0, batch=2)  # budget gone before any step
    assert training.load_checkpoint(tmp_path / "b" / "vae_spatial.pt")["step"] == 0


def test_every_stage_runs_and_exports_a_valid_model(tmp_path, few_combinations):
    torch.set_num_threads(1)
    tokenizer = train_shapes.write_training_tokenizer(tmp_path)
    training.train_vae_spatial(tmp_path, steps=1, budget_s=60, batch=2)
    training.train_vae_temporal(tmp_path, steps=1, budget_s=60, batch=1)
    training.encode_training_set(tmp_path, variants=1, budget_s=120)
    stats = training.load_checkpoint(tmp_path / "latent_stats.pt")
    assert len(stats["scale"]) == 4 and min(stats["scale"]) > 0
    training.train_dit(tmp_path, tokenizer, steps=2, budget_s=60, batch=2)
    assert training.load_checkpoint(tmp_path / "dit.pt")["step"] == 2
    out = tmp_path / "model"
    manifest = export_shapes_model(tmp_path, out)
    validate_manifest(manifest)
    assert manifest["name"] == "shapes" and manifest["defaults"]["resolution"] == "64x64"
    assert manifest["architecture"]["vae"]["scale"] == pytest.approx(stats["scale"])
    world = json.loads((out / "world.json").read_text())
    assert len(world["heldout"]) == 64


def test_fine_tuning_keeps_the_folders_decoders_and_normalisation_and_starts_the_dit_from_it(tmp_path, few_combinations):
    torch.set_num_threads(1)
    shapes = Path(__file__).resolve().parents[2] / "models" / "shapes"
    t5, stdit, vae = training.modules_from_folder(shapes)
    tokenizer = train_shapes.write_training_tokenizer(tmp_path)
    training.train_vae_spatial(tmp_path, steps=2, budget_s=60, batch=2, init_from=shapes)
    training.train_vae_temporal(tmp_path, steps=1, budget_s=60, batch=1, init_from=shapes)
    training.encode_training_set(tmp_path, variants=1, budget_s=120, init_from=shapes)
    trained, _, _ = training.load_vae(tmp_path)
    for key, value in vae.state_dict().items():
        assert torch.equal(trained.state_dict()[key], value), key
    assert trained.cfg.spatial.scaling_factor == vae.cfg.spatial.scaling_factor
    training.train_dit(tmp_path, tokenizer, steps=0, budget_s=60, batch=2, init_from=shapes)
    started_t5, started_stdit = training.load_text_and_dit(tmp_path)
    assert torch.equal(started_stdit.final_layer.linear.weight, stdit.final_layer.linear.weight)
    assert torch.equal(started_t5.shared.weight, t5.shared.weight)


def test_training_videos_are_the_latents_stage_videos_and_clips_start_on_chunk_boundaries(few_combinations):
    videos = training.TrainingVideos(variants=2, workers=1)
    assert videos.videos.shape == (12, training.NUM_FRAMES, SIZE, SIZE, 3)
    assert videos.attrs == few_combinations * 2
    combo, seed = videos.jobs[7]
    assert (videos.videos[7] == training.sample_video(combo, seed)).all()
    rng = random.Random(0)
    for _ in range(20):
        clip = videos.clip(rng, training.CHUNK)
        starts = [s for s in range(0, training.NUM_FRAMES, training.CHUNK)
                  if any((v[s : s + training.CHUNK] == clip).all() for v in videos.videos)]
        assert clip.shape[0] == training.CHUNK and starts


def test_a_timed_stage_counts_as_finished_when_its_minutes_run_out(tmp_path, few_combinations):
    training.train_vae_spatial(tmp_path / "plain", steps=10**6, budget_s=1, batch=2)
    assert not training.load_checkpoint(tmp_path / "plain" / "vae_spatial.pt")["done"]
    training.train_vae_spatial(tmp_path / "timed", steps=10**6, budget_s=1, batch=2, timed=True)
    state = training.load_checkpoint(tmp_path / "timed" / "vae_spatial.pt")
    assert state["done"] and 0 < state["step"] < 10**6


def test_stages_are_named_in_a_comma_list_and_run_in_pipeline_order():
    assert train_shapes.stage_list("all") == train_shapes.STAGES
    assert train_shapes.stage_list("dit,latents") == ("latents", "dit")
    with pytest.raises(Exception, match="unknown stage 'vae'"):
        train_shapes.stage_list("latents,vae")
