"""`ttf collect` and `ttf eval` end to end (tiny), including a policy checkpoint through ttf eval."""

import json

import numpy as np
import torch

from ttfkit.data import ReplayBuffer
from ttfkit.envs.evaluate import EvalResult
from ttfkit.scripts.cli import main as ttf


def test_ttf_collect_then_resume(tmp_path, capsys):
    out = tmp_path / "push.zarr"
    args = ["collect", "--env", "ttfkit/fetch-push-v4", "--out", str(out), "--seed", "2", "--noise", "0.05"]
    assert ttf(args + ["--episodes", "2"]) == 0
    assert ttf(args + ["--episodes", "3"]) == 0
    text = capsys.readouterr().out
    assert "3 attempted (1 this run)" in text
    buf = ReplayBuffer.open(out)
    assert buf.attrs["attempted_seeds"] == [2_000_000, 2_000_001, 2_000_002]
    assert buf.attrs["noise"] == 0.05 and buf.attrs["env_id"] == "ttfkit/fetch-push-v4"
    assert set(buf.keys()) >= {"agent_pos", "environment_state", "action", "executed_action"}
    assert ttf(args[:-2] + ["--noise", "0.2", "--episodes", "3"]) == 2  # settings differ: refused


def test_ttf_eval_expert_writes_json(tmp_path, capsys):
    out = tmp_path / "res.json"
    assert ttf(["eval", "--policy", "expert", "--env", "ttfkit/fetch-pick-and-place-v4", "--episodes", "3",
                "--n-envs", "1", "--seed", "7", "--out", str(out)]) == 0
    result = EvalResult.from_json(out.read_text())
    assert result.seeds == (7, 8, 9) and result.success_rate == 1.0
    assert "success 3/3" in capsys.readouterr().out


def test_ttf_eval_loads_a_policy_checkpoint(tmp_path):
    """An untrained flow policy checkpoint runs through the evaluator via ttfkit.policies.load."""
    from ttfkit.policies import make_policy

    torch.manual_seed(0)
    policy = make_policy("flow", obs_shapes={"agent_pos": (10,), "environment_state": (15,)}, action_dim=4,
                         horizon=8, n_obs_steps=2, n_action_steps=4, num_steps=2)
    ckpt = tmp_path / "ckpt"
    policy.save(ckpt)
    assert ttf(["eval", "--policy", str(ckpt), "--env", "ttfkit/fetch-push-v4", "--episodes", "2",
                "--n-envs", "1", "--max-steps", "10"]) == 0
    data = json.loads((ckpt / "eval_fetch-push-v4.json").read_text())
    assert data["n_episodes"] == 2 and data["policy"] == str(ckpt)
    assert all(n == 10 or ok for n, ok in zip(data["lengths"], data["successes"]))
    assert np.isfinite(data["returns"]).all()


def test_bench_experts_skips_the_tasks_without_an_expert():
    import ttfkit.envs as envs
    from ttfkit.scripts.bench_experts import expert_tasks

    tasks, skipped = expert_tasks()
    assert sorted(tasks + [t for t, _ in skipped]) == sorted(envs.list_envs())
    assert [t for t, _ in skipped] == ["ttfkit/robomimic-tool-hang-v0", "ttfkit/robomimic-transport-v0"]
    assert all("no scripted expert" in why for _, why in skipped)
    assert "ttfkit/robomimic-lift-v0" in tasks and "ttfkit/fetch-push-v4" in tasks
