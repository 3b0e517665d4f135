"""Meta-World v3 single tasks as ttfkit envs: ``ttfkit/metaworld-<task>-v3``, one per task with a
scripted policy in ``metaworld.policies.ENV_POLICY_MAP`` (all 50 in metaworld 3.1.1).

Layouts. Every ``reset(seed=s)`` draws a fresh object/goal layout from the env's generator
(Meta-World's ``seeded_rand_vec`` path, driven by ``self.np_random``), so the same seed gives the same
layout and different seeds give independent ones. Meta-World's MT1 benchmark is *not* used: it
pre-samples 50 layouts and ``reset`` only picks among them, so demo and evaluation seeds would share
layouts.

Observation (dict, float32 unless noted), built from Meta-World's 39-dim goal-observable state
``s = [hand xyz (0:3), gripper opening (3), objects (4:18), previous frame of 0:18 (18:36), goal (36:39)]``
where ``objects`` is object 1 pos+quat (4:11) and object 2 pos+quat (11:18), zero padded:

- ``agent_pos`` (4,) = ``s[0:4]``: hand xyz and gripper opening in [0, 1].
- ``environment_state`` (17,) = ``s[4:18] ++ s[36:39]``: both objects' pos+quat and the goal.
- ``pixels`` (H, W, 3) uint8, only with ``pixels=True``.

The previous-frame copy ``s[18:36]`` is dropped (policies stack their own observation history); no
bundled scripted policy reads it, so ``to_metaworld_obs`` rebuilds the 39-dim vector the experts
expect from the dict alone (previous frame = current frame).

Observation bounds are Meta-World's own where it knows them (hand workspace, gripper [-1, 1], the
task's goal range); object poses are unbounded. ``render_fps`` is 1 / the simulator's step (80).

Episodes: the time limit is gymnasium's ``TimeLimit`` (default 500 = Meta-World's
``max_path_length``; ``gymnasium.make(id, max_episode_steps=N)`` changes it). ``terminated`` is
False (Meta-World convention) unless ``terminate_on_success=True``, which ends an episode at its
first success as LeRobot's sim envs do (its rollout reads success only at termination);
``info["is_success"]`` is Meta-World's ``info["success"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from ttfkit.envs.base import TaskEnv
from ttfkit.envs.registry import register_env

__all__ = ["MetaWorldEnv", "TASKS", "to_metaworld_obs", "AGENT_POS_DIM", "ENV_STATE_DIM"]

# Every Meta-World v3 task with a scripted policy (tests/envs check this against ENV_POLICY_MAP).
TASKS: tuple[str, ...] = (
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown",
    "button-press-topdown-wall", "button-press", "button-press-wall", "coffee-button", "coffee-pull",
    "coffee-push", "dial-turn", "disassemble", "door-close", "door-lock", "door-open", "door-unlock",
    "drawer-close", "drawer-open", "faucet-close", "faucet-open", "hammer", "hand-insert",
    "handle-press-side", "handle-press", "handle-pull-side", "handle-pull", "lever-pull",
    "peg-insert-side", "peg-unplug-side", "pick-out-of-hole", "pick-place", "pick-place-wall",
    "plate-slide-back-side", "plate-slide-back", "plate-slide-side", "plate-slide", "push-back", "push",
    "push-wall", "reach", "reach-wall", "shelf-place", "soccer", "stick-pull", "stick-push",
    "sweep-into", "sweep", "window-close", "window-open",
)
MAX_EPISODE_STEPS = 500
AGENT_POS_DIM = 4
ENV_STATE_DIM = 17
_NO_LIMIT = 10**9  # Meta-World's own path limit is disabled; TimeLimit truncates instead


def to_metaworld_obs(agent_pos: np.ndarray, environment_state: np.ndarray) -> np.ndarray:
    """Rebuild Meta-World's 39-dim state from the dict parts (pure; new float64 array).

    Args:
        agent_pos: (..., 4); environment_state: (..., 17).
    Returns:
        (..., 39) with the previous-frame block equal to the current frame.
    """
    agent_pos = np.asarray(agent_pos, dtype=np.float64)
    environment_state = np.asarray(environment_state, dtype=np.float64)
    if agent_pos.shape[-1] != AGENT_POS_DIM or environment_state.shape[-1] != ENV_STATE_DIM:
        raise ValueError(f"Meta-World obs needs agent_pos (..., {AGENT_POS_DIM}) and environment_state "
                         f"(..., {ENV_STATE_DIM}); got {agent_pos.shape} and {environment_state.shape}")
    current = np.concatenate([agent_pos, environment_state[..., :14]], axis=-1)  # (..., 18)
    return np.concatenate([current, current, environment_state[..., 14:]], axis=-1)  # (..., 39)


class MetaWorldEnv(TaskEnv):
    """One Meta-World v3 task with a fresh random layout per seeded reset and a dict observation.

    Args:
        task: Meta-World task name without ``-v3`` (e.g. ``"pick-place"``).
        pixels: add ``pixels`` (image_size x image_size x 3 uint8) to the observation.
        image_size: side of the ``pixels`` image.
        camera: Meta-World camera name for ``pixels`` and ``render()`` (``corner``, ``corner2``,
            ``corner3``, ``corner4``, ``topview``, ``behindGripper``, ``gripperPOV``).
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` returns a render_size frame).
        render_size: side of the ``render()`` frame (videos).
        terminate_on_success: end the episode (``terminated=True``) at the first success.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 80}  # 1 / (timestep 0.0025 x frame_skip 5)
    suite = "Meta-World"

    def __init__(self, task: str, pixels: bool = False, image_size: int = 96, camera: str = "corner",
                 render_mode: str | None = None, render_size: int = 256,
                 terminate_on_success: bool = False) -> None:
        if task not in TASKS:
            raise KeyError(f"unknown Meta-World v3 task {task!r}; known: {', '.join(TASKS)}")
        try:
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        except ImportError as err:  # pragma: no cover - core dependency
            raise ImportError("Meta-World is missing: pip install 'metaworld==3.1.1'") from err
        self.task = task
        env = ALL_V3_ENVIRONMENTS[f"{task}-v3"]()
        # Goal observable, fresh layout per reset drawn from self.np_random (see module docstring).
        env._partially_observable = False
        del env.sawyer_observation_space  # cached property: recompute with the goal bounds
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env._set_task_called = True
        env.max_path_length = _NO_LIMIT
        self._env = env
        self._init_views(agent_dim=AGENT_POS_DIM, env_dim=ENV_STATE_DIM, pixels=pixels, image_size=image_size,
                         render_mode=render_mode, render_size=render_size, camera=camera, rotate180=True)
        bounds = env.sawyer_observation_space  # finite for hand, gripper and goal
        for key, idx in (("agent_pos", np.r_[0:4]), ("environment_state", np.r_[4:18, 36:39])):
            self.observation_space[key] = spaces.Box(bounds.low[idx].astype(np.float32),
                                                     bounds.high[idx].astype(np.float32), dtype=np.float32)
        self.terminate_on_success = terminate_on_success

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self._env.np_random = self.np_random  # one generator drives the layout
        raw, _ = self._env.reset()
        return self._obs(raw), {"is_success": False}

    def step(self, action: np.ndarray):
        action = self._check_action(action)
        raw, reward, _, _, info = self._env.step(action)
        success = bool(info["success"])
        terminated = self.terminate_on_success and success
        return self._obs(raw), float(reward), terminated, False, {"is_success": success}

    # -- helpers --------------------------------------------------------------------------------
    def layout(self) -> np.ndarray:
        """The current episode's random layout vector (object/goal positions; Meta-World rand_vec)."""
        return np.array(self._env._last_rand_vec, dtype=np.float64)

    def _obs(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        self.last_raw_obs = raw.copy()  # Meta-World's 39-dim state, kept for inspection and tests
        obs = {
            "agent_pos": raw[0:4].astype(np.float32),
            "environment_state": np.concatenate([raw[4:18], raw[36:39]]).astype(np.float32),
        }
        if self.pixels:
            obs["pixels"] = self._frame(self._image_size)
        return obs


for _task in TASKS:
    register_env(f"ttfkit/metaworld-{_task}-v3", entry_point="ttfkit.envs.metaworld:MetaWorldEnv",
                 max_episode_steps=MAX_EPISODE_STEPS, kwargs={"task": _task})
