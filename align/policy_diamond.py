"""Diamond Maps for flow policies: a phi that reuses the policy's backbone, distillation on a dataset,
and the checkpoint directory format.

Convention: as in :mod:`ttfkit.align.diamond`; chunks are (B, H, Da) in the policy's normalised action
space ([-1, 1] under min-max), cond = ``policy.encode_obs(obs)`` (B, Dc).

:class:`PolicyPhi` starts as a copy of the teacher's backbone evaluated at the GLASS sufficient input,
net = backbone(y, t*, cond + Z([emb(t), emb(s), emb(s'), x_t])) with Z a zero-initialised linear layer, so
at initialisation phi(s, s) is exactly the teacher's GLASS posterior velocity and only the off-diagonal
(s' > s) behaviour has to be learned.

Checkpoint directory (format_version 1), written atomically (temp dir + rename)::

    config.json         {"format_version", "kind": "diamond_map", "diamond": DiamondConfig,
                         "phi": {"type": "policy"|"mlp", ...sizes}, "metadata"}
    model.safetensors   DiamondMap state dict
    teacher/            the teacher policy checkpoint (``ttfkit.policies`` format), needed to encode
                        observations and as the flow model of the alignment algorithms
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import shutil
import uuid
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ttfkit.data.atomic import replace_path
from ttfkit.align.diamond import DiamondConfig, DiamondMap, MLPPhi, _sinusoidal, distillation_loss

__all__ = [
    "PolicyPhi", "Distiller", "policy_diamond", "distill_policy", "save_diamond", "load_diamond", "build_diamond",
    "FORMAT_VERSION",
]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class PolicyPhi(nn.Module):
    """``net`` of a DiamondMap built from a flow policy's backbone (a copy; the teacher is untouched).

    Args:
        backbone: module ``backbone(x (B, H, Da), t (B,), cond (B, Dc)) -> (B, H, Da)``.
        horizon, action_dim, cond_dim: H, Da, Dc of the policy. time_dim: features per extra time.
        xbar_input: also feed x̄ (not only x_t) through the zero-initialised layer. Needed: the backbone sees
            x̄ only inside y = t*·S, where its coefficient relative to x_t's is (s/(1-s)²)/(t/(1-t)²), about
            0.01·(1-t)²/t at s = s_min = 0.01, so without it a one-call jump from s_min cannot turn the noise
            into posterior spread (format-1 checkpoints written before this option load with False).
    """

    def __init__(self, backbone: nn.Module, *, horizon: int, action_dim: int, cond_dim: int, time_dim: int = 32,
                 xbar_input: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.horizon, self.action_dim, self.cond_dim, self.time_dim = horizon, action_dim, cond_dim, time_dim
        self.xbar_input = xbar_input
        n_chunks = 2 if xbar_input else 1
        self.extra = nn.Linear(3 * time_dim + n_chunks * horizon * action_dim, cond_dim)
        nn.init.zeros_(self.extra.weight)
        nn.init.zeros_(self.extra.bias)

    @classmethod
    def from_policy(cls, policy, time_dim: int = 32, xbar_input: bool = True) -> PolicyPhi:
        cfg = policy.config
        backbone = copy.deepcopy(policy.backbone).requires_grad_(True)
        return cls(backbone, horizon=cfg.horizon, action_dim=cfg.action_dim,
                   cond_dim=policy.encoder.out_dim, time_dim=time_dim, xbar_input=xbar_input)

    def forward(self, t, s, s_next, t_star, y: Tensor, x_t: Tensor, xbar: Tensor, cond: Tensor) -> Tensor:
        if cond is None:
            raise ValueError("PolicyPhi needs cond (B, Dc) from policy.encode_obs")
        n = y.shape[0]
        chunks = [x_t.reshape(n, -1)] + ([xbar.reshape(n, -1)] if self.xbar_input else [])
        feats = torch.cat([_sinusoidal(u, self.time_dim) for u in (t, s, s_next)] + chunks, dim=1)
        return self.backbone(y, t_star, cond + self.extra(feats))  # (B, H, Da)


def policy_diamond(policy, config: DiamondConfig | None = None, time_dim: int = 32,
                   xbar_input: bool = True) -> DiamondMap:
    """A DiamondMap whose phi starts at the policy's GLASS velocity (see module docstring)."""
    return DiamondMap(PolicyPhi.from_policy(policy, time_dim=time_dim, xbar_input=xbar_input), config)


class Distiller:
    """Resumable distillation of a Diamond Map from the flow ``policy`` (AdamW, ``warmup`` linear steps, then
    ``schedule`` "cosine" (decay to 0 at ``steps``) or "constant" (the official code's, with an EMA); the warm-up
    keeps Adam's first, sign-like steps from moving the copied backbone away from the teacher before the gradients
    are meaningful).

    ``ema`` > 0 keeps an exponential moving average of the map's weights (decay ``ema`` per step, as the official
    code samples from its 0.999/0.9999 EMA): :attr:`sampler` is then the averaged map, the one to check, save and
    sample from; :attr:`dmap` is the map the optimizer trains.

    The teacher is frozen (no gradients); x_1 = normalised actions, cond = ``policy.encode_obs(obs)``.
    :meth:`state_dict` / :meth:`load_state_dict` hold the optimizer, schedule, step and generator state, and with
    ``ema`` the trained weights (the checkpoint's weights are then the sampler's).
    """

    def __init__(self, policy, dmap: DiamondMap, *, steps: int, lr: float = 3e-4, weight_decay: float = 0.0,
                 grad_clip: float = 1.0, warmup: int = 0, ema: float = 0.0, schedule: str = "cosine",
                 generator: torch.Generator | None = None) -> None:
        if steps < 1 or not 0 <= warmup < steps:
            raise ValueError(f"need steps >= 1 and 0 <= warmup < steps, got {steps=}, {warmup=}")
        if schedule not in ("cosine", "constant"):
            raise ValueError(f"schedule must be 'cosine' or 'constant', got {schedule!r}")
        if not 0.0 <= ema < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {ema=}")
        from ttfkit.optim import make_optimizer

        policy.eval()
        for p in policy.parameters():
            p.requires_grad_(False)
        self.policy, self.dmap, self.steps, self.grad_clip, self.generator = policy, dmap, steps, grad_clip, generator
        dmap.to(policy.device)
        self.opt = make_optimizer("adamw", dmap, lr=lr, weight_decay=weight_decay)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda k: _lr_factor(k, steps, warmup, schedule))
        self.step = 0
        self.ema = None
        if ema:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            self.ema = AveragedModel(dmap, multi_avg_fn=get_ema_multi_avg_fn(ema), use_buffers=True)
            self.ema.module.requires_grad_(False).eval()

    @property
    def sampler(self) -> DiamondMap:
        """The map to check, save and sample from: the EMA with ``ema`` > 0, else the trained map."""
        return self.dmap if self.ema is None else self.ema.module

    def train_step(self, batch: dict) -> dict:
        """One optimizer step on ``batch`` ({"obs", "action"}, dataset units); returns the loss metrics."""
        policy, dmap = self.policy, self.dmap.train()
        with torch.no_grad():
            cond = policy.encode_obs(batch["obs"])  # (B, Dc)
            x1 = policy._normalize(policy.config.action_key, batch["action"].to(policy.device))  # (B, H, Da)
        loss, metrics = distillation_loss(dmap, policy, x1, cond, generator=self.generator)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(dmap.parameters(), self.grad_clip))
        self.opt.step()
        self.sched.step()
        self.step += 1
        dmap.eval()
        if self.ema is not None:
            self.ema.update_parameters(dmap)
        return metrics

    def run(self, loader, on_step=None) -> DiamondMap:
        """Steps over ``loader`` (cycled) until ``steps``; ``on_step(step, metrics)`` returning True stops early."""
        while self.step < self.steps:
            for batch in loader:
                metrics = self.train_step(batch)
                if (on_step is not None and on_step(self.step, metrics)) or self.step >= self.steps:
                    return self.sampler.eval()
        return self.sampler.eval()

    def state_dict(self) -> dict:
        state = {"opt": self.opt.state_dict(), "sched": self.sched.state_dict(), "step": self.step}
        if self.generator is not None:
            state["generator"] = self.generator.get_state()
        if self.ema is not None:
            state["trained"] = {k: v.detach().clone() for k, v in self.dmap.state_dict().items()}
            state["ema_count"] = int(self.ema.n_averaged)
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`; with ``ema`` the Distiller must have been built on the checkpoint's
        (averaged) weights, which become the average and ``state["trained"]`` the trained map."""
        if (self.ema is None) != ("trained" not in state):
            raise ValueError("training state and Distiller disagree on ema: resume with the same --ema")
        self.opt.load_state_dict(state["opt"])
        self.sched.load_state_dict(state["sched"])
        self.step = int(state["step"])
        if self.generator is not None and "generator" in state:
            self.generator.set_state(state["generator"])
        if self.ema is not None:
            self.dmap.load_state_dict(state["trained"])
            self.ema.n_averaged.fill_(state["ema_count"])


def _lr_factor(step: int, steps: int, warmup: int, schedule: str = "cosine") -> float:
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def distill_policy(
    policy,
    loader,
    *,
    steps: int,
    lr: float = 3e-4,
    weight_decay: float = 0.0,
    config: DiamondConfig | None = None,
    dmap: DiamondMap | None = None,
    generator: torch.Generator | None = None,
    grad_clip: float = 1.0,
    warmup: int = 0,
    ema: float = 0.0,
    schedule: str = "cosine",
    on_step=None,
) -> DiamondMap:
    """Distil a Diamond Map from the flow ``policy`` on batches of ``loader`` (see :class:`Distiller`).

    ``on_step(step, metrics)`` is called after every step (True stops early). Returns the map to sample from
    (the EMA with ``ema`` > 0) in eval mode.
    """
    dmap = dmap or policy_diamond(policy, config)
    run = Distiller(policy, dmap, steps=steps, lr=lr, weight_decay=weight_decay, grad_clip=grad_clip,
                    warmup=warmup, ema=ema, schedule=schedule, generator=generator)
    return run.run(loader, on_step)


def save_diamond(dmap: DiamondMap, path: str | os.PathLike, *, teacher=None, metadata: dict | None = None,
                 extra_files: dict[str, bytes] | None = None) -> Path:
    """Write ``dmap`` (and the ``teacher`` policy, needed for PolicyPhi maps) to directory ``path`` atomically.

    ``extra_files`` {name: bytes} are written beside it in the same atomic replace (training state, curves).
    """
    path = Path(path)
    net = dmap.net
    if isinstance(net, PolicyPhi):
        if teacher is None:
            raise ValueError("a PolicyPhi Diamond Map needs its teacher policy to be saved with it")
        phi = {"type": "policy", "time_dim": net.time_dim, "xbar_input": net.xbar_input}
    elif isinstance(net, MLPPhi):
        phi = {"type": "mlp", "dim": net.dim, "cond_dim": net.cond_dim, "time_dim": net.time_dim,
               "hidden": net.inp.out_features, "depth": sum(isinstance(m, nn.Linear) for m in net.body)}
    else:
        raise ValueError(f"cannot save a Diamond Map with net {type(net).__name__}; use PolicyPhi or MLPPhi")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        state = {k: v.detach().contiguous() for k, v in dmap.state_dict().items()}
        save_file(state, tmp / "model.safetensors", metadata={"format_version": str(FORMAT_VERSION)})
        if teacher is not None:
            teacher.save(tmp / "teacher")
        config = {"format_version": FORMAT_VERSION, "kind": "diamond_map", "diamond": asdict(dmap.config),
                  "phi": phi, "has_teacher": teacher is not None, "metadata": metadata or {}}
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name, data in (extra_files or {}).items():
            if name in ("config.json", "model.safetensors", "teacher") or "/" in name:
                raise ValueError(f"extra file name {name!r} would clash with the checkpoint layout")
            (tmp / name).write_bytes(data)
        replace_path(tmp, path, kind="diamond-map", legacy=_is_diamond_dir)  # older saves: generic marker
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("saved Diamond Map to %s", path)
    return path


def _is_diamond_dir(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text()).get("kind") == "diamond_map"
    except (OSError, ValueError):
        return False


def load_diamond(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[DiamondMap, object | None]:
    """(DiamondMap in eval mode, teacher policy or None) from a :func:`save_diamond` directory."""
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"no Diamond-Map checkpoint at {path} (missing config.json)")
    config = json.loads(cfg_file.read_text())
    if config.get("kind") != "diamond_map":
        raise ValueError(f"{cfg_file} is not a Diamond-Map checkpoint (kind={config.get('kind')!r})")
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{cfg_file}: unsupported format_version {config.get('format_version')!r}")
    teacher = None
    if config.get("has_teacher"):
        from ttfkit.policies import load

        teacher = load(path / "teacher", device=device)
    try:
        dmap = build_diamond(config["phi"], DiamondConfig(**config["diamond"]), teacher)
    except ValueError as err:
        raise ValueError(f"{cfg_file}: {err}") from err
    state = load_file(str(path / "model.safetensors"))
    try:
        dmap.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"weights in {path / 'model.safetensors'} do not match {cfg_file}: {err}") from err
    return dmap.to(device).eval(), teacher


def build_diamond(phi: dict, config: DiamondConfig, teacher=None) -> DiamondMap:
    """An untrained DiamondMap of the sizes ``phi`` (config.json's "phi": {"type": "policy", "time_dim",
    "xbar_input"} with the flow ``teacher`` whose backbone it copies, or {"type": "mlp", "dim", "hidden", "depth",
    "cond_dim", "time_dim"}); its weights are loaded afterwards (:func:`load_diamond`, the LeRobot export)."""
    if phi["type"] == "policy":
        if teacher is None:
            raise ValueError("a policy Diamond Map needs its teacher policy (teacher/ beside it)")
        return policy_diamond(teacher, config, time_dim=phi["time_dim"], xbar_input=phi.get("xbar_input", False))
    if phi["type"] == "mlp":
        net = MLPPhi(phi["dim"], hidden=phi["hidden"], depth=phi["depth"], cond_dim=phi["cond_dim"],
                     time_dim=phi["time_dim"])
        return DiamondMap(net, config)
    raise ValueError(f"unknown phi type {phi['type']!r} (expected 'policy' or 'mlp')")
