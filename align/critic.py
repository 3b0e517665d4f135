"""Learned chunk critic Q(obs, chunk): P(episode success | observation window, executed chunk).

Fitted on closed-loop rollouts of the (stochastic) base policy: every planned chunk is recorded with the
policy's observation window, and labelled with the outcome of its episode (Monte-Carlo success). The
reward is r = log sigmoid(Q) = log P(success | obs, chunk), so p_r ∝ p·P(success | ...) tilts the policy
towards chunks that lead to success. Differentiable (usable with guidance).

Shapes: obs windows {key: (To, ...)} in dataset units; chunks (H, Da) in env units (the critic
normalises them with the policy's normaliser); features = [policy.encode_obs(obs) (Dc), chunk (H·Da)].
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ttfkit.align.rewards import register_reward
from ttfkit.data.atomic import replace_path

__all__ = ["ChunkCritic", "CriticReward", "collect_critic_data", "fit_critic", "save_critic", "load_critic"]

logger = logging.getLogger(__name__)


class ChunkCritic(nn.Module):
    """MLP logit Q(cond (B, Dc), chunk (B, H, Da) normalised) -> (B,)."""

    def __init__(self, cond_dim: int, horizon: int, action_dim: int, hidden: int = 256, depth: int = 2) -> None:
        super().__init__()
        if min(cond_dim, horizon, action_dim, hidden, depth) < 1:
            raise ValueError(f"bad critic sizes {cond_dim=}, {horizon=}, {action_dim=}, {hidden=}, {depth=}")
        self.sizes = {"cond_dim": cond_dim, "horizon": horizon, "action_dim": action_dim, "hidden": hidden,
                      "depth": depth}
        layers: list[nn.Module] = [nn.Linear(cond_dim + horizon * action_dim, hidden), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(hidden, hidden), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 1))

    def forward(self, cond: Tensor, chunk: Tensor) -> Tensor:
        return self.net(torch.cat([cond, chunk.reshape(chunk.shape[0], -1)], dim=1))[:, 0]


@register_reward("critic")
class CriticReward:
    """r(chunk) = log sigmoid(Q(cond, normalise(chunk))) with cond from the context (``context["cond"]``).

    Args:
        critic: a :class:`ChunkCritic` (or a checkpoint directory for :func:`load_critic`).
        policy: the flow policy whose normaliser maps env-unit chunks back to its normalised space.
    """

    differentiable = True

    def __init__(self, critic, policy) -> None:
        self.critic = load_critic(critic) if isinstance(critic, (str, os.PathLike)) else critic
        self.policy = policy

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        if not isinstance(cond, dict) or "cond" not in cond:
            raise KeyError("the critic reward needs context {'cond': (1, Dc)} (AlignedPolicy provides it)")
        c = cond["cond"].expand(x.shape[0], -1)
        xn = self.policy._normalize(self.policy.config.action_key, x)
        return nn.functional.logsigmoid(self.critic(c, xn))


def collect_critic_data(policy, env_id: str, n_episodes: int, *, seed: int, n_envs: int = 1,
                        max_steps: int | None = None) -> dict[str, Tensor]:
    """Roll ``policy`` out with ``ttfkit.envs.evaluate`` and record (cond, normalised chunk, success).

    Returns {"cond": (K, Dc), "chunk": (K, H, Da), "success": (K,) float}. Pure w.r.t. the policy apart
    from its observation/action queues.
    """
    from ttfkit.envs import evaluate

    recorder = _Recorder(policy)
    try:
        result = evaluate(recorder, env_id, n_episodes, seed=seed, n_envs=n_envs, max_steps=max_steps)
    finally:
        recorder.close()
    conds, chunks, labels = [], [], []
    for (batch, env_j, cond, chunk) in recorder.records:
        ep = batch * n_envs + env_j
        if ep >= n_episodes:
            continue  # padded envs of the last batch
        conds.append(cond)
        chunks.append(chunk)
        labels.append(float(result.successes[ep]))
    logger.info("critic data: %d chunks from %d episodes, success rate %.2f", len(labels), n_episodes,
                result.success_rate)
    return {"cond": torch.stack(conds), "chunk": torch.stack(chunks), "success": torch.tensor(labels)}


def fit_critic(data: dict[str, Tensor], *, horizon: int, action_dim: int, steps: int = 500, lr: float = 1e-3,
               batch: int = 256, hidden: int = 256, generator: torch.Generator | None = None) -> ChunkCritic:
    """Binary cross-entropy fit of Q on ``collect_critic_data`` output; returns the critic in eval mode."""
    n = data["success"].shape[0]
    if n == 0:
        raise ValueError("no critic data")
    critic = ChunkCritic(data["cond"].shape[1], horizon, action_dim, hidden=hidden)
    opt = torch.optim.AdamW(critic.parameters(), lr=lr, weight_decay=1e-4)
    for _ in range(steps):
        idx = torch.randint(0, n, (min(batch, n),), generator=generator)
        logit = critic(data["cond"][idx], data["chunk"][idx])
        loss = nn.functional.binary_cross_entropy_with_logits(logit, data["success"][idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return critic.eval()


def save_critic(critic: ChunkCritic, path: str | os.PathLike) -> Path:
    """Directory with config.json (sizes) and model.safetensors; written atomically (temp + rename)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in critic.state_dict().items()}, tmp / "model.safetensors")
    (tmp / "config.json").write_text(json.dumps({"kind": "chunk_critic", "format_version": 1, **critic.sizes}))
    return replace_path(tmp, path)


def load_critic(path: str | os.PathLike) -> ChunkCritic:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no critic checkpoint at {path} (missing config.json)")
    cfg = json.loads((path / "config.json").read_text())
    if cfg.get("kind") != "chunk_critic":
        raise ValueError(f"{path / 'config.json'} is not a chunk critic (kind={cfg.get('kind')!r})")
    critic = ChunkCritic(cfg["cond_dim"], cfg["horizon"], cfg["action_dim"], hidden=cfg["hidden"], depth=cfg["depth"])
    critic.load_state_dict(load_file(str(path / "model.safetensors")))
    return critic.eval()


class _Recorder:
    """Policy proxy that records every planned chunk with its batch/env index and cond."""

    def __init__(self, policy) -> None:
        self.policy, self.records, self.batch = policy, [], -1
        self._had_instance = "predict_action_chunk" in vars(policy)
        self._orig = policy.predict_action_chunk
        policy.predict_action_chunk = self._predict

    def reset(self) -> None:
        self.batch += 1
        self.policy.reset()

    def select_action(self, obs):
        return self.policy.select_action(obs)

    @torch.no_grad()
    def _predict(self, obs_batch, generator=None, noise=None):
        chunk = self._orig(obs_batch, generator=generator, noise=noise)  # (B, H, Da) env units
        cond = self.policy.encode_obs(obs_batch)
        xn = self.policy._normalize(self.policy.config.action_key, chunk)
        for j in range(chunk.shape[0]):
            self.records.append((self.batch, j, cond[j].clone(), xn[j].clone()))
        return chunk

    def close(self) -> None:
        """Undo the routing of ``predict_action_chunk``."""
        if self._had_instance:
            self.policy.predict_action_chunk = self._orig
        else:
            vars(self.policy).pop("predict_action_chunk", None)
