"""TTF-gap study: does lower validation loss mean a better robot?

    ttf gap --env ttfkit/metaworld-shelf-place-v3 --demos 10 --optims adamw,dopr-adamw --seeds 2 \\
            --steps 3000 --ckpt-every 500 --episodes 20 --out outputs/gap
    ttf gap --preset demo --out outputs/demo        # what `make demo` runs (6 min 50 s on 2 idle CPU cores)
    ttf gap --preset full --out outputs/full        # several tasks, 3 seeds, 50 episodes (GPU machine)
    ttf gap --preset full --env ttfkit/metaworld-stick-pull-v3 --seeds 1 --out outputs/one   # one task of it
    ttf gap --config outputs/gap/gap_config.json --episodes 50   # the same study, more episodes

Stages, each resumable (rerunning skips what is done): (1) collect scripted demos with
``ttfkit.envs.collect`` unless ``--dataset`` is given; (2) train one run per (optimizer, lr, seed)
with identical data, model, schedule and batch (``ttfkit.policies.train``); (3) evaluate every
checkpoint's EMA weights in closed loop on the same evaluation seeds (disjoint from the demo seeds)
and store the result beside the checkpoint; (4) write checkpoints.csv, report.md and gap.png
(``ttfkit.scripts.gap_report``). With several ``--env``, each task gets its own sub-report.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ttfkit.scripts.config_file import add_config_argument
from ttfkit.scripts.device import add_device_argument, resolve_device
from ttfkit.scripts.options import KeyValueAction, ReplaceAppend, csv_of, deprecated_alias
from ttfkit.scripts.gap_report import CheckpointRow, plot_gap, write_csv, write_report
from ttfkit.scripts.gap_tune import STUDY_PRESETS

__all__ = ["GapConfig", "PRESETS", "run_gap", "add_arguments", "main"]


@dataclass(frozen=True)
class GapConfig:
    """One TTF-gap study on one task.

    Args:
        env: ``ttfkit/...`` env id (demos and evaluation).
        out: report directory (demos, runs, evaluations and the report live under it).
        dataset: existing zarr dataset; when None, ``demos`` scripted episodes are collected.
        demos: successful expert episodes to collect.
        demo_noise: DART noise std on the executed actions during collection (labels stay clean).
        optims: optimizer registry names, one run each per lr and seed.
        lrs: learning-rate grid, the same for every optimizer.
        seeds: training seeds 0 .. seeds-1 (the data and evaluation seeds stay fixed).
        split_seed: seed of every run's validation split (``TrainConfig.split_seed``): all runs then hold out the
            same episodes, so their validation losses compare. None: each run splits by its training seed.
        steps, ckpt_every, batch: training schedule, identical for every run.
        backbone: policy backbone ("mlp", "unet", "transformer").
        policy_options / backbone_options / optim_options: extra policy / backbone / optimizer config
            fields (optim_options go to every optimizer in ``optims``, e.g. {"damping": 1e-3}).
        optim_lrs: per-optimizer lr grids replacing ``lrs`` for the optimizers named, e.g.
            {"dopr-adamw": (1e-3, 1e-2)}.
        tune_episodes: 0: every lr of the grid is trained on the reported seeds and evaluated. N > 0: each
            optimizer's lr is first picked on tuning runs and N tuning episodes per checkpoint (env
            seeds 50000 + i), and only that lr is reported (``ttfkit.scripts.gap_tune``).
        tune_seed: training seed of the tuning runs (outside the reported seeds 0 .. seeds-1).
        eval_episodes: closed-loop episodes per checkpoint (seeds 100000 + i for every checkpoint);
            raising it on a finished study evaluates only the missing episodes.
        eval_max_steps: episode limit in evaluation (None: the suite's).
        n_envs: evaluation env slots, the policy batch (None: ``ttfkit.envs.evaluate``'s fixed default);
            per-episode results do not depend on it. workers: evaluation processes (None: one per core).
        device: torch device of training and of the evaluated policy ("auto": CUDA when present);
            the envs always run on the CPU cores. amp: bf16 autocast in training.
        env_kwargs: ``make_env`` options of the evaluation env (``ttfkit.envs.from_store.env_for_store``
            fills them from ``dataset`` when ``ttf gap`` is given no --env), of the aligned evaluation too
            (its look-ahead envs and critic rollouts included).
        obs_keys: observation keys the policies read (empty: the trainer's default).
        log: experiment loggers of every run ("tensorboard", "wandb"; ``ttfkit.policies.loggers``): its
            training metrics, and each checkpoint's evaluation at the checkpoint's step.
    """

    env: str
    out: str
    dataset: str | None = None
    demos: int = 10
    demo_noise: float = 0.0
    optims: tuple[str, ...] = ("adamw", "dopr-adamw")
    lrs: tuple[float, ...] = (1e-3,)
    seeds: int = 1
    split_seed: int | None = None
    steps: int = 3000
    ckpt_every: int = 500
    batch: int = 256
    backbone: str = "mlp"
    policy_options: dict = field(default_factory=dict)
    backbone_options: dict = field(default_factory=dict)
    optim_options: dict = field(default_factory=dict)
    optim_lrs: dict = field(default_factory=dict)
    tune_episodes: int = 0
    tune_seed: int = 1000
    eval_episodes: int = 20
    eval_max_steps: int | None = None
    n_envs: int | None = None
    workers: int | None = None
    device: str = "auto"
    amp: bool = False
    align: tuple[str, ...] = ()
    reward: str | None = None
    particles: tuple[int, ...] = (8,)
    critic_episodes: int = 100
    critic_refit_episodes: int = 0
    align_episodes: int | None = None
    align_val_pick: bool = True
    env_kwargs: dict = field(default_factory=dict)
    obs_keys: tuple[str, ...] = ()
    log: tuple[str, ...] = ()

    def __post_init__(self):
        from ttfkit.policies.loggers import check_logger_names

        object.__setattr__(self, "obs_keys", tuple(self.obs_keys))
        try:
            object.__setattr__(self, "log", check_logger_names(self.log))
        except ValueError as err:
            raise ValueError(f"GapConfig: {err}") from None
        object.__setattr__(self, "optims", tuple(self.optims))
        object.__setattr__(self, "lrs", tuple(float(x) for x in self.lrs))
        for name in ("demos", "seeds", "steps", "ckpt_every", "batch", "eval_episodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"GapConfig: {name} must be >= 1, got {getattr(self, name)}")
        if not self.optims or not self.lrs:
            raise ValueError(f"GapConfig: need at least one optimizer and lr, got {self.optims=}, {self.lrs=}")
        object.__setattr__(self, "optim_lrs", {k: tuple(float(x) for x in v) for k, v in self.optim_lrs.items()})
        if set(self.optim_lrs) - set(self.optims) or not all(self.optim_lrs.values()):
            raise ValueError(f"GapConfig: optim_lrs needs a non-empty grid per optimizer of {self.optims}, "
                             f"got {self.optim_lrs=}")
        if self.tune_episodes < 0 or (self.tune_episodes and 0 <= self.tune_seed < self.seeds):
            raise ValueError(f"GapConfig: tune_episodes must be >= 0 and tune_seed outside the reported seeds "
                             f"0..{self.seeds - 1}, got {self.tune_episodes=}, {self.tune_seed=}")
        object.__setattr__(self, "align", tuple(self.align))
        object.__setattr__(self, "particles", tuple(self.particles))
        if self.align:
            self.align_stage()  # validates the alignment options
        if self.ckpt_every > self.steps:
            raise ValueError(f"GapConfig: ckpt_every ({self.ckpt_every}) exceeds steps ({self.steps})")


    def lrs_for(self, optim: str) -> tuple[float, ...]:
        """The lr grid of one optimizer: ``optim_lrs[optim]`` when given, else ``lrs``."""
        return self.optim_lrs.get(optim, self.lrs)

    def align_stage(self):
        """The ``--align`` stage (``ttfkit.scripts.gap_align.AlignStage``), or None."""
        from ttfkit.scripts.gap_align import AlignStage

        if not self.align:
            return None
        if self.reward is None:
            raise ValueError("GapConfig: align needs a reward (--reward critic|rollout|...)")
        return AlignStage(methods=self.align, reward=self.reward, particles=self.particles,
                          critic_episodes=self.critic_episodes, critic_refit_episodes=self.critic_refit_episodes,
                          episodes=self.align_episodes,
                          val_pick=self.align_val_pick)


# Presets. `demo` is what `make demo` runs: shelf-place from 10 scripted demos, where a screen put
# AdamW's success at 25-45% after 500-1500 steps (room to differ); 6 min 50 s on 2 idle CPU cores with
# its alignment stage (docs/results/2026-11-30/demo).
# `full` is for a GPU machine (estimated, not measured here: ~5 h on one GPU with 16 CPU cores).
PRESETS: dict[str, list[dict]] = {
    "demo": [dict(env="ttfkit/metaworld-shelf-place-v3", demos=10, optims=("adamw", "dopr-adamw"), lrs=(1e-3,),
                  seeds=1, steps=1500, ckpt_every=500, batch=256, backbone="mlp", eval_episodes=20,
                  align=("best-of-n",), reward="critic", particles=(4,), critic_episodes=40, align_val_pick=False)],
    "full": [dict(env=f"ttfkit/metaworld-{task}-v3", demos=10, optims=("adamw", "dopr-adamw", "muon", "dopr-muon"),
                  lrs=(1e-3,), seeds=3, steps=10000, ckpt_every=2000, batch=256, backbone="unet",
                  eval_episodes=50)
             for task in ("shelf-place", "stick-pull", "bin-picking")],
}

PRESETS.update(STUDY_PRESETS)  # the DoPr study of issue 18: 6 settings, lr tuned per optimizer


def run_gap(cfg: GapConfig, executor=None) -> str:
    """Run (or resume) the study; returns report.md's text. ``executor`` (``ttfkit.scripts.executors``)
    trains and evaluates the runs elsewhere first; None does it here, one job at a time."""
    from ttfkit.policies.checkpoint import read_config

    out = Path(cfg.out)
    _check_rerun(out / "gap_config.json", cfg)  # before anything is written: a refused rerun changes nothing
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".gap_config.json.tmp"
    tmp.write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    tmp.replace(out / "gap_config.json")
    dataset = cfg.dataset or _collect_demos(cfg, out / "demos.zarr")

    rows: list[CheckpointRow] = []
    run_dirs, picks = [], {}  # for the alignment stage: every run, and its checkpoint of lowest val loss
    lrs = {opt: cfg.lrs_for(opt) for opt in cfg.optims}
    if cfg.tune_episodes:
        from ttfkit.scripts.gap_tune import tune_lrs

        lrs = tune_lrs(cfg, dataset)  # {optimizer: (picked lr,)}
    runs = [(opt, lr, seed) for opt in cfg.optims for lr in lrs[opt] for seed in range(cfg.seeds)]
    if executor is not None and cfg.env_kwargs:
        raise ValueError(f"the {type(executor).__name__} does not pass env_kwargs {cfg.env_kwargs}; use the local one")
    if executor is not None:  # the loop below then finds every run trained and every checkpoint evaluated
        executor.run(cfg, dataset, [(o, lr, s, out / "runs" / f"{o}_lr{lr:g}_seed{s}") for o, lr, s in runs])
    for i, (opt, lr, seed) in enumerate(runs):
        stage = f"[{i + 1}/{len(runs)}] {opt} lr={lr:g} seed={seed}"
        run_dir = out / "runs" / f"{opt}_lr{lr:g}_seed{seed}"
        _train_run(cfg, dataset, run_dir, opt, lr, seed, stage)
        losses = _train_losses(run_dir / "metrics.csv")
        run_dirs.append((opt, lr, seed, run_dir))
        best_val = float("inf")
        evaluated = []
        for ckpt in sorted((run_dir / "checkpoints").glob("step_*")):
            result = _evaluate_cached(cfg, ckpt, f"{stage} eval {ckpt.name}")
            meta = read_config(ckpt)["metadata"]
            step = int(meta["step"])
            evaluated.append((step, result))
            val_loss = float("nan") if meta.get("val_loss") is None else float(meta["val_loss"])
            if val_loss < best_val:
                best_val, picks[run_dir] = val_loss, ckpt
            rows.append(CheckpointRow(opt, seed, lr, step, losses.get(step, float("nan")), val_loss,
                                      result.success_rate, result.ci_low, result.ci_high, result.n_episodes))
        _log_evaluations(cfg, run_dir, evaluated)
    write_csv(rows, out / "checkpoints.csv")
    plot_gap(rows, out / "gap.png")
    details = (f"Task `{cfg.env}`; dataset `{dataset}`; {cfg.backbone} flow policy; {cfg.steps} steps at batch "
               f"{cfg.batch}, checkpoints every {cfg.ckpt_every}; {cfg.eval_episodes} evaluation episodes per "
               f"checkpoint (seeds from 100000, disjoint from demo seeds); training seeds 0..{cfg.seeds - 1}.")
    if cfg.tune_episodes:
        details += (f" Each optimizer's lr was picked on tuning runs (training seed {cfg.tune_seed}, "
                    f"{cfg.tune_episodes} episodes from env seed 50000): tune/tune.md.")
    text = write_report(rows, out, f"TTF gap on {cfg.env}", details)
    if cfg.align:
        from ttfkit.scripts.gap_align import run_align_stage, write_align_report

        aligned = run_align_stage(cfg, cfg.align_stage(), run_dirs, picks)
        text += "\n" + write_align_report(aligned, out, f"Aligned vs base on {cfg.env}")
        plot_gap(rows, out / "gap.png", aligned=aligned)
        (out / "report.md").write_text(text)
    return text


# GapConfig fields a rerun may change: they add runs or episodes, or say where and how the work runs.
# Any other field differing from the saved gap_config.json would mix results of two studies in one folder.
_RERUN_MAY_CHANGE = ("out", "optims", "lrs", "optim_lrs", "seeds", "eval_episodes", "n_envs", "workers", "device",
                     "align", "reward", "particles", "critic_episodes", "critic_refit_episodes", "align_episodes",
                     "align_val_pick", "log")


def _check_rerun(path: Path, cfg: GapConfig) -> None:
    """Raise (naming the fields, saved and given) when ``path`` holds another study's config."""
    if not path.is_file():
        return
    try:
        saved = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: unreadable ({err}); move it away to rerun the study here") from err
    given = json.loads(json.dumps(dataclasses.asdict(cfg)))
    differ = {k: (saved[k], v) for k, v in given.items()
              if k in saved and k not in _RERUN_MAY_CHANGE and saved[k] != v}
    if differ:
        raise ValueError(f"{path}: the study in {path.parent} was run with another config than this rerun's "
                         f"(saved, given): {differ}; use a new --out")


def _evaluate_cached(cfg: GapConfig, ckpt: Path, desc: str, first_seed: int | None = None,
                     name: str = "eval.json", episodes: int | None = None):
    """The checkpoint's first ``cfg.eval_episodes`` evaluation episodes, from ``ckpt/eval.json`` when
    it has them; missing episodes (a study rerun with more episodes) are evaluated and appended.

    Episode i always uses seed 100000 + i and the policy's noise is seeded per episode, so an extended
    result equals a fresh one.
    """
    from ttfkit.envs import EvalResult, evaluate
    from ttfkit.envs.evaluate import DEFAULT_EVAL_SEED
    from ttfkit.policies import load

    first = DEFAULT_EVAL_SEED if first_seed is None else first_seed  # tuning: other seeds, other file
    want = cfg.eval_episodes if episodes is None else episodes
    path = ckpt / name
    cached = EvalResult.from_json(path.read_text()) if path.exists() else None
    if cached is not None and (cached.env_id != cfg.env or cached.seeds[:1] != (first,)
                               or (cfg.eval_max_steps is not None and cached.max_steps != cfg.eval_max_steps)):
        raise ValueError(f"{path}: evaluated on {cached.env_id} (first seed {cached.seeds[:1]}, max_steps "
                         f"{cached.max_steps}), not as this study asks ({cfg.env}, max_steps {cfg.eval_max_steps}); "
                         f"move it away to re-evaluate")
    have = cached.n_episodes if cached is not None else 0
    if have < want:
        policy = load(ckpt, device=resolve_device(cfg.device))  # EMA weights when the checkpoint has them
        bar = tqdm(total=want, initial=have, desc=desc, unit="ep", leave=False)
        extra = evaluate(policy, cfg.env, want - have, seed=first + have, n_envs=cfg.n_envs,
                         workers=cfg.workers, env_kwargs=dict(cfg.env_kwargs),
                         max_steps=cached.max_steps if cached is not None else cfg.eval_max_steps,
                         on_episode=lambda n, ok: bar.update(1))
        bar.close()
        cached = extra if cached is None else cached.extended(extra)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(cached.to_json())
        tmp.replace(path)
    return cached.head(want)


def _log_evaluations(cfg: GapConfig, run_dir: Path, evaluated: list) -> None:
    """Every checkpoint's evaluation [(step, EvalResult)] into the run's loggers (RUN_DIR/tensorboard/eval,
    a W&B run of job type "eval"); TensorBoard drops what earlier reruns logged, so each step shows once."""
    if not cfg.log:
        return
    from ttfkit.policies.loggers import eval_metrics, open_loggers

    with open_loggers(cfg.log, run_dir, kind="eval", name=run_dir.name, purge_from=0,
                      config={"env": cfg.env, "episodes": cfg.eval_episodes}) as log:
        for step, result in evaluated:
            log.log(eval_metrics(result), step)


def _collect_demos(cfg: GapConfig, path: Path) -> str:
    from ttfkit.envs.collect import collect

    marker = path / ".complete"
    if not marker.exists():
        bar = tqdm(total=cfg.demos, desc="collect demos", unit="ep")
        # attempts beyond `demos` cover expert failures; collect keeps only successes
        attempts = cfg.demos
        while True:
            report = collect(cfg.env, attempts, path, seed=0, noise=cfg.demo_noise,
                             on_episode=lambda n, ok, kept: bar.update(1) if kept else None)
            if report.kept >= cfg.demos or attempts >= 4 * cfg.demos:
                break
            attempts += cfg.demos - report.kept
        bar.close()
        if report.kept < cfg.demos:
            raise RuntimeError(f"{cfg.env}: the expert solved only {report.kept} of {attempts} episodes")
        marker.write_text("")
    return str(path)


def _train_run(cfg: GapConfig, dataset: str, run_dir: Path, opt: str, lr: float, seed: int, stage: str) -> None:
    from ttfkit.policies import TrainConfig, train
    from ttfkit.policies.trainer import config_diff

    tc = TrainConfig(dataset=dataset, out=str(run_dir), policy="flow", backbone=cfg.backbone, optim=opt,
                     steps=cfg.steps, batch=cfg.batch, lr=lr, ckpt_every=cfg.ckpt_every, seed=seed,
                     split_seed=cfg.split_seed,
                     policy_options=dict(cfg.policy_options), backbone_options=dict(cfg.backbone_options),
                     optim_options=dict(cfg.optim_options), device=cfg.device, amp=cfg.amp, log=cfg.log,
                     **({"obs_keys": cfg.obs_keys} if cfg.obs_keys else {}))
    saved = run_dir / "train_config.json"
    if saved.exists():  # `out` may differ: a moved or copied run is still the same run
        differ = config_diff(saved, tc, ignore=("out", "device", "log"))  # where/how it trains is not what it is
        if differ:
            raise ValueError(f"{saved} was trained with another config than this study's (saved, given): {differ}; "
                             f"use a new --out")
    ckpts = sorted((run_dir / "checkpoints").glob("step_*"))
    done_step = int(ckpts[-1].name.split("_")[1]) if ckpts else 0
    if done_step >= cfg.steps:
        return
    bar = tqdm(total=cfg.steps, initial=done_step, desc=f"{stage} train", unit="step")

    def progress(step, metrics):
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{metrics['loss']:.4f}")

    train(tc, resume=done_step > 0, progress=progress)
    bar.close()


def _train_losses(path: Path) -> dict[int, float]:
    with open(path, newline="") as f:
        return {int(r["step"]): float(r["train_loss"]) for r in csv.DictReader(f)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="a named study; flags given as well (and --config values) override only themselves")
    add_config_argument(parser)
    parser.add_argument("--env", action=ReplaceAppend, help="env id (repeatable for several tasks)")
    parser.add_argument("--dataset", help="zarr dataset (default: collect --demos scripted episodes); without "
                                          "--env, evaluation runs in the env the store names (robomimic env_args "
                                          "or ttf collect's env_id)")
    parser.add_argument("--obs-keys", nargs="+", help="observation keys the policies read (default: the trainer's)")
    parser.add_argument("--demos", type=int, help="scripted demos to collect (default 10)")
    parser.add_argument("--demo-noise", type=float, help="DART noise std while collecting (default 0)")
    optims = parser.add_argument("--optims", type=csv_of(str), metavar="OPT[,OPT...]",
                                 help="optimizers compared, e.g. adamw,dopr-adamw (default adamw,dopr-adamw)")
    deprecated_alias(parser, "--optim", optims)
    parser.add_argument("--lr", dest="lrs", type=csv_of(float), metavar="LR[,LR...]",
                        help="learning-rate grid (default 1e-3)")
    parser.add_argument("--seeds", type=int, help="training seeds 0..N-1 per optimizer and lr (default 1)")
    parser.add_argument("--split-seed", type=int,
                        help="one validation split for every run (as ttf train --split-seed; default: each run's seed)")
    parser.add_argument("--steps", type=int, help="training steps of every run (default 3000)")
    parser.add_argument("--ckpt-every", type=int, help="checkpoint (and evaluate) every N steps (default 500)")
    parser.add_argument("--batch", type=int, help="batch size (default 256)")
    parser.add_argument("--backbone", choices=["mlp", "unet", "transformer"], help="policy backbone (default mlp)")
    parser.add_argument("--optim-option", dest="optim_options", action=KeyValueAction, default=None,
                        metavar="KEY=VALUE", help="optimizer config field for every run, e.g. damping=1e-3 (repeatable)")
    parser.add_argument("--optim-lr", dest="optim_lrs", action=KeyValueAction, default=None, metavar="OPT=LR,LR",
                        value_type=lambda v: csv_of(float)(str(v)),
                        help="lr grid of one optimizer, replacing --lr for it (repeatable)")
    parser.add_argument("--tune-episodes", type=int,
                        help="first pick each optimizer's lr on tuning runs and this many tuning episodes")
    parser.add_argument("--tune-seed", type=int, help="training seed of the tuning runs (default 1000)")
    episodes = parser.add_argument("--episodes", dest="eval_episodes", type=int, metavar="N",
                                   help="closed-loop evaluation episodes per checkpoint (default 20)")
    deprecated_alias(parser, "--eval-episodes", episodes)
    max_steps = parser.add_argument("--max-steps", dest="eval_max_steps", type=int, metavar="N",
                                    help="evaluation episode limit (default: the suite's)")
    deprecated_alias(parser, "--eval-max-steps", max_steps)
    parser.add_argument("--n-envs", type=int, help="evaluation env slots (default: the evaluator's)")
    parser.add_argument("--workers", type=int, help="evaluation processes (default: one per core; 0: in-process)")
    add_device_argument(parser, what="training and the evaluated policy")
    parser.add_argument("--amp", action="store_true", default=None, help="bf16 autocast in training (GPU)")
    parser.add_argument("--executor", choices=["local", "ray"], default="local",
                        help="local: one job at a time here; ray: runs and evaluation shards as Ray tasks "
                             "(pip install 'ttfkit[ray]'; ttfkit.scripts.executors)")
    parser.add_argument("--ray-address", default=None, help="Ray cluster HOST:PORT (default: a local instance)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (1 is often fastest on a busy 2-core machine)")
    parser.add_argument("--align", type=csv_of(str), metavar="METHOD[,METHOD...]",
                        help="align each run's final (and val-loss-picked) checkpoint: methods among best-of-n, "
                             "smc, guidance")
    parser.add_argument("--reward", help="alignment reward: critic (fitted per checkpoint), rollout, ...")
    parser.add_argument("--particles", type=csv_of(int), metavar="N[,N...]",
                        help="budgets, multiples of the base NFE per chunk (default 8)")
    parser.add_argument("--critic-episodes", type=int, help="rollouts each critic is fitted on (default 100)")
    parser.add_argument("--critic-refit-episodes", type=int,
                        help="refit each critic once on this many rollouts of its aligned policy (default 0: no refit)")
    parser.add_argument("--align-episodes", type=int, help="aligned evaluation episodes (default: --episodes)")
    parser.add_argument("--log", type=csv_of(str), metavar="tensorboard[,wandb]",
                        help="experiment loggers of every run: training metrics and each checkpoint's evaluation")
    parser.add_argument("--out", required=True, help="report directory")


def config_keys() -> set[str]:
    """Keys a --config file may hold beyond the options: every GapConfig field (gap_config.json)."""
    return {f.name for f in dataclasses.fields(GapConfig)}


def _configs(args: argparse.Namespace) -> list[GapConfig]:
    """One GapConfig per task: the preset's entries (or one empty base), each overridden by exactly the
    fields the command line or the --config file gave."""
    overrides = {}
    for f in dataclasses.fields(GapConfig):
        value = getattr(args, f.name, None)
        if f.name in ("env", "out") or value is None:
            continue  # not given
        overrides[f.name] = tuple(value) if isinstance(value, list) else value
    bases = _bases(args.preset, args.env)
    if not args.env and args.dataset and len(bases) == 1 and "env" not in bases[0]:
        bases = [{**bases[0], **_env_from_dataset(args.dataset, overrides.get("obs_keys", ()))}]
    if any("env" not in b for b in bases):
        raise SystemExit("ttf gap: give --env, --preset or a --dataset that names its env")
    many = len(bases) > 1
    configs = []
    for b in bases:
        fields = {k: v for k, v in b.items() if k != "name"}
        for key, value in overrides.items():  # a KEY=VALUE flag overrides one key of the preset's dict
            both = isinstance(value, dict) and isinstance(fields.get(key), dict)
            fields[key] = {**fields[key], **value} if both else value
        out = str(Path(args.out) / b.get("name", b["env"].split("/")[-1])) if many else args.out
        configs.append(GapConfig(**{**fields, "out": out}))
    return configs


def _bases(preset: str | None, envs: list[str] | None) -> list[dict]:
    """The preset's entries for ``envs``: those naming the env, else the preset's settings (the same for
    all its tasks) on that env. Without ``envs``: every entry; without a preset: one base per env."""
    entries = [dict(p) for p in PRESETS[preset]] if preset else [{}]
    if not envs:
        return entries
    if not preset:
        return [{"env": env} for env in envs]
    chosen = []
    for env in envs:
        matching = [e for e in entries if e.get("env") == env]
        if matching:
            chosen += matching
            continue
        settings = [{k: v for k, v in e.items() if k not in ("env", "name")} for e in entries]
        if any(s != settings[0] for s in settings):
            raise ValueError(f"--preset {preset}: its tasks differ in more than the env, and --env {env} is none "
                             f"of them ({sorted({e['env'] for e in entries})}); give one of those or use flags")
        chosen.append({**settings[0], "env": env})
    return chosen


def _env_from_dataset(dataset: str, obs_keys: tuple[str, ...]) -> dict:
    """{"env", "env_kwargs"} of the env the store names (``ttfkit.envs.from_store``), printed. The env is
    built once here, so a store/env observation-key mismatch fails before any training."""
    from ttfkit.envs import make_env
    from ttfkit.envs.from_store import env_for_store

    env, kwargs = env_for_store(dataset, obs_keys)  # ValueError naming the store: the CLI's error path
    make_env(env, **kwargs).close()
    print(f"env {env} from {dataset}: {kwargs}", flush=True)
    return {"env": env, "env_kwargs": kwargs}


def main(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    executor = None
    if args.executor == "ray":
        from ttfkit.scripts.executors import RayExecutor

        executor = RayExecutor(address=args.ray_address, threads=args.threads or 1)
    for cfg in _configs(args):
        print(f"== TTF gap: {cfg.env} -> {cfg.out}", flush=True)
        text = run_gap(cfg, executor=executor)
        print(text)
        print(f"report: {Path(cfg.out) / 'report.md'}\nplot:   {Path(cfg.out) / 'gap.png'}\n"
              f"table:  {Path(cfg.out) / 'checkpoints.csv'}")
    print(f"total wall time: {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    from ttfkit.scripts.cli import main as cli_main

    sys.exit(cli_main(["gap", *sys.argv[1:]]))
