"""FlowPolicy: samplers against the closed-form Gaussian flow, the loss, seeding, receding horizon."""

import math

import numpy as np
import pytest
import torch

from ttfkit.data import Normalizer
from ttfkit.policies import make_policy
from ttfkit.policies.flow import euler_sample, midpoint_sample

OBS = {"agent_pos": (3,), "environment_state": (5,)}


def _policy(**kw):
    kw.setdefault("backbone_options", {"hidden_dim": 32, "n_blocks": 1})
    kw.setdefault("encoder", {"lowdim_hidden": 16, "lowdim_features": 8})
    return make_policy("flow", obs_shapes=OBS, action_dim=2, horizon=8, n_obs_steps=2, n_action_steps=4, **kw)


def _obs(b, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(b, 2, *s, generator=g) for k, s in OBS.items()}


def _gaussian_velocity(mu, s):
    """Exact u(t, x) = E[x1 - x0 | x_t = x] for x0 ~ N(0, 1), x1 ~ N(mu, s^2), x_t = (1-t) x0 + t x1."""
    def u(t, x):
        t = t[:, None, None]
        var = (1 - t) ** 2 + t ** 2 * s ** 2
        return mu + (t * s ** 2 - (1 - t)) / var * (x - t * mu)
    return u


def test_samplers_converge_to_the_exact_gaussian_flow_map_at_their_order():
    mu, s = 0.7, 0.3
    x0 = torch.randn(64, 4, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = mu + s * x0  # the flow map of the linear Gaussian path is affine
    u = _gaussian_velocity(mu, s)
    err = {(name, n): (fn(u, x0, n) - exact).abs().max().item()
           for name, fn in (("euler", euler_sample), ("midpoint", midpoint_sample)) for n in (8, 16, 32)}
    # Euler is first order: halving h halves the error. Midpoint is at least second order (halving
    # h divides the error by >= 4; on this affine field it is ~8 at t=1).
    assert 1.7 < err["euler", 8] / err["euler", 16] < 2.3
    assert 1.7 < err["euler", 16] / err["euler", 32] < 2.3
    assert err["midpoint", 8] / err["midpoint", 16] > 3.4
    assert err["midpoint", 16] / err["midpoint", 32] > 3.4
    assert err["midpoint", 8] < err["euler", 32]
    assert err["midpoint", 32] < 1e-4


def test_flow_loss_matches_the_linear_path_target():
    torch.manual_seed(0)
    policy = _policy()
    obs, act = _obs(5), torch.randn(5, 8, 2)
    noise = policy.draw_loss_noise(5, torch.Generator().manual_seed(3))
    loss, metrics = policy.compute_loss({"obs": obs, "action": act}, noise=noise)
    t = noise["t"][:, None, None]
    x_t = (1 - t) * noise["noise"] + t * act
    ref = ((policy.velocity(noise["t"], x_t, policy.encode_obs(obs)) - (act - noise["noise"])) ** 2).mean()
    torch.testing.assert_close(loss, ref)
    assert metrics["loss"] == pytest.approx(ref.item())


def test_predict_uses_noise_and_unnormalizes():
    torch.manual_seed(0)
    stats = {"agent_pos": (3,), "environment_state": (5,), "action": (2,)}
    norm = Normalizer.from_dict({k: {"mode": "minmax", "min": [-2.0] * s[0], "max": [4.0] * s[0],
                                     "mean": [0.0] * s[0], "std": [1.0] * s[0]} for k, s in stats.items()})
    policy = _policy(normalizer=norm, num_steps=3)
    obs = _obs(4)
    noise = torch.randn(4, 8, 2, generator=torch.Generator().manual_seed(5))
    chunk = policy.predict_action_chunk(obs, noise=noise)
    cond = policy.encode_obs(obs)
    x = euler_sample(lambda t, x: policy.velocity(t, x, cond), noise, 3)
    torch.testing.assert_close(chunk, (x + 1) / 2 * 6 - 2)  # [-1, 1] -> [-2, 4]
    again = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(9))
    same = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(9))
    other = policy.predict_action_chunk(obs, generator=torch.Generator().manual_seed(10))
    assert torch.equal(again, same) and not torch.equal(again, other)


def test_midpoint_sampler_config_is_used():
    torch.manual_seed(0)
    policy = _policy(sampler="midpoint", num_steps=2)
    obs, noise = _obs(2), torch.randn(2, 8, 2)
    cond = policy.encode_obs(obs)
    ref = midpoint_sample(lambda t, x: policy.velocity(t, x, cond), noise, 2)
    torch.testing.assert_close(policy.predict_action_chunk(obs, noise=noise), ref)


def test_select_action_pads_history_and_executes_the_queue_in_order():
    torch.manual_seed(0)
    policy = _policy()
    calls = []
    real = policy.predict_action_chunk

    def spy(obs_batch, generator=None, noise=None):
        calls.append({k: v.clone() for k, v in obs_batch.items()})
        return real(obs_batch, generator=torch.Generator().manual_seed(len(calls)))

    policy.predict_action_chunk = spy
    rng = np.random.default_rng(0)
    steps = [{k: rng.normal(size=(3, *s)).astype(np.float32) for k, s in OBS.items()} for _ in range(6)]
    policy.reset()
    out = [policy.select_action(o) for o in steps]
    assert len(calls) == 2  # n_action_steps=4: a new chunk at steps 0 and 4
    # first call: history is the first observation repeated (dataset padding)
    first = torch.from_numpy(steps[0]["agent_pos"])
    torch.testing.assert_close(calls[0]["agent_pos"], torch.stack([first, first], dim=1))
    # second call at step 4: history = observations 3 and 4
    torch.testing.assert_close(calls[1]["agent_pos"][:, 0], torch.from_numpy(steps[3]["agent_pos"]))
    torch.testing.assert_close(calls[1]["agent_pos"][:, 1], torch.from_numpy(steps[4]["agent_pos"]))
    chunk0 = real(calls[0], generator=torch.Generator().manual_seed(1))
    for i in range(4):  # chunk[To-1 + i]
        torch.testing.assert_close(out[i], chunk0[:, 1 + i])
    assert out[0].shape == (3, 2)
    policy.reset()
    policy.select_action(steps[0])
    assert len(calls) == 3  # reset empties the queue


def test_bad_inputs_raise_clear_errors():
    policy = _policy()
    with pytest.raises(ValueError, match="agent_pos"):
        policy.encode_obs({"agent_pos": torch.zeros(2, 3, 3), "environment_state": torch.zeros(2, 2, 5)})
    with pytest.raises(KeyError, match="environment_state"):
        policy.encode_obs({"agent_pos": torch.zeros(2, 2, 3)})
    with pytest.raises(ValueError, match="num_steps"):
        _policy(num_steps=0)
    with pytest.raises(ValueError, match="horizon"):
        make_policy("flow", obs_shapes=OBS, action_dim=2, horizon=4, n_obs_steps=2, n_action_steps=8)
    with pytest.raises(TypeError, match="widthh"):
        make_policy("flow", obs_shapes=OBS, action_dim=2, backbone_options={"widthh": 3})
    with pytest.raises(KeyError, match="nope"):
        make_policy("nope")
    # the chunk path checks its observations and noise once, before any network call
    with pytest.raises(ValueError, match="agent_pos"):
        policy.predict_action_chunk({"agent_pos": torch.zeros(2, 3, 3), "environment_state": torch.zeros(2, 2, 5)})
    bad = _obs(2)
    bad["environment_state"][1, 0, 4] = float("nan")
    with pytest.raises(ValueError, match="environment_state.*nan"):
        policy.predict_action_chunk(bad)
    with pytest.raises(ValueError, match=r"noise must be \(2, 8, 2\)"):
        policy.predict_action_chunk(_obs(2), noise=torch.zeros(1, 8, 2))


def test_device_follows_the_parameters_after_a_move():
    policy = _policy()
    assert policy.device == torch.device("cpu")  # cached from here on
    policy.to("meta")
    assert policy.device == torch.device("meta")
    assert next(policy.parameters()).device == policy.device


def test_reset_with_seed_makes_rollouts_reproducible():
    policy = _policy()
    rng = np.random.default_rng(1)
    steps = [{k: rng.normal(size=(2, *s)).astype(np.float32) for k, s in OBS.items()} for _ in range(5)]

    def rollout(seed):
        policy.reset(seed=seed)
        return torch.stack([policy.select_action(o) for o in steps])

    a, b, c = rollout(3), rollout(3), rollout(4)
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("kind", ["flow", "ddpm"])
def test_slot_rows_depend_only_on_their_episode_seed_and_observations(kind):
    """Protocol v2: slot j's actions are a function of its seed and its own observations, whatever the
    batch size, the other rows or when the slot was (re)started."""
    torch.manual_seed(0)
    if kind == "flow":
        policy = _policy()
    else:
        policy = make_policy("diffusion", obs_shapes=OBS, action_dim=2, horizon=8, n_obs_steps=2, n_action_steps=4,
                             sampler="ddpm", num_train_timesteps=10, backbone_options={"hidden_dim": 32, "n_blocks": 1},
                             encoder={"lowdim_hidden": 16, "lowdim_features": 8})
    rng = np.random.default_rng(0)
    mine = [{k: rng.normal(size=(1, *s)).astype(np.float32) for k, s in OBS.items()} for _ in range(9)]

    def run(batch, row, start_step):
        """Slot `row` of a `batch`-row rollout starts its episode (seed 123) at `start_step`."""
        other = np.random.default_rng(batch + start_step)
        policy.reset()
        for j in range(batch):
            policy.reset_slot(j, seed=1000 + j)
        out = []
        for t in range(start_step + len(mine)):
            obs = {k: other.normal(size=(batch, *s)).astype(np.float32) for k, s in OBS.items()}
            if t == start_step:
                policy.reset_slot(row, seed=123)
            if t >= start_step:
                for k in OBS:
                    obs[k][row] = mine[t - start_step][k][0]
            action = policy.select_action(obs)
            if t >= start_step:
                out.append(action[row])
        return torch.stack(out)

    ref = run(1, 0, 0)
    for batch, row, start_step in [(2, 1, 0), (3, 0, 2), (5, 3, 3), (11, 10, 1)]:
        assert torch.equal(run(batch, row, start_step), ref), (batch, row, start_step)
    policy.reset()
    policy.reset_slot(0, seed=124)
    assert not torch.equal(torch.stack([policy.select_action(o) for o in mine])[:, 0], ref)


def test_plan_chunks_replans_only_rows_with_empty_queues():
    policy = _policy()
    seen = []
    real = policy.plan_chunks

    def spy(obs_batch, slots):
        seen.append(list(slots))
        return real(obs_batch, slots)

    policy.plan_chunks = spy
    steps = [{k: np.zeros((3, *s), np.float32) for k, s in OBS.items()} for _ in range(6)]
    policy.reset()
    policy.select_action(steps[0])
    policy.select_action(steps[1])
    policy.reset_slot(1, seed=5)  # slot 1 starts a new episode: only it is re-planned next step
    for o in steps[2:]:
        policy.select_action(o)
    assert seen == [[0, 1, 2], [1], [0, 2]]  # n_action_steps=4: rows 0, 2 again at step 4
    assert policy.slot_generator(1).initial_seed() == 5 and policy.slot_generator(0) is None
