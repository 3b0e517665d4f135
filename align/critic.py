"""Learned chunk critic Q(obs, chunk): P(episode success | observation window, executed chunk).

The deployable reward: fitted on closed-loop rollouts of the (stochastic) base policy, it needs no
simulator at test time. Every planned chunk is recorded with the policy's observation window, the
episode's reset seed and the step at which it was planned, and labelled with its episode's outcome:

- ``label="success"``: y = 1 if the episode succeeded (Monte-Carlo success);
- ``label="discounted"``: y = gamma^(steps from the chunk to the success), 0 on failure, so that chunks
  closer to success score higher (a Monte-Carlo value with a per-step discount).

The reward is r = log sigmoid(Q) (the mean logit over an ensemble of ``members`` critics fitted on
bootstrap resamples of the episodes), so p_r ∝ p·P(success | ...) tilts the policy towards chunks that
lead to success. Differentiable (usable with guidance).

Shapes: obs windows {key: (To, ...)} in dataset units; chunks (H, Da) in env units (the critic
normalises them with the policy's normaliser); features = [policy.encode_obs(obs) (Dc), chunk (H·Da)].
The critic never reads raw observations: its observation features are the policy's own encoder output,
so a pixel policy's critic sees the images through the policy's (frozen) vision encoder, plus agent_pos
as that encoder takes it; the rollouts it is fitted on store only these (K, Dc) features, not images.
A saved critic records the env id, the env's image options (``env_kwargs``: pixels, image_size, camera(s)),
the policy's observation shapes and a fingerprint of the policy it was fitted for; using it with another
policy, env or camera is an error naming both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ttfkit.align.rewards import register_reward
from ttfkit.data.atomic import replace_path

__all__ = ["ChunkCritic", "CriticReward", "collect_critic_data", "collect_lookahead_data", "fit_critic", "save_critic",
           "load_critic", "policy_fingerprint", "critic_quality", "episode_split"]

logger = logging.getLogger(__name__)


class ChunkCritic(nn.Module):
    """Ensemble of MLP logits Q(cond (B, Dc), chunk (B, H, Da) normalised) -> mean logit (B,)."""

    def __init__(self, cond_dim: int, horizon: int, action_dim: int, hidden: int = 256, depth: int = 2,
                 members: int = 1) -> None:
        super().__init__()
        if min(cond_dim, horizon, action_dim, hidden, depth, members) < 1:
            raise ValueError(f"bad critic sizes {cond_dim=}, {horizon=}, {action_dim=}, {hidden=}, {depth=}, "
                             f"{members=}")
        self.sizes = {"cond_dim": cond_dim, "horizon": horizon, "action_dim": action_dim, "hidden": hidden,
                      "depth": depth, "members": members}
        self.meta: dict = {}  # env_id, policy fingerprint, label: written by save_critic
        self.members = nn.ModuleList(_mlp(cond_dim + horizon * action_dim, hidden, depth) for _ in range(members))

    def forward(self, cond: Tensor, chunk: Tensor) -> Tensor:
        return self.member_logits(cond, chunk).mean(0)

    def member_logits(self, cond: Tensor, chunk: Tensor) -> Tensor:
        """(members, B) logits."""
        z = torch.cat([cond, chunk.reshape(chunk.shape[0], -1)], dim=1)
        return torch.stack([m(z)[:, 0] for m in self.members])


def _mlp(d_in: int, hidden: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(d_in, hidden), nn.SiLU()]
    for _ in range(depth - 1):
        layers += [nn.Linear(hidden, hidden), nn.SiLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, 1))


@register_reward("critic")
class CriticReward:
    """r(chunk) = scale · log sigmoid(Q(cond, normalise(chunk))) with cond from the context (``context["cond"]``).

    Args:
        critic: a :class:`ChunkCritic` (or a checkpoint directory for :func:`load_critic`).
        policy: the flow policy whose normaliser maps env-unit chunks back to its normalised space; a
            saved critic's recorded policy fingerprint must match it.
        scale: inverse temperature of the tilt (1: p·P(success)).
        env_id: when given, must match the env the critic was fitted on.
        env_kwargs: when given, the evaluated env's options; their image options must match the ones the
            critic was fitted on (a pixel policy's features depend on the camera and the image size).
    """

    differentiable = True

    def __init__(self, critic, policy, scale: float = 1.0, env_id: str | None = None,
                 env_kwargs: dict | None = None) -> None:
        self.critic = load_critic(critic) if isinstance(critic, (str, os.PathLike)) else critic
        self.policy, self.scale = policy, float(scale)
        if not np.isfinite(self.scale) or self.scale <= 0:
            raise ValueError(f"critic reward scale must be a positive finite number, got {scale!r}")
        check_critic(self.critic, policy, env_id, env_kwargs)

    def __call__(self, x: Tensor, cond=None) -> Tensor:
        if not isinstance(cond, dict) or "cond" not in cond:
            raise KeyError("the critic reward needs context {'cond': (1, Dc)} (AlignedPolicy provides it)")
        c = cond["cond"].expand(x.shape[0], -1)
        xn = self.policy._normalize(self.policy.config.action_key, x)
        self.critic.to(c.device)  # fitted on the CPU; follows the policy to its device
        return self.scale * nn.functional.logsigmoid(self.critic(c, xn))


def check_critic(critic: ChunkCritic, policy, env_id: str | None = None, env_kwargs: dict | None = None) -> None:
    """Raise ValueError when ``critic`` was fitted for another policy (observation shapes, sizes,
    fingerprint), env, or images (``env_kwargs``' image options, when both the critic and the caller
    name them)."""
    pc = policy.config
    shapes = critic.meta.get("obs_shapes")
    if shapes is not None:
        mine = {k: list(v) for k, v in pc.obs_shapes.items()}
        if {k: list(v) for k, v in shapes.items()} != mine:
            raise ValueError(f"critic was fitted for a policy reading {shapes}, this policy reads {mine}")
    dc = policy.encoder.out_dim
    want = {"cond_dim": dc, "horizon": pc.horizon, "action_dim": pc.action_dim}
    got = {k: critic.sizes[k] for k in want}
    if got != want:
        raise ValueError(f"critic sizes {got} do not match the policy's {want}")
    fp = critic.meta.get("policy_fingerprint")
    if fp is not None and fp != policy_fingerprint(policy):
        raise ValueError(f"critic was fitted for policy {fp} ({critic.meta.get('policy', '?')}), not for this "
                         f"policy {policy_fingerprint(policy)}")
    if env_id is not None and critic.meta.get("env_id") not in (None, env_id):
        raise ValueError(f"critic was fitted on env {critic.meta['env_id']!r}, not {env_id!r}")
    fitted = critic.meta.get("env_kwargs")
    if fitted is not None and env_kwargs is not None:
        env = env_id or critic.meta.get("env_id")  # one env: a different one was refused above
        theirs, mine = _view_options(fitted, env), _view_options(env_kwargs, env)
        if theirs != mine:
            raise ValueError(f"critic was fitted on images {theirs}, not on {mine}")


def _view_options(env_kwargs: dict, env_id: str | None) -> dict:
    """The options that decide what a policy sees (pixels, image_size, camera, cameras), the env's defaults
    filled in where ``env_id`` is a registered env (an explicit default camera equals an unnamed one)."""
    from ttfkit.envs.registry import env_options, list_envs

    full = env_options(env_id, **env_kwargs) if env_id in list_envs() else env_kwargs
    return {k: list(full[k]) if isinstance(full[k], tuple) else full[k] for k in _IMAGE_OPTIONS if k in full}


_IMAGE_OPTIONS = ("pixels", "image_size", "camera", "cameras")


def policy_fingerprint(policy) -> str:
    """sha256 (16 hex digits) of the policy's weights and normaliser statistics, in state-dict order."""
    h = hashlib.sha256()
    for name, t in policy.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def collect_critic_data(policy, env_id: str, n_episodes: int, *, seed: int, n_envs: int = 1,
                        max_steps: int | None = None, env_kwargs: dict | None = None, rollout_policy=None,
                        progress: bool = False) -> dict:
    """Roll ``rollout_policy`` (default ``policy``) out with ``ttfkit.envs.evaluate`` on seeds
    ``seed .. seed + n_episodes - 1`` in ``make_env(env_id, **env_kwargs)`` (a pixel policy needs the
    image options it reads) and record every planned chunk.

    Returns {"cond": (K, Dc), "chunk": (K, H, Da) normalised, "success": (K,) float, "episode": (K,) seed,
    "step": (K,) step of the episode at which the chunk was planned, "length": (K,) episode length,
    "result": the EvalResult}. ``rollout_policy`` may be an ``AlignedPolicy`` around ``policy`` (refits on
    the aligned policy's own rollouts). Mutates only the policies' queues.
    """
    from ttfkit.envs import evaluate

    recorder = _Recorder(policy, rollout_policy or policy)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_episodes, desc="critic rollouts", unit="ep")
    try:
        result = evaluate(recorder, env_id, n_episodes, seed=seed, n_envs=n_envs, max_steps=max_steps,
                          env_kwargs=dict(env_kwargs or {}),
                          on_episode=(lambda n, ok: bar.update(1)) if bar else None)
    finally:
        recorder.close()
        if bar:
            bar.close()
    outcome = {s: (ok, n) for s, ok, n in zip(result.seeds, result.successes, result.lengths)}
    rows = [r for r in recorder.records if r[0] in outcome]
    if not rows:
        raise ValueError(f"no chunks were recorded in {n_episodes} episodes of {env_id}")
    data = {"cond": torch.stack([r[2] for r in rows]), "chunk": torch.stack([r[3] for r in rows]),
            "episode": torch.tensor([r[0] for r in rows]), "step": torch.tensor([r[1] for r in rows]),
            "success": torch.tensor([float(outcome[r[0]][0]) for r in rows]),
            "length": torch.tensor([outcome[r[0]][1] for r in rows]), "result": result}
    logger.info("critic data: %d chunks from %d episodes, success rate %.2f", len(rows), n_episodes,
                result.success_rate)
    return data


def collect_lookahead_data(policy, env_id: str, n_episodes: int, *, seed: int, candidates: int = 4,
                           horizon: int = 120, every: int = 2, max_steps: int | None = None,
                           env_kwargs: dict | None = None, progress: bool = False) -> dict:
    """Counterfactual labels (training-time use of the simulator; the critic stays deployable): while the
    base policy acts on seeds ``seed ..``, at every ``every``-th planned chunk ``candidates`` samples of
    the policy are played out by the ``rollout`` reward (look-ahead ``horizon`` steps) and labelled 1 if
    the look-ahead succeeds. Gives the critic several chunks per state, which episode outcomes cannot.
    ``env_kwargs``: options of the evaluated env and of the look-ahead envs (image options of a pixel policy).

    Returns the same keys as :func:`collect_critic_data` ("success" = look-ahead success, "length" =
    "step" so that discounted labels reduce to it) plus "sim_steps".
    """
    from ttfkit.align.policy import AlignConfig, AlignedPolicy
    from ttfkit.align.rollout import RolloutTracker, RolloutValueReward
    from ttfkit.envs import evaluate

    env_kwargs = dict(env_kwargs or {})
    rollout = RolloutValueReward(policy, env_id, horizon=horizon,
                                 env_kwargs={**env_kwargs, **({"max_episode_steps": max_steps} if max_steps else {})})
    rows: list[tuple] = []
    state = {"calls": 0, "slot_seed": {}}

    class _Label(RolloutTracker):  # zero for every candidate: best-of-N keeps candidate 0, the base policy acts
        def __call__(self, x, ctx):
            state["calls"] += 1
            if state["calls"] % every == 0:
                values = rollout(x, ctx)
                cond = ctx["cond"][0]
                xn = policy._normalize(policy.config.action_key, x)
                j = ctx["slot"]
                for v, c in zip(values.tolist(), xn):
                    rows.append((rollout.shadow.seeds[j], int(rollout.shadow.steps[j]), cond.cpu(), c.cpu(),
                                 float(v >= rollout.options["success_bonus"])))
            return torch.zeros(x.shape[0], dtype=x.dtype)

    aligned = AlignedPolicy(policy, _Label(rollout), AlignConfig(method="best-of-n", particles=candidates),
                            seed_base=seed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n_episodes, desc="look-ahead labels", unit="ep")
    try:
        evaluate(aligned, env_id, n_episodes, seed=seed, n_envs=1, workers=0, max_steps=max_steps,
                 env_kwargs=env_kwargs, on_episode=(lambda n, ok: bar.update(1)) if bar else None)
    finally:
        rollout.close()
        if bar:
            bar.close()
    if not rows:
        raise ValueError(f"no look-ahead labels were recorded in {n_episodes} episodes of {env_id}")
    step = torch.tensor([r[1] for r in rows])
    return {"cond": torch.stack([r[2] for r in rows]), "chunk": torch.stack([r[3] for r in rows]),
            "episode": torch.tensor([r[0] for r in rows]), "step": step,
            "success": torch.tensor([r[4] for r in rows]), "length": step.clone(),
            "sim_steps": torch.tensor(rollout.sim_steps)}


def labels(data: dict, label: str = "success", gamma: float = 0.99) -> Tensor:
    """Targets in [0, 1] for each recorded chunk (see module docstring)."""
    if label == "success":
        return data["success"].float()
    if label == "discounted":
        to_go = (data["length"] - data["step"]).clamp(min=0).float()
        return data["success"].float() * gamma ** to_go
    raise ValueError(f"label must be 'success' or 'discounted', got {label!r}")


def episode_split(episodes: Tensor, heldout_fraction: float, generator: torch.Generator | None = None):
    """Boolean masks (train, heldout) over rows, splitting by episode (no episode on both sides)."""
    ids = torch.unique(episodes)
    n_held = int(round(heldout_fraction * len(ids)))
    perm = ids[torch.randperm(len(ids), generator=generator)]
    held = torch.isin(episodes, perm[:n_held])
    return ~held, held


def fit_critic(data: dict, *, horizon: int, action_dim: int, steps: int = 500, lr: float = 1e-3,
               batch: int = 256, hidden: int = 256, members: int = 1, label: str = "success", gamma: float = 0.99,
               weight_decay: float = 1e-4, generator: torch.Generator | None = None) -> ChunkCritic:
    """Binary cross-entropy fit of Q on ``collect_critic_data`` output (or {"cond", "chunk", "success"});
    with ``members > 1`` each member sees a bootstrap resample of the episodes. Returns the critic in
    eval mode."""
    n = data["success"].shape[0]
    if n == 0:
        raise ValueError("no critic data")
    y = labels(data, label, gamma)
    init_seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng():  # the initial weights come from ``generator`` too
        torch.manual_seed(init_seed)
        critic = ChunkCritic(data["cond"].shape[1], horizon, action_dim, hidden=hidden, members=members)
    episodes = data.get("episode", torch.arange(n))
    ids = torch.unique(episodes)
    for k, member in enumerate(critic.members):
        rows = torch.arange(n)
        if members > 1:  # bootstrap over episodes
            pick = ids[torch.randint(0, len(ids), (len(ids),), generator=generator)]
            counts = torch.bincount(torch.searchsorted(ids, pick), minlength=len(ids))
            rows = torch.repeat_interleave(rows, counts[torch.searchsorted(ids, episodes)])
        opt = torch.optim.AdamW(member.parameters(), lr=lr, weight_decay=weight_decay)
        for _ in range(steps):
            idx = rows[torch.randint(0, len(rows), (min(batch, len(rows)),), generator=generator)]
            z = torch.cat([data["cond"][idx], data["chunk"][idx].reshape(len(idx), -1)], dim=1)
            loss = nn.functional.binary_cross_entropy_with_logits(member(z)[:, 0], y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    critic.meta["label"] = label
    return critic.eval()


@torch.no_grad()
def critic_quality(critic: ChunkCritic, data: dict, n_bins: int = 10) -> dict:
    """Held-out quality against episode success: ROC AUC, Brier score, and a calibration table
    (mean predicted P(success) vs observed rate per equal-width bin)."""
    from scipy.stats import mannwhitneyu

    p = torch.sigmoid(critic(data["cond"], data["chunk"])).numpy()
    y = data["success"].numpy().astype(bool)
    auc = float("nan")
    if 0 < y.sum() < len(y):
        u = mannwhitneyu(p[y], p[~y], alternative="two-sided").statistic
        auc = float(u / (y.sum() * (~y).sum()))
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    table = [{"bin": b, "n": int((bins == b).sum()), "predicted": float(p[bins == b].mean()),
              "observed": float(y[bins == b].mean())} for b in range(n_bins) if (bins == b).any()]
    return {"auc": auc, "brier": float(np.mean((p - y) ** 2)), "n_chunks": int(len(y)),
            "n_episodes": int(len(torch.unique(data["episode"]))) if "episode" in data else None,
            "success_rate": float(y.mean()), "calibration": table}


def save_critic(critic: ChunkCritic, path: str | os.PathLike) -> Path:
    """Directory with config.json (sizes + meta) and model.safetensors; written atomically (temp + rename)."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in critic.state_dict().items()}, tmp / "model.safetensors")
    cfg = {"kind": "chunk_critic", "format_version": 2, **critic.sizes, "meta": critic.meta}
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    return replace_path(tmp, path, kind="chunk-critic")


def load_critic(path: str | os.PathLike) -> ChunkCritic:
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no critic checkpoint at {path} (missing config.json)")
    try:
        cfg = json.loads((path / "config.json").read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path / 'config.json'} is not valid JSON: {err}") from err
    if cfg.get("kind") != "chunk_critic":
        raise ValueError(f"{path / 'config.json'} is not a chunk critic (kind={cfg.get('kind')!r})")
    critic = ChunkCritic(cfg["cond_dim"], cfg["horizon"], cfg["action_dim"], hidden=cfg["hidden"],
                         depth=cfg["depth"], members=cfg.get("members", 1))
    state = load_file(str(path / "model.safetensors"))
    if cfg.get("format_version", 1) == 1:  # one un-ensembled MLP under "net."
        state = {k.replace("net.", "members.0.", 1): v for k, v in state.items()}
    critic.load_state_dict(state)
    critic.meta = cfg.get("meta", {})
    return critic.eval()


class _Recorder:
    """Evaluator-protocol proxy: records (episode seed, step, cond, normalised chunk) of every chunk that
    ``policy`` (``base`` itself or an AlignedPolicy around it) plans, with ``base``'s encoder."""

    def __init__(self, base, policy) -> None:
        self.base, self.policy, self.records = base, policy, []
        self.seeds: dict[int, int] = {}
        self.steps: dict[int, int] = {}
        self._target = policy  # whoever plans: the base policy or an AlignedPolicy around it
        self._had = vars(policy).get("plan_chunks")
        self._orig = policy.plan_chunks
        policy.plan_chunks = self._plan

    def reset(self) -> None:
        self.policy.reset()

    def reset_slot(self, j: int, seed: int) -> None:
        self.policy.reset_slot(j, seed)
        self.seeds[j], self.steps[j] = seed, 0

    def select_action(self, obs):
        action = self.policy.select_action(obs)
        for j in self.steps:
            self.steps[j] += 1
        return action

    def _record(self, obs_batch, chunk, slots) -> None:
        cond = self.base.encode_obs_blocks(obs_batch)  # as AlignedPolicy computes it
        xn = self.base._normalize(self.base.config.action_key, chunk)
        for i, j in enumerate(slots):  # kept on the CPU, where the critic is fitted
            self.records.append((self.seeds[j], self.steps[j], cond[i].cpu(), xn[i].cpu()))

    @torch.no_grad()
    def _plan(self, obs_batch, slots):
        chunk = self._orig(obs_batch, slots)
        self._record(obs_batch, chunk, slots)
        return chunk

    def close(self) -> None:
        """Undo the routing of the planning hook."""
        if self._had is None:
            vars(self._target).pop("plan_chunks", None)
        else:
            self._target.plan_chunks = self._had
