"""Reward registry and analytic robot rewards against hand-computed values; the NFE counter."""

import pytest
import torch

from ttfkit.align import NFECounter, list_rewards, make_reward, register_reward


def test_registry_builds_and_rejects():
    assert {"quadratic", "zero", "goal_distance", "smoothness", "keep_out"} <= set(list_rewards())
    with pytest.raises(KeyError, match="unknown reward 'nope'"):
        make_reward("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_reward("zero")(lambda: None)


def test_quadratic_and_zero():
    r = make_reward("quadratic", center=[1.0, -1.0], tau=0.5)
    x = torch.tensor([[1.0, -1.0], [2.0, -1.0]])
    torch.testing.assert_close(r(x), torch.tensor([0.0, -2.0]))
    assert r.differentiable
    torch.testing.assert_close(make_reward("zero")(x), torch.zeros(2))
    with pytest.raises(ValueError, match="center has 2 dims"):
        r(torch.zeros(3, 5))


def test_goal_distance_delta_and_absolute():
    chunk = torch.zeros(2, 4, 4)
    chunk[0, :, 0] = 1.0  # +1 in x every step -> moves 4·scale
    ctx = {"agent_pos": torch.tensor([0.1, 0.2, 0.3, 0.0])}
    r = make_reward("goal_distance", goal=[0.14, 0.2, 0.3], action_scale=0.01)
    torch.testing.assert_close(r(chunk, ctx), torch.tensor([0.0, -0.04]), atol=1e-6, rtol=0)
    r3 = make_reward("goal_distance", goal=[0.13, 0.2, 0.3], action_scale=0.01, steps=3)  # first 3 executed
    torch.testing.assert_close(r3(chunk, ctx)[0], torch.tensor(0.0), atol=1e-6, rtol=0)
    ra = make_reward("goal_distance", goal=[1.0, 0.0, 0.0], mode="absolute")
    torch.testing.assert_close(ra(chunk), torch.tensor([0.0, -1.0]))
    rg = make_reward("goal_distance", start_key="agent_pos")  # goal from the context
    torch.testing.assert_close(rg(chunk, {**ctx, "goal": torch.tensor([0.1, 0.2, 0.3])}), torch.tensor([-0.04, 0.0]))
    with pytest.raises(KeyError, match="agent_pos"):
        r(chunk, {})


def test_smoothness_penalises_jerk_not_constant_velocity():
    h = torch.arange(8.0)
    linear = torch.stack([h, 2 * h], -1)[None]  # (1, 8, 2): zero second and third differences
    cubic = (h**3)[None, :, None]
    r = make_reward("smoothness", order=3)
    torch.testing.assert_close(r(linear), torch.zeros(1))
    torch.testing.assert_close(r(cubic), torch.tensor([-36.0 * 5]))  # Δ³ h³ = 6 on 5 entries
    with pytest.raises(ValueError, match="too short"):
        r(torch.zeros(1, 3, 2))


def test_keep_out_box():
    chunk = torch.zeros(1, 3, 3)
    ctx = {"agent_pos": torch.tensor([0.5, 0.5, 0.5])}
    soft = make_reward("keep_out", low=[0, 0, 0], high=[1, 1, 1])
    torch.testing.assert_close(soft(chunk, ctx), torch.tensor([-1.5]))  # depth 0.5 at each of 3 steps
    hard = make_reward("keep_out", low=[0, 0, 0], high=[1, 1, 1], hard=True)
    torch.testing.assert_close(hard(chunk, ctx), torch.tensor([-3.0]))
    assert soft.differentiable and not hard.differentiable
    outside = {"agent_pos": torch.tensor([2.0, 0.5, 0.5])}
    torch.testing.assert_close(soft(chunk, outside), torch.zeros(1))
    x = chunk.clone().requires_grad_(True)
    off = {"agent_pos": torch.tensor([0.4, 0.5, 0.5])}  # nearest face: x = 0, depth 0.4
    val = soft(x, off)
    val.sum().backward()
    torch.testing.assert_close(val.detach(), torch.tensor([-1.2]))
    # d depth / d a_h[x] = action_scale·(number of later steps whose path includes a_h), negated
    torch.testing.assert_close(x.grad[0, :, 0], -0.01 * torch.tensor([3.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="low < high"):
        make_reward("keep_out", low=[1, 0, 0], high=[0, 1, 1])


def test_nfe_counter_counts_rows_and_forwards_attributes(mix2d):
    c = NFECounter(mix2d)
    c.velocity(torch.zeros(5), torch.zeros(5, 2))
    c.velocity(torch.zeros(3), torch.zeros(3, 2))
    assert (c.calls, c.evals) == (2, 8)
    assert c.dim == 2
    c.reset()
    assert (c.calls, c.evals) == (0, 0)
    net = NFECounter(lambda t, s, x: x)
    net(torch.zeros(4), 0.5, torch.zeros(4, 2))
    net(0.3, 0.5, torch.zeros(3, 2))  # scalar times: rows from the first tensor
    assert (net.calls, net.evals) == (2, 7)
