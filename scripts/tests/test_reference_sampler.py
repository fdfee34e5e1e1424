import math

import pytest
import torch

from sora.reference_sampler import (
    IOS,
    OPENSORA,
    SamplerConfig,
    guided_drift,
    raw_timesteps,
    sample,
    sampling_timesteps,
    step_sizes,
    transform_latent_frames,
    transform_ratio,
)

LATENT = (1, 4, 3, 4, 4)
Y_SHAPE = (1, 1, 300, 8)
VIDEO = {"height": 256, "width": 256, "num_frames": 68}


def inputs(seed=0):
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(LATENT, generator=generator)
    y = torch.randn(Y_SHAPE, generator=generator)
    y_null = torch.randn(Y_SHAPE, generator=generator)
    return z, y, y_null, torch.ones(1, 300)


def synthetic_straight_flow_denoiser(target_cond, target_uncond):
    """Synthetic analytic denoiser (not a model): the exact rectified-flow velocity (x0 - z)/tau towards a fixed
    target, one target per CFG half, plus 4 junk channels that the sampler must ignore."""

    def model(z_pair, t_pair, y_pair, mask):
        tau = (t_pair / 1000).view(-1, 1, 1, 1, 1)
        targets = torch.cat([target_cond, target_uncond], dim=0)
        velocity = (targets - z_pair) / tau
        return torch.cat([velocity, torch.full_like(velocity, 1e6)], dim=1)

    return model


def test_opensora_and_ios_ratios_match_reference_values():
    assert transform_latent_frames("opensora", 68) == 20
    assert transform_latent_frames("opensora", 1) == 1
    assert transform_latent_frames("ios", 68) == 15
    assert transform_ratio(256, 256, 20) == pytest.approx(0.5 * math.sqrt(20))
    assert transform_ratio(256, 256, 20) == pytest.approx(2.2361, abs=1e-4)
    assert transform_ratio(256, 256, 15) == pytest.approx(1.9365, abs=1e-4)
    assert transform_ratio(192, 192, 15) == pytest.approx(1.4524, abs=1e-4)


def test_transformed_timesteps_by_hand():
    opensora = sampling_timesteps(OPENSORA, **VIDEO)
    ios = sampling_timesteps(IOS, **VIDEO)
    assert opensora[0] == pytest.approx(1000) and ios[0] == pytest.approx(1000)
    r = 0.5 * math.sqrt(20)
    tau = 29 / 30  # raw t_1 = 966.67, not rounded upstream
    assert opensora[1] == pytest.approx(1000 * r * tau / (1 + (r - 1) * tau), rel=1e-12)
    r = 0.5 * math.sqrt(15)
    tau = 967 / 1000  # the app rounds the raw timestep first
    assert ios[1] == pytest.approx(1000 * r * tau / (1 + (r - 1) * tau), rel=1e-12)
    assert all(a > b for a, b in zip(opensora, opensora[1:]))


def test_raw_timesteps_and_rounding():
    assert raw_timesteps(SamplerConfig(num_steps=4)) == [1000.0, 750.0, 500.0, 250.0]
    assert raw_timesteps(IOS)[1] == 967.0
    assert raw_timesteps(SamplerConfig(num_steps=30, discrete_timesteps=True))[2] == 933.0
    # exact .5 ties (16 steps: t_3 = 812.5): Swift rounds away from zero, Python to even
    assert raw_timesteps(SamplerConfig(num_steps=16, transform="ios", discrete_timesteps=True))[3] == 813.0
    assert raw_timesteps(SamplerConfig(num_steps=16, discrete_timesteps=True))[3] == 812.0


@pytest.mark.parametrize("config", [OPENSORA, IOS, SamplerConfig(num_steps=7)])
def test_step_sizes_sum_to_one_and_last_step_reaches_zero(config):
    timesteps = sampling_timesteps(config, **VIDEO)
    dts = step_sizes(timesteps)
    assert len(dts) == config.num_steps
    assert math.fsum(dts) == pytest.approx(1.0, abs=1e-12)
    assert dts[-1] == timesteps[-1] / 1000
    assert all(dt > 0 for dt in dts)


def test_euler_arithmetic_is_exact():
    z, y, y_null, mask = inputs()
    generator = torch.Generator().manual_seed(5)
    fixed = torch.randn((2, 8) + LATENT[2:], generator=generator)
    config = SamplerConfig(num_steps=3)
    result = sample(lambda *args: fixed, z, y, y_null, mask, **VIDEO, config=config)
    expected = z.clone()
    drift = fixed[1:2, :4] + 7.0 * (fixed[0:1, :4] - fixed[1:2, :4])
    for dt in step_sizes(sampling_timesteps(config, **VIDEO)):
        expected = expected + drift * torch.tensor(dt, dtype=torch.float32)
    assert torch.equal(result.latent, expected)
    assert [step.index for step in result.trace] == [0, 1, 2]
    assert all(torch.equal(step.drift, drift) for step in result.trace)


def test_model_sees_cfg_batch_with_conditional_first():
    z, y, y_null, mask = inputs()
    calls = []

    def recording_model(z_pair, t_pair, y_pair, mask_in):
        calls.append((z_pair.clone(), t_pair.clone(), y_pair, mask_in))
        return torch.zeros((2, 8) + LATENT[2:])

    result = sample(recording_model, z, y, y_null, mask, **VIDEO, config=SamplerConfig(num_steps=2))
    assert len(calls) == 2
    z_pair, t_pair, y_pair, mask_in = calls[0]
    assert torch.equal(z_pair[0], z[0]) and torch.equal(z_pair[1], z[0])
    assert torch.equal(y_pair[0], y[0]) and torch.equal(y_pair[1], y_null[0])
    assert t_pair.dtype == torch.float32 and t_pair.tolist() == [1000.0, 1000.0]
    assert mask_in is mask
    assert calls[1][1][0].item() == pytest.approx(result.trace[1].t, rel=1e-6)


@pytest.mark.parametrize("config", [OPENSORA, IOS])
def test_straight_flow_lands_on_cfg_combined_target(config):
    z, y, y_null, mask = inputs()
    generator = torch.Generator().manual_seed(9)
    cond, uncond = torch.randn(LATENT, generator=generator), torch.randn(LATENT, generator=generator)
    result = sample(synthetic_straight_flow_denoiser(cond, uncond), z, y, y_null, mask, **VIDEO, config=config)
    torch.testing.assert_close(result.latent, uncond + 7.0 * (cond - uncond), atol=1e-4, rtol=1e-5)
    assert len(result.trace) == 30
    assert math.fsum(step.dt for step in result.trace) == pytest.approx(1.0)


def test_guided_drift_uses_velocity_channels_only():
    out = torch.arange(2 * 8, dtype=torch.float32).view(2, 8, 1, 1, 1)
    drift = guided_drift(out, 4, 2.0)
    assert drift.flatten().tolist() == [(8 + c) + 2 * (c - (8 + c)) for c in range(4)]  # uncond row 1, cond row 0


def test_rejects_bad_arguments():
    z, y, y_null, mask = inputs()
    zeros = lambda *args: torch.zeros((2, 8) + LATENT[2:])  # noqa: E731
    with pytest.raises(ValueError, match="num_steps"):
        sample(zeros, z, y, y_null, mask, **VIDEO, config=SamplerConfig(num_steps=0))
    with pytest.raises(ValueError, match="transform"):
        sample(zeros, z, y, y_null, mask, **VIDEO, config=SamplerConfig(transform="linear"))
    with pytest.raises(ValueError, match="y_null"):
        sample(zeros, z, y, y_null[:, :, :10], mask, **VIDEO)
    with pytest.raises(ValueError, match="denoiser output"):
        sample(lambda *args: torch.zeros(1, 8, 1, 1, 1), z, y, y_null, mask, **VIDEO)
