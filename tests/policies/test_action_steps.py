"""Re-planning rate chosen at deployment: ``set_action_steps`` and ``ttf eval/align --n-action-steps``.
The same weights act on n actions of each chunk; the queue takes chunk[To-1 : To-1+n] and re-plans when empty."""

import pytest
import torch

from ttfkit.policies import make_policy
from ttfkit.policies.flow import FlowPolicy
from ttfkit.scripts import cli


def _policy(n_obs_steps=2, n_action_steps=4):
    torch.manual_seed(0)
    return make_policy("flow", obs_shapes={"agent_pos": (4,)}, action_dim=4, horizon=8, n_obs_steps=n_obs_steps,
                       n_action_steps=n_action_steps, num_steps=2, encoder={"lowdim_hidden": 8, "lowdim_features": 8},
                       backbone_options={"hidden_dim": 16, "n_blocks": 1})


def _count_plans(monkeypatch):
    """Replace plan_chunks by a known chunk (row h = h + 100 * plan index) and count its calls."""
    calls = []

    def plan(self, obs_batch, slots):
        calls.append(len(slots))
        k = len(calls) - 1
        return (torch.arange(8.0)[None, :, None] + 100 * k).expand(len(slots), 8, 4).clone()

    monkeypatch.setattr(FlowPolicy, "plan_chunks", plan)
    return calls


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_set_action_steps_replans_every_n_steps_and_executes_the_chunk_from_to_minus_1(monkeypatch, n):
    policy = _policy(n_obs_steps=2)
    calls = _count_plans(monkeypatch)
    policy.set_action_steps(n)
    policy.reset()
    actions = [float(policy.select_action({"agent_pos": torch.zeros(1, 4).numpy()})[0, 0]) for _ in range(14)]
    assert len(calls) == -(-14 // n)  # ceil: one plan per n steps
    # step i executes row 1 + (i mod n) (To - 1 = 1) of plan i // n
    assert actions == [1 + i % n + 100 * (i // n) for i in range(14)]
    assert policy.config.n_action_steps == n


def test_set_action_steps_rejects_what_the_chunk_cannot_hold():
    policy = _policy(n_obs_steps=2)
    with pytest.raises(ValueError, match="n_action_steps=8"):  # To - 1 + 8 > H = 8
        policy.set_action_steps(8)
    with pytest.raises(ValueError, match="n_action_steps=0"):
        policy.set_action_steps(0)
    assert policy.config.n_action_steps == 4  # unchanged after a refused value


def test_ttf_eval_n_action_steps_sets_the_replanning_rate_and_names_its_result(tmp_path, monkeypatch, capsys):
    policy = _policy(n_obs_steps=1, n_action_steps=4)
    ckpt = tmp_path / "ckpt"
    policy.save(ckpt)
    calls = _count_plans(monkeypatch)
    argv = ["eval", "--checkpoint", str(ckpt), "--env", "ttfkit/metaworld-reach-v3", "--episodes", "1",
            "--n-envs", "1", "--workers", "0", "--max-steps", "8", "--no-stop-on-success"]
    assert cli.main(argv) == 0
    assert len(calls) == 2 and (ckpt / "eval_metaworld-reach-v3.json").is_file()
    calls.clear()
    assert cli.main([*argv, "--n-action-steps", "2"]) == 0
    assert len(calls) == 4 and (ckpt / "eval_metaworld-reach-v3_ta2.json").is_file()
    capsys.readouterr()
    assert cli.main([*argv, "--n-action-steps", "9"]) == 2
    assert "n_action_steps=9" in capsys.readouterr().err


def test_expert_and_align_handle_n_action_steps(tmp_path, capsys):
    """--expert has no chunks to re-plan: refused before any env is built; ttf align applies the value to its
    policy (a value the chunk cannot hold is the config's error, printed as `ttf align: error: ...`)."""
    assert cli.main(["eval", "--expert", "--env", "ttfkit/metaworld-reach-v3", "--n-action-steps", "2"]) == 2
    assert "--n-action-steps applies to a --checkpoint policy" in capsys.readouterr().err
    ckpt = tmp_path / "ckpt"
    _policy(n_obs_steps=1, n_action_steps=4).save(ckpt)
    assert cli.main(["align", "--checkpoint", str(ckpt), "--env", "ttfkit/metaworld-reach-v3",
                     "--n-action-steps", "9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ttf align: error:") and "n_action_steps=9" in err
