"""Optional experiment logging: TensorBoard and Weights & Biases (offline), behind ``--log``.

``open_loggers(names, log_dir, kind=..., name=...)`` returns an ``ExperimentLog`` whose
``log(metrics, step)`` forwards ``{tag: float}`` to every named backend; ``close()`` flushes them.
Backends are registered by name (``@register_logger("tensorboard")``) and import their package only
when opened; a missing one is an ``ImportError`` naming the extra to install
(``pip install 'ttfkit[tensorboard]'`` / ``'ttfkit[wandb]'``).

Tags (the same in both backends; ``train_metrics`` / ``eval_metrics`` build them):

    train/loss, train/lr, train/grad_norm, train/samples_per_s, train/steps_per_s   every metrics.csv row
    val/loss                                                                       checkpoint steps
    eval/success, eval/success_ci_low, eval/success_ci_high (Wilson 95%),
    eval/mean_return, eval/mean_length, eval/episodes                              one per checkpoint

``step`` is the optimizer step (for evaluations: the evaluated checkpoint's training step).

Layout under ``log_dir`` (a run directory):
- ``tensorboard/<kind>/``: event files (``tensorboard --logdir RUN_DIR/tensorboard``). ``purge_from=s``
  writes a restart marker so TensorBoard's reader drops the events of earlier writers at steps >= s:
  a resumed training run (``s`` = first step after its checkpoint) shows each step once, as
  metrics.csv does; a study that re-logs every checkpoint's evaluation passes ``s = 0``.
- ``wandb/offline-run-*/``: a W&B run in offline mode (nothing is sent; ``wandb sync DIR`` uploads it
  later). ``wandb/<kind>.json`` remembers the run's id and the last step it logged, so a resumed training
  run (``purge_from=s > 1``) continues the same W&B run (a new offline segment with the same id, which
  ``wandb sync`` appends). W&B keeps a run's steps increasing: the steps an interrupted segment logged
  after its last checkpoint keep its values there, and the resumed segment sends only later steps
  (metrics.csv holds the resumed values; TensorBoard's purge shows those too).
Non-finite values (no validation split: ``val/loss`` is NaN) are not logged.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Mapping

__all__ = ["ExperimentLog", "open_loggers", "register_logger", "list_loggers", "check_logger_names",
           "train_metrics", "eval_metrics"]

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, Callable[..., Any]] = {}


def register_logger(name: str):
    """Class decorator: a backend built as ``cls(log_dir, kind=, name=, group=, config=, purge_from=)``
    with ``log(metrics: dict[str, float], step: int)`` and ``close()``."""

    def wrap(cls):
        if name in _REGISTRY:
            raise ValueError(f"logger {name!r} is already registered by {_REGISTRY[name].__module__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def list_loggers() -> list[str]:
    return sorted(_REGISTRY)


def check_logger_names(names) -> tuple[str, ...]:
    """``names`` (a sequence, or one comma-separated string) as a tuple; unknown or repeated names raise."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = tuple(names)
    unknown = [n for n in names if n not in _REGISTRY]
    if unknown or len(set(names)) != len(names):
        raise ValueError(f"log: expected distinct names from {list_loggers()}, got {list(names)}")
    return names


class ExperimentLog:
    """The opened backends; ``log`` forwards finite values, ``close`` closes each (also as a context)."""

    def __init__(self, backends: list):
        self.backends = backends

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        values = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}
        if values:
            for backend in self.backends:
                backend.log(values, int(step))

    def close(self) -> None:
        for backend in self.backends:
            backend.close()
        self.backends = []

    def __enter__(self) -> "ExperimentLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_loggers(names, log_dir: str | os.PathLike, *, kind: str, name: str, group: str | None = None,
                 config: dict | None = None, purge_from: int | None = None) -> ExperimentLog:
    """Open the backends ``names`` under ``log_dir`` (see the module docstring); none: a no-op log.

    ``kind`` ("train", "eval") separates the writers of one run; ``name``/``group`` label the W&B run;
    ``config`` is stored with it (and as TensorBoard text when ``purge_from`` is None or <= 1).
    """
    backends = []
    try:
        for n in check_logger_names(names):
            backends.append(_REGISTRY[n](Path(log_dir), kind=kind, name=name, group=group, config=config,
                                        purge_from=purge_from))
    except BaseException:
        ExperimentLog(backends).close()
        raise
    return ExperimentLog(backends)


def train_metrics(row: Mapping[str, Any], batch: int) -> dict[str, float]:
    """Tags of one metrics.csv row (``ttfkit.policies.trainer``); ``val_loss`` "" off checkpoint steps."""
    out = {"train/loss": row["train_loss"], "train/lr": row["lr"], "train/grad_norm": row["grad_norm"],
           "train/samples_per_s": row["samples_per_s"], "train/steps_per_s": float(row["samples_per_s"]) / batch}
    if row.get("val_loss") not in ("", None):
        out["val/loss"] = row["val_loss"]
    return {k: float(v) for k, v in out.items()}


def eval_metrics(result) -> dict[str, float]:
    """Tags of an ``ttfkit.envs.EvalResult``."""
    return {"eval/success": result.success_rate, "eval/success_ci_low": result.ci_low,
            "eval/success_ci_high": result.ci_high, "eval/mean_return": result.mean_return,
            "eval/mean_length": float(sum(result.lengths)) / max(1, result.n_episodes),
            "eval/episodes": float(result.n_episodes)}


def _read_wandb_state(path: Path) -> dict | None:
    """{"id", "last_step"} of the W&B run an earlier segment of this run directory logged to, or None."""
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        return {"id": str(state["id"]), "last_step": int(state["last_step"])}
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: unreadable W&B run state ({err}); delete it to start a new W&B run") from err


def _missing(package: str, extra: str) -> ImportError:
    return ImportError(f"--log {extra} needs the {package} package: pip install 'ttfkit[{extra}]' "
                       f"(or pip install {package})")


@register_logger("tensorboard")
class _TensorBoard:
    def __init__(self, log_dir: Path, *, kind: str, name: str, group: str | None, config: dict | None,
                 purge_from: int | None):
        try:
            import tensorboard  # noqa: F401  (torch's writer needs it and says so less clearly)
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as err:
            raise _missing("tensorboard", "tensorboard") from err
        self.writer = SummaryWriter(log_dir=str(log_dir / "tensorboard" / kind), purge_step=purge_from)
        if config is not None and (purge_from is None or purge_from <= 1):
            self.writer.add_text("config", f"```\n{json.dumps(config, indent=2)}\n```", 0)

    def log(self, metrics: dict[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def close(self) -> None:
        self.writer.close()


@register_logger("wandb")
class _WandB:
    def __init__(self, log_dir: Path, *, kind: str, name: str, group: str | None, config: dict | None,
                 purge_from: int | None):
        try:
            import wandb
        except ImportError as err:
            raise _missing("wandb", "wandb") from err
        log_dir.mkdir(parents=True, exist_ok=True)
        self.state_path = log_dir / "wandb" / f"{kind}.json"
        earlier = _read_wandb_state(self.state_path) if purge_from is not None and purge_from > 1 else None
        settings = wandb.Settings(silent=True, console="off", disable_git=True, save_code=False,
                                  disable_job_creation=True, x_disable_stats=True, x_disable_machine_info=True)
        resume = {"id": earlier["id"], "resume": "allow"} if earlier else {}
        self.run = wandb.init(mode="offline", dir=str(log_dir), project=os.environ.get("WANDB_PROJECT", "ttfkit"),
                              name=name, group=group, job_type=kind, config=config or {}, settings=settings,
                              reinit="create_new", **resume)
        self.last_step = earlier["last_step"] if earlier else -1
        self._save_state()
        logger.info("wandb offline run %s in %s%s", self.run.id, self.run.dir,
                    f" (resumed after step {self.last_step})" if earlier else "")

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step <= self.last_step:  # already in this W&B run from an interrupted segment (see module docstring)
            return
        self.run.log(metrics, step=step)
        self.last_step = step
        self._save_state()

    def _save_state(self) -> None:
        tmp = self.state_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"id": self.run.id, "last_step": self.last_step}))
        os.replace(tmp, self.state_path)  # a crash keeps the previous state whole

    def close(self) -> None:
        self.run.finish()
