"""The alignment stage of ``ttf gap``: align trained checkpoints to a reward and evaluate them in closed loop.

    ttf gap --env ttfkit/metaworld-stick-pull-v3 --demos 10 --optims adamw --seeds 3 --steps 1500 \\
        --align best-of-n,smc --reward critic --particles 4,8 --out outputs/gap

For every run, its final checkpoint (and the one validation loss picks, when different) is aligned with
each method at each budget and evaluated on the study's evaluation seeds (100000 + i, the same
episodes as the base policy). ``--particles N`` is a budget of N times the base policy's NFE per chunk
(``steps`` flow steps), spent as:

- best-of-n: N candidates;
- smc: N particles, 2 GLASS transitions of steps // 3 inner steps, 1 value sample (0.9·N·steps NFE);
- guidance: the Doob-guided Euler ODE with M = (N - 1)·steps // (3·(steps - 1)) posterior samples of 3
  GLASS steps for ∇V̂ at each step after t = 0 (steps + 3·M·(steps - 1) NFE).

Rewards: ``critic`` fits a chunk critic per checkpoint on its own rollouts (``ttf critic``: episodes
from seed 300000, disjoint from demo and evaluation seeds) into ``CKPT/critic``; ``rollout`` plays
candidates out in the simulator (the reference: not deployable). Results are cached per checkpoint in
``CKPT/align/<method>-<reward>-x<N>.json`` (a rerun evaluates only what is missing) and summarised in
``aligned.csv``, ``aligned.md`` (appended to report.md) and ``aligned.png``.

The study's ``env_kwargs`` (a pixel store's image options, from ``ttfkit.envs.from_store``) reach every env
of the stage: the aligned evaluation, the rewards' look-ahead envs and the critic's rollouts.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["AlignStage", "AlignRow", "method_config", "run_align_stage", "write_align_report"]

CRITIC_SEED = 300_000


@dataclass(frozen=True)
class AlignStage:
    """What ``ttf gap --align`` runs after training and base evaluation.

    Args:
        methods: alignment methods ("best-of-n", "smc", "guidance").
        reward: "critic", "rollout" or a registered analytic reward.
        particles: budgets, each N times the base NFE per chunk (see module docstring).
        critic_episodes: base-policy rollouts the critic is fitted on.
        critic_refit_episodes: when > 0, the critic is refitted once after that many rollouts of the
            critic-aligned policy (best-of-8; ``ttf critic --refit-episodes``), which is what raised success
            in docs/results/2026-11-30/align-2 (+12 and +11 points where the first fit gave +4 to +6).
        horizon, flow_steps, workers: the rollout reward's look-ahead, continuation flow steps, processes.
        episodes: aligned evaluation episodes (None: the study's eval_episodes).
        val_pick: also align the checkpoint validation loss picks, when it is not the final one.
    """

    methods: tuple[str, ...]
    reward: str
    particles: tuple[int, ...] = (8,)
    critic_episodes: int = 100
    critic_refit_episodes: int = 0
    horizon: int = 120
    flow_steps: int = 2
    workers: int = 0
    episodes: int | None = None
    val_pick: bool = True
    reward_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from ttfkit.align.policy import METHODS

        object.__setattr__(self, "methods", tuple(self.methods))
        object.__setattr__(self, "particles", tuple(int(n) for n in self.particles))
        bad = [m for m in self.methods if m not in METHODS or m == "none"]
        if not self.methods or bad:
            raise ValueError(f"--align methods must be among {[m for m in METHODS if m != 'none']}, got {bad or '[]'}")
        if not self.particles or min(self.particles) < 1:
            raise ValueError(f"--particles must be >= 1, got {self.particles}")
        if "guidance" in self.methods and min(self.particles) < 4:
            raise ValueError(f"guidance needs a budget of at least 4x the base NFE, got --particles {self.particles}")
        if "weighted" in self.methods and min(self.particles) < 5:
            raise ValueError(f"weighted needs a budget of at least 5x the base NFE, got --particles {self.particles}")
        if self.critic_episodes < 2 or self.critic_refit_episodes < 0 or self.horizon < 0 or self.flow_steps < 1 or self.workers < 0:
            raise ValueError(f"bad alignment options: {self}")
        if self.episodes is not None and self.episodes < 1:
            raise ValueError(f"aligned evaluation episodes must be >= 1, got {self.episodes}")


@dataclass(frozen=True)
class AlignRow:
    """One aligned evaluation of one checkpoint (``aligned.csv`` row)."""

    optimizer: str
    seed: int
    lr: float
    step: int
    method: str
    reward: str
    particles: int
    successes: int
    episodes: int
    base_successes: int
    base_episodes: int
    nfe_per_chunk: float
    sim_steps_per_chunk: float
    wall_s_per_episode: float


def method_config(method: str, n: int, steps: int):
    """AlignConfig spending at most ``n`` times the base NFE per chunk (``steps`` flow steps)."""
    from ttfkit.align.policy import AlignConfig

    if method == "best-of-n":
        return AlignConfig(method=method, particles=n, steps=steps)
    if method == "smc":
        return AlignConfig(method=method, particles=n, steps=steps, smc_steps=2, value_samples=1,
                           inner_steps=max(1, steps // 3))
    if method == "guidance":
        # euler: steps velocity calls + (steps - 1) guided ones with M posterior samples of 3 GLASS steps
        m = max(1, (n - 1) * steps // (3 * max(1, steps - 1)))
        return AlignConfig(method=method, particles=1, steps=steps, value_samples=m, inner_steps=3)
    if method == "weighted":
        # euler: steps velocity calls + (steps - 1) guided ones with M candidates of a k-step flow map + 2 scores
        k = 2
        m = max(1, (n - 1) * steps // ((k + 2) * max(1, steps - 1)))
        return AlignConfig(method=method, particles=m, steps=steps, flow_map_steps=k)
    raise ValueError(f"unknown alignment method {method!r}")


def align_checkpoint(env_id: str, ckpt: Path, stage: AlignStage, method: str, n: int, episodes: int, *,
                     max_steps: int | None, device: str, desc: str, env_kwargs: dict | None = None) -> dict:
    """Aligned evaluation of one checkpoint in ``make_env(env_id, **env_kwargs)``, cached in
    CKPT/align/<method>-<reward>-x<n>.json."""
    from tqdm import tqdm

    from ttfkit.envs import evaluate
    from ttfkit.envs.evaluate import DEFAULT_EVAL_SEED

    path = ckpt / "align" / f"{method}-{stage.reward}-x{n}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        if cached["eval"]["n_episodes"] >= episodes:
            return cached
    import time

    import torch

    from ttfkit.align.policy import AlignedPolicy
    from ttfkit.policies import load
    from ttfkit.scripts.align import build_reward
    from ttfkit.scripts.device import resolve_device

    policy = load(ckpt, device=resolve_device(device)).eval()
    env_kwargs = dict(env_kwargs or {})
    critic = _critic(env_id, ckpt, stage, max_steps, env_kwargs=env_kwargs) if stage.reward == "critic" else None
    reward, shadow = build_reward(stage.reward, policy, env_id, dict(stage.reward_options), max_steps=max_steps,
                                  env_kwargs=env_kwargs, critic=critic, horizon=stage.horizon,
                                  flow_steps=stage.flow_steps, workers=stage.workers)
    config = method_config(method, n, policy.config.num_steps)
    aligned = AlignedPolicy(policy, reward, config, shadow=shadow, generator=torch.Generator().manual_seed(0))
    start = time.perf_counter()
    with tqdm(total=episodes, desc=desc, unit="ep", leave=False) as bar:
        try:
            result = evaluate(aligned, env_id, episodes, seed=DEFAULT_EVAL_SEED, n_envs=1, workers=0,
                              max_steps=max_steps, env_kwargs=env_kwargs,
                              policy_name=f"{ckpt} [{method}/{stage.reward} x{n}]",
                              on_episode=lambda k, ok: bar.update(1))
        finally:
            for closable in (reward, shadow):
                if hasattr(closable, "close"):
                    closable.close()
    wall = time.perf_counter() - start
    out = {"eval": json.loads(result.to_json()), "align": {**aligned.summary(), "config": aligned.config_dict,
                                                        "wall_s_per_episode": wall / episodes}}
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2))
    tmp.replace(path)
    return out


def _critic(env_id: str, ckpt: Path, stage: AlignStage, max_steps: int | None, *,
            env_kwargs: dict | None = None) -> str:
    """CKPT/critic, fitted by `ttf critic` on the checkpoint's own rollouts in ``make_env(env_id,
    **env_kwargs)`` unless already there."""
    from ttfkit.align.critic import load_critic
    from ttfkit.scripts.cli import parse

    out = ckpt / "critic"
    if (out / "model.safetensors").exists():
        report = out / "report.json"
        refit = json.loads(report.read_text()).get("refit", {}).get("episodes", 0) if report.exists() else 0
        fitted = (load_critic(out).meta.get("episodes", 0) - refit, refit)
        want = (stage.critic_episodes, stage.critic_refit_episodes)
        if fitted != want:
            raise ValueError(f"{out} was fitted on {fitted[0]} episodes + {fitted[1]} refit episodes, this study asks "
                             f"for {want[0]} + {want[1]}; move it away (with the results made with it, "
                             f"{ckpt / 'align'}/*-critic-*.json)")
        return str(out)
    argv = ["critic", "--checkpoint", str(ckpt), "--env", env_id, "--episodes", str(stage.critic_episodes),
            "--episode-seed", str(CRITIC_SEED), "--out", str(out)]
    if stage.critic_refit_episodes:
        argv += ["--refit-episodes", str(stage.critic_refit_episodes)]
    if max_steps:
        argv += ["--max-steps", str(max_steps)]
    module, _, args = parse(argv)  # the env options are data, not flags: passed to ttf critic's main as they are
    if module.main(args, env_kwargs=dict(env_kwargs or {})) != 0:
        raise RuntimeError(f"fitting the critic of {ckpt} failed")
    return str(out)


def run_align_stage(cfg, stage: AlignStage, run_dirs: list[tuple[str, float, int, Path]], picks: dict) -> list[AlignRow]:
    """Align every run's final checkpoint (and its val-loss pick) with every method and budget."""
    from ttfkit.envs import EvalResult

    episodes = stage.episodes or cfg.eval_episodes
    rows: list[AlignRow] = []
    for opt, lr, seed, run_dir in run_dirs:
        ckpts = sorted((run_dir / "checkpoints").glob("step_*"))
        chosen = {ckpts[-1]}
        if stage.val_pick and picks.get(run_dir) is not None:
            chosen.add(picks[run_dir])
        for ckpt in sorted(chosen):
            base = EvalResult.from_json((ckpt / "eval.json").read_text()).head(episodes)
            for method in stage.methods:
                for n in stage.particles:
                    res = align_checkpoint(cfg.env, ckpt, stage, method, n, episodes, max_steps=cfg.eval_max_steps,
                                           device=cfg.device, env_kwargs=dict(cfg.env_kwargs),
                                           desc=f"{opt} seed={seed} {ckpt.name} {method} x{n}")
                    ev, al = res["eval"], res["align"]
                    k = min(episodes, ev["n_episodes"])
                    rows.append(AlignRow(opt, seed, lr, int(ckpt.name.split("_")[1]), method, stage.reward, n,
                                         int(sum(ev["successes"][:k])), k, base.n_successes, base.n_episodes,
                                         al.get("nfe_per_chunk", 0.0), al.get("sim_steps_per_chunk", 0.0),
                                         al["wall_s_per_episode"]))
    return rows


def write_align_report(rows: list[AlignRow], out: Path, title: str) -> str:
    """aligned.csv, aligned.png and the markdown table (returned): base vs aligned per method and budget,
    pooled over seeds with Wilson 95% intervals, spread over seeds, cost per chunk and per episode."""
    from ttfkit.envs.evaluate import wilson_interval

    fields = list(AlignRow.__dataclass_fields__)
    with open(out / "aligned.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows:
            w.writerow([getattr(r, k) for k in fields])
    groups: dict[tuple, list[AlignRow]] = {}
    for r in rows:
        groups.setdefault((r.optimizer, r.step, r.method, r.reward, r.particles), []).append(r)
    lines = [f"## {title}", "",
             "| optimizer | step | method | reward | budget | base success | aligned success | difference | "
             "NFE/chunk | sim steps/chunk | wall s/episode |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    bars = []
    for (opt, step, method, reward, n), grp in sorted(groups.items()):
        b_s, b_n = sum(r.base_successes for r in grp), sum(r.base_episodes for r in grp)
        a_s, a_n = sum(r.successes for r in grp), sum(r.episodes for r in grp)
        b_ci, a_ci = wilson_interval(b_s, b_n), wilson_interval(a_s, a_n)
        a_spread = np.std([r.successes / r.episodes for r in grp]) if len(grp) > 1 else 0.0
        b_spread = np.std([r.base_successes / r.base_episodes for r in grp]) if len(grp) > 1 else 0.0
        sep = "yes" if a_ci[0] > b_ci[1] or b_ci[0] > a_ci[1] else "no"
        lines.append(f"| {opt} | {step} | {method} | {reward} | {n}x | {_pct(b_s, b_n, b_ci, b_spread)} | "
                     f"{_pct(a_s, a_n, a_ci, a_spread)} | {100 * (a_s / a_n - b_s / b_n):+.0f} pts (CIs separate: {sep}) | "
                     f"{np.mean([r.nfe_per_chunk for r in grp]):.0f} | {np.mean([r.sim_steps_per_chunk for r in grp]):.0f} | "
                     f"{np.mean([r.wall_s_per_episode for r in grp]):.1f} |")
        bars.append((f"{method}\n{reward} {n}x", b_s / b_n, b_ci, a_s / a_n, a_ci))
    lines += ["", f"Seeds pooled ({len({r.seed for r in rows})} training seeds); ± is the std over seeds; "
              "[..] the Wilson 95% interval of the pooled episodes; budget = multiple of the base NFE per chunk."]
    text = "\n".join(lines) + "\n"
    (out / "aligned.md").write_text(text)
    _plot(bars, out / "aligned.png", title)
    return text


def _pct(s: int, n: int, ci: tuple[float, float], spread: float) -> str:
    return f"{100 * s / n:.0f}% ± {100 * spread:.0f} [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}] ({s}/{n})"


def _plot(bars, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not bars:
        return
    fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(bars)), 3.5))
    x = np.arange(len(bars))
    for off, (idx, label, color) in zip((-0.18, 0.18), ((1, "base", "tab:gray"), (3, "aligned", "tab:blue"))):
        vals = [b[idx] for b in bars]
        lo = [b[idx] - b[idx + 1][0] for b in bars]
        hi = [b[idx + 1][1] - b[idx] for b in bars]
        ax.bar(x + off, vals, width=0.34, color=color, label=label, yerr=[lo, hi], capsize=3)
    ax.set_xticks(x, [b[0] for b in bars], fontsize=7)
    ax.set(ylabel="success (Wilson 95%)", ylim=(0, 1), title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_budgets(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError as err:
        raise ValueError(f"--particles takes comma-separated integers, got {text!r}") from err
