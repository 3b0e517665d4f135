"""Action parity of an exported policy through LeRobot 0.4.4 versus ttfkit, same observations and noise.

Three ways to carry ttfkit's normalisation into LeRobot, on real Meta-World observations (expert
demos of the given task), for a flow and a diffusion policy with random weights:
- ``export``: what ``ttf export lerobot`` writes now: ttfkit's normaliser inside the model, LeRobot's
  processors IDENTITY;
- ``min_max``: LeRobot MIN_MAX processors with min = (-1 - offset)/scale, max = (1 - offset)/scale;
- ``mean_std``: the earlier export, LeRobot MEAN_STD with mean = -offset/scale, std = 1/scale (LeRobot
  divides by std + 1e-8).
Writes parity.json beside this file.

    MUJOCO_GL=egl python docs/results/2026-11-30/ecosystem/parity.py --task pick-place --demos 10
"""

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from lerobot.configs.types import NormalizationMode
from lerobot.policies.factory import make_pre_post_processors

from lerobot_policy_ttfkit import TtfkitConfig, TtfkitPolicy, make_ttfkit_pre_post_processors
from lerobot_policy_ttfkit.processor_ttfkit import stats_from_normalizer
from lerobot_policy_ttfkit.export_ttfkit import export_ttfkit_policy
from ttfkit.data import Normalizer, ReplayBuffer
from ttfkit.envs.collect import collect
from ttfkit.policies import load, make_policy

FEATURES = {"observation.state": "agent_pos", "observation.environment_state": "environment_state"}


def mean_std_stats(normalizer, keys):
    out = {}
    for feature, key in keys.items():
        shape = np.asarray(normalizer.to_dict()[key]["min"]).shape
        offset = normalizer.normalize(key, torch.zeros(shape, dtype=torch.float64))
        scale = normalizer.normalize(key, torch.ones(shape, dtype=torch.float64)) - offset
        out[feature] = {"mean": (-offset / scale).float().numpy(), "std": (1.0 / scale).float().numpy()}
    return out


def _diff(policy, pre, post, batch, noise, want) -> float:
    got = post(policy.predict_action_chunk(pre(batch), noise=noise,
                                           generator=torch.Generator().manual_seed(2)))
    return float((got - want).abs().max())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="pick-place")
    parser.add_argument("--demos", type=int, default=10)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp())
    env_id = f"ttfkit/metaworld-{args.task}-v3"
    collect(env_id, args.demos, tmp / "demos.zarr", seed=0)
    buf = ReplayBuffer.open(tmp / "demos.zarr")
    norm = Normalizer.fit(buf, ["agent_pos", "environment_state", "action"], mode="minmax")
    shapes = {k: buf[k].shape[1:] for k in ("agent_pos", "environment_state")}
    span = {k: (buf[k][:].max(0) - buf[k][:].min(0)) for k in ("agent_pos", "environment_state", "action")}
    rng = np.random.default_rng(0)
    idx = rng.integers(0, buf.n_steps - 2, args.batch)[:, None] + np.arange(2)
    obs = {k: torch.from_numpy(buf[k][:][idx]) for k in shapes}  # (B, To, D) dataset units
    results = {"task": env_id, "demos": args.demos, "steps": int(buf.n_steps), "batch": args.batch,
               "smallest_nonconstant_span": {k: float(v[v > 1e-6].min()) for k, v in span.items()}}
    for name, extra in (("flow", {"num_steps": 4}), ("diffusion", {"num_inference_steps": 4})):
        torch.manual_seed(0)
        policy = make_policy(name, normalizer=norm, obs_shapes=shapes, action_dim=4, horizon=16,
                             n_obs_steps=2, n_action_steps=8, backbone="mlp", **extra)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
        policy.save(tmp / f"{name}_ckpt")
        exported = export_ttfkit_policy(tmp / f"{name}_ckpt", tmp / f"{name}_lr")
        ttfkit = load(tmp / f"{name}_ckpt")
        noise = torch.randn(args.batch, 16, 4, generator=torch.Generator().manual_seed(1))
        want = ttfkit.predict_action_chunk(obs, noise=noise, generator=torch.Generator().manual_seed(2))
        lerobot = TtfkitPolicy.from_pretrained(exported)
        batch = {f: obs[k] for f, k in FEATURES.items()}
        pre, post = make_pre_post_processors(lerobot.config, pretrained_path=str(exported))
        diffs = {"export": _diff(lerobot, pre, post, batch, noise, want)}
        weights = {k: v for k, v in ttfkit.state_dict().items() if not k.startswith("normalizer.")}
        for mode, stats in (("min_max", stats_from_normalizer(norm, {**FEATURES, "action": "action"})),
                            ("mean_std", mean_std_stats(norm, {**FEATURES, "action": "action"}))):
            c = lerobot.config
            cfg = TtfkitConfig(policy=name, device="cpu", input_features=c.input_features,
                               output_features=c.output_features, policy_config=c.policy_config,
                               horizon=c.horizon, n_obs_steps=c.n_obs_steps,
                               n_action_steps=c.n_action_steps,
                               normalization_mapping={t: NormalizationMode(mode.upper())
                                                      for t in ("STATE", "ENV", "ACTION")})
            inner = TtfkitPolicy(cfg, dataset_stats=stats)
            inner.model.load_state_dict(weights, strict=True)
            p_pre, p_post = make_ttfkit_pre_post_processors(cfg, stats)
            diffs[mode] = _diff(inner, p_pre, p_post, batch, noise, want)
        results[name] = {"max_abs_diff": diffs, "action_range": [float(want.min()), float(want.max())]}
        print(name, results[name])
    out = Path(__file__).with_name("parity.json")
    out.write_text(json.dumps(results, indent=2))
    print("wrote", out)


if __name__ == "__main__":
    main()
