"""robomimic's robosuite tasks as ttfkit envs: ``ttfkit/robomimic-{lift,can,square,tool-hang,transport}-v0``
(robosuite 1.5.2's ``Lift``, ``PickPlaceCan``, ``NutAssemblySquare``, ``ToolHang``, ``TwoArmTransport``
with Panda arms, as in robomimic's datasets). Needs the ``robosuite`` extra (``make setup``).

Observation (dict, float32 unless noted):

- ``agent_pos`` (9 per arm) = ``robot{i}_eef_pos`` (3), ``robot{i}_eef_quat`` (4, xyzw),
  ``robot{i}_gripper_qpos`` (2) for each arm: robomimic's low-dim proprioception.
- ``environment_state`` (De,) = robomimic's ``object`` key (Lift 10, Can 14, Square 14, Tool-Hang 44,
  Transport 41): object poses and object-to-gripper offsets, in the order of robomimic's files
  (robosuite <= 1.4): per object ``<obj>_pos``, ``<obj>_quat``, then ``<obj>_to_robot0_eef_pos/quat``.
  robosuite 1.5's own ``object-state`` puts the ``_to_robot0_eef`` entries first (Can, Square,
  Tool-Hang); ``object_names`` lists the entries in the order used here.
- ``<camera>`` uint8 (image_size, image_size, 3), row 0 at the top, one per name in ``cameras``
  (``agentview``, ``robot0_eye_in_hand``, ...).
- ``obs_keys``: robomimic observation names added as they are (``robot0_eef_pos``, ``object``,
  ``agentview_image`` ...), so a policy trained on an imported robomimic file reads the env directly.
  A name the env cannot produce is an error that lists both the asked and the available keys.

Actions are robosuite's OSC_POSE deltas in [-1, 1], 7 per arm: position (3, scaled to 5 cm), axis-angle
rotation (3, scaled to 0.5 rad), gripper (1; -1 open, +1 close). As in robosuite <= 1.4 (which recorded
robomimic's files), deltas are in the world frame (1.5's ``input_ref_frame="world"``).

Layouts: ``reset(seed=s)`` reseeds robosuite's one generator (object placement and the arm's initial
joint noise), so the same seed gives the same layout and different seeds independent ones. robosuite's
``hard_reset`` is off (the model is built once). ``info["is_success"]`` is the task's own
``_check_success()``; ``terminated`` is always False and gymnasium's ``TimeLimit`` ends the episode
(robomimic's horizons: 400 steps for Lift/Can/Square, 700 for Tool-Hang/Transport).

Rendering: cameras render through ttfkit's own MuJoCo renderer with shadows and multisampling off
(``ttfkit.envs.rendering``), not robosuite's offscreen renderer; ``scripts/bench_envs.py`` compares the two.

robomimic files: ``env_from_args(env_args, obs_keys)`` turns a file's ``env_args`` (robosuite 1.2-1.4)
into ``(env_id, kwargs)`` for ``make_env``; ``map_controller_config`` maps its OSC_POSE controller
config to robosuite 1.5 and names the field it cannot map.
"""

from __future__ import annotations

import copy
import logging
import re
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ttfkit.envs.registry import register_env
from ttfkit.envs.rendering import OffscreenCamera, fast_visuals

__all__ = ["RobomimicEnv", "TASKS", "env_from_args", "env_from_store", "map_controller_config",
           "default_controller", "ControllerMappingError"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Task:
    env_name: str  # robosuite environment class name (robomimic's env_args["env_name"])
    n_arms: int
    horizon: int  # robomimic's evaluation horizon
    extra: tuple[tuple[str, Any], ...] = ()  # fixed robosuite kwargs


TASKS: dict[str, _Task] = {
    "lift": _Task("Lift", 1, 400),
    "can": _Task("PickPlaceCan", 1, 400),
    "square": _Task("NutAssemblySquare", 1, 400),
    "tool-hang": _Task("ToolHang", 1, 700),
    "transport": _Task("TwoArmTransport", 2, 700, (("env_configuration", "single-arm-opposed"),)),
}
_BY_ENV_NAME = {t.env_name: name for name, t in TASKS.items()}
_PROPRIO = ("eef_pos", "eef_quat", "gripper_qpos")  # per arm, in agent_pos order


class ControllerMappingError(ValueError):
    """A robosuite <= 1.4 controller config field that robosuite 1.5's OSC_POSE cannot represent."""


def default_controller() -> dict[str, Any]:
    """robosuite 1.5's OSC_POSE arm config with world-frame deltas (robosuite <= 1.4 semantics)."""
    return {
        "type": "OSC_POSE", "input_max": 1, "input_min": -1,
        "output_max": [0.05, 0.05, 0.05, 0.5, 0.5, 0.5], "output_min": [-0.05, -0.05, -0.05, -0.5, -0.5, -0.5],
        "kp": 150, "damping_ratio": 1, "impedance_mode": "fixed", "kp_limits": [0, 300],
        "damping_ratio_limits": [0, 10], "position_limits": None, "orientation_limits": None,
        "uncouple_pos_ori": True, "input_type": "delta", "input_ref_frame": "world",
        "interpolation": None, "ramp_ratio": 0.2,
    }


class RobomimicEnv(gym.Env):
    """One robomimic task on robosuite 1.5 with a dict observation and seeded layouts.

    Args:
        task: key of ``TASKS`` (``"lift"``, ``"can"``, ``"square"``, ``"tool-hang"``, ``"transport"``).
        cameras: camera names whose images are added under their own name.
        image_size: side of camera images (also of ``<camera>_image`` robomimic keys).
        obs_keys: robomimic observation names to add unchanged (module docstring).
        controller: robosuite 1.5 OSC_POSE arm config (default ``default_controller()``); a robosuite
            <= 1.4 config goes through ``map_controller_config`` first.
        robosuite_kwargs: more ``robosuite.make`` arguments (``control_freq``, ``reward_shaping``,
            ``robots`` ...), as stored in a robomimic file's ``env_kwargs``.
        render_mode: ``None`` or ``"rgb_array"``; render_size: side of ``render()`` frames;
        render_camera: camera of ``render()``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, task: str, cameras: tuple[str, ...] | list[str] = (), image_size: int = 84,
                 obs_keys: tuple[str, ...] | list[str] = (), controller: dict[str, Any] | None = None,
                 robosuite_kwargs: dict[str, Any] | None = None, render_mode: str | None = None,
                 render_size: int = 256, render_camera: str = "agentview") -> None:
        if task not in TASKS:
            raise KeyError(f"unknown robomimic task {task!r}; known: {sorted(TASKS)}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"{render_mode=} must be None or 'rgb_array'")
        if image_size <= 0 or render_size <= 0:
            raise ValueError(f"{image_size=} and {render_size=} must be positive")
        if isinstance(cameras, str) or isinstance(obs_keys, str):
            raise TypeError(f"cameras and obs_keys are sequences of names, got {cameras=} {obs_keys=}")
        self.task = task
        self.spec_task = TASKS[task]
        self.cameras = tuple(cameras)
        self.obs_keys = tuple(obs_keys)
        self.render_mode = render_mode
        self._image_size = image_size
        self._render_size = render_size
        self._render_camera = render_camera
        self._env = _make_robosuite(self.spec_task, controller, robosuite_kwargs or {})
        self.n_arms = len(self._env.robots)
        model, data = self._env.sim.model._model, self._env.sim.data._data
        fast_visuals(model, max(image_size, render_size), max(image_size, render_size))
        self._views: dict[tuple[str, int], OffscreenCamera] = {}
        raw = self._env.reset()
        self._check_obs_keys(raw)
        for cam in self.cameras:
            self._view(cam, image_size)  # fails early on an unknown camera
        if render_mode is not None:
            self._view(render_camera, render_size)
        self.object_names = _robomimic_object_order(
            [k for k, ob in self._env._observables.items() if ob.modality == "object" and k in raw])
        if sum(np.size(raw[k]) for k in self.object_names) != raw["object-state"].size:
            raise RuntimeError(f"robomimic-{task}: object observables {self.object_names} do not add up to "
                               f"robosuite's object-state {raw['object-state'].shape}")
        self._initial_state = self._object(raw).astype(np.float64)
        agent_dim = sum(raw[f"robot{i}_{k}"].size for i in range(self.n_arms) for k in _PROPRIO)
        obs_spaces: dict[str, spaces.Space] = {
            "agent_pos": spaces.Box(-np.inf, np.inf, (agent_dim,), np.float32),
            "environment_state": spaces.Box(-np.inf, np.inf, raw["object-state"].shape, np.float32),  # reordered
        }
        for cam in self.cameras:
            obs_spaces[cam] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
        for key in self.obs_keys:
            if self._image_camera(key):
                obs_spaces[key] = spaces.Box(0, 255, (image_size, image_size, 3), np.uint8)
            else:
                shape = raw["object-state"].shape if key == "object" else np.shape(raw[key])
                obs_spaces[key] = spaces.Box(-np.inf, np.inf, shape, np.float32)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Box(-1.0, 1.0, self._env.action_spec[0].shape, np.float32)

    # -- gymnasium API -------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        # robosuite's samplers and robots hold a reference to env.rng: reseed that object in place
        child = int(self.np_random.integers(2**63))
        self._env.rng.bit_generator.state = np.random.default_rng(child).bit_generator.state
        raw = self._env.reset()
        self._initial_state = self._object(raw).astype(np.float64)
        return self._obs(raw), {"is_success": bool(self._env._check_success())}

    def step(self, action: np.ndarray):
        action = np.asarray(action, dtype=np.float64)
        if action.shape != self.action_space.shape:
            raise ValueError(f"robomimic-{self.task} action must have shape {self.action_space.shape}, "
                             f"got {action.shape}")
        raw, reward, _, _ = self._env.step(np.clip(action, -1.0, 1.0))
        return self._obs(raw), float(reward), False, False, {"is_success": bool(self._env._check_success())}

    def render(self) -> np.ndarray | None:
        if self.render_mode is None:
            return None
        return self._view(self._render_camera, self._render_size).render()

    def close(self) -> None:
        for view in self._views.values():
            view.close()
        self._views.clear()
        self._env.close()

    # -- helpers --------------------------------------------------------------------------------
    def layout(self) -> np.ndarray:
        """The current episode's initial ``environment_state`` (object poses after reset, float64)."""
        return self._initial_state.copy()

    def _obs(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        obs = {
            "agent_pos": np.concatenate([raw[f"robot{i}_{k}"] for i in range(self.n_arms) for k in _PROPRIO]
                                        ).astype(np.float32),
            "environment_state": self._object(raw),
        }
        for cam in self.cameras:
            obs[cam] = self._view(cam, self._image_size).render()
        for key in self.obs_keys:
            cam = self._image_camera(key)
            if cam:
                obs[key] = obs[cam] if cam in self.cameras else self._view(cam, self._image_size).render()
            else:
                obs[key] = obs["environment_state"] if key == "object" else np.asarray(raw[key], dtype=np.float32)
        return obs

    def _object(self, raw: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([np.atleast_1d(raw[k]) for k in self.object_names]).astype(np.float32)

    def _view(self, camera: str, size: int) -> OffscreenCamera:
        if (camera, size) not in self._views:
            self._views[camera, size] = OffscreenCamera(self._env.sim.model._model, self._env.sim.data._data,
                                                        size, size, camera)
        return self._views[camera, size]

    @staticmethod
    def _image_camera(key: str) -> str | None:
        return key[: -len("_image")] if key.endswith("_image") else None

    def _check_obs_keys(self, raw: dict[str, np.ndarray]) -> None:
        model = self._env.sim.model._model
        cams = [model.camera(i).name for i in range(model.ncam)]
        available = sorted({"object", *(k for k in raw if not k.endswith("-state"))}
                           | {f"{c}_image" for c in cams})
        missing = [k for k in self.obs_keys if k not in available]
        if missing:
            raise KeyError(f"observation keys {missing} cannot be produced by ttfkit/robomimic-{self.task}-v0: "
                           f"the dataset/policy asks for {list(self.obs_keys)}; the env provides {available}")


_TO_EEF = re.compile(r"^(.+)_to_robot\d+_eef_(pos|quat)$")


def _robomimic_object_order(names: list[str]) -> list[str]:
    """robosuite 1.5 object observable names in robosuite <= 1.4's order (``X_pos``, ``X_quat`` before
    the ``X_to_robotN_eef_*`` entries of the same object); other names keep their place. Pure."""
    out = list(names)
    for name in names:
        match = _TO_EEF.match(name)
        if not match:
            continue
        obj = match.group(1)
        pose = [k for k in (f"{obj}_pos", f"{obj}_quat") if k in out and out.index(k) > out.index(name)]
        for k in pose:
            out.remove(k)
        first = min(out.index(k) for k in out if (m := _TO_EEF.match(k)) and m.group(1) == obj)
        out[first:first] = pose
    return out


def _make_robosuite(task: _Task, controller: dict[str, Any] | None, kwargs: dict[str, Any]):
    try:
        import robosuite
    except ImportError as err:
        raise ImportError("robosuite is missing: install ttfkit's robosuite extra (`make setup`, or "
                          "pip install -c constraints.txt -e '.[robosuite]' && "
                          "pip install --no-deps robosuite==1.5.2)") from err
    logging.getLogger("robosuite").setLevel(logging.ERROR)  # macro-file and optional-robot warnings
    arm = copy.deepcopy(controller or default_controller())
    if arm.get("type") != "OSC_POSE":
        raise ValueError(f"controller type {arm.get('type')!r}: ttfkit's robomimic envs use OSC_POSE arms")
    arm["gripper"] = {"type": "GRIP"}
    options = dict(robots=["Panda"] * task.n_arms, **dict(task.extra)) | dict(kwargs)
    options.update(controller_configs={"type": "BASIC", "body_parts": {"right": arm}},
                   has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False,
                   use_object_obs=True, ignore_done=True, hard_reset=False)
    try:
        return robosuite.make(task.env_name, **options)
    except TypeError as err:
        raise ValueError(f"robosuite {task.env_name} rejected the env kwargs {sorted(kwargs)}: {err}") from err


# ---------------------------------------------------------------------- robomimic files
# robosuite <= 1.4 OSC_POSE fields -> robosuite 1.5 fields (same meaning).
_RENAMED_FIELDS = {"damping": "damping_ratio", "damping_limits": "damping_ratio_limits"}
_SAME_FIELDS = {"type", "input_max", "input_min", "output_max", "output_min", "kp", "damping_ratio",
                "impedance_mode", "kp_limits", "damping_ratio_limits", "position_limits",
                "orientation_limits", "uncouple_pos_ori", "interpolation", "ramp_ratio"}
# env_kwargs that ttfkit sets itself (rendering is its own; cameras come from the observation keys).
_OWN_ENV_KWARGS = {"has_renderer", "has_offscreen_renderer", "use_camera_obs", "use_object_obs", "ignore_done",
                   "render_gpu_device_id", "camera_names", "camera_heights", "camera_widths", "camera_depths",
                   "controller_configs", "hard_reset", "render_camera", "renderer"}


def map_controller_config(old: dict[str, Any], where: str = "controller_configs") -> dict[str, Any]:
    """robosuite 1.2-1.4 OSC_POSE arm config (as stored in robomimic files) -> robosuite 1.5 part config.

    ``damping``/``damping_limits`` become ``damping_ratio``/``damping_ratio_limits``, ``control_delta``
    becomes ``input_type`` ("delta"/"absolute"), and deltas stay in the world frame
    (``input_ref_frame="world"``, robosuite <= 1.4 behaviour). A robosuite 1.5 composite config
    (``body_parts``) is accepted when its arm is OSC_POSE. Pure.

    Raises:
        ControllerMappingError: naming ``<where>.<field>`` for a controller type other than OSC_POSE,
            an interpolation other than none/"linear", or a field robosuite 1.5 has no equivalent for.
    """
    if not isinstance(old, dict):
        raise ControllerMappingError(f"{where}: expected a dict, got {type(old).__name__}")
    if "body_parts" in old:  # already robosuite >= 1.5
        parts = old["body_parts"]
        arms = {k: v for k, v in parts.items() if k in ("right", "left")}
        if not arms:
            raise ControllerMappingError(f"{where}.body_parts has no 'right'/'left' arm: {sorted(parts)}")
        name, arm = next(iter(arms.items()))
        return map_controller_config({k: v for k, v in arm.items() if k != "gripper"},
                                     where=f"{where}.body_parts.{name}")
    if old.get("type") != "OSC_POSE":
        raise ControllerMappingError(f"{where}.type={old.get('type')!r} cannot be mapped: ttfkit maps only "
                                     "OSC_POSE arm controllers (robomimic's datasets use OSC_POSE)")
    new = default_controller()
    for key, value in old.items():
        if key in _RENAMED_FIELDS:
            new[_RENAMED_FIELDS[key]] = value
        elif key == "control_delta":
            new["input_type"] = "delta" if value else "absolute"
        elif key in ("input_type", "input_ref_frame"):
            new[key] = value
        elif key in _SAME_FIELDS:
            new[key] = value
        else:
            raise ControllerMappingError(f"{where}.{key}={value!r} has no robosuite 1.5 OSC_POSE equivalent; "
                                         f"known fields: {sorted(_SAME_FIELDS | set(_RENAMED_FIELDS) | {'control_delta'})}")
    if new["interpolation"] not in (None, "linear"):
        raise ControllerMappingError(f"{where}.interpolation={new['interpolation']!r} cannot be mapped "
                                     "(robosuite 1.5 knows None and 'linear')")
    if new["impedance_mode"] not in ("fixed", "variable", "variable_kp"):
        raise ControllerMappingError(f"{where}.impedance_mode={new['impedance_mode']!r} cannot be mapped")
    return new


def env_from_args(env_args: dict[str, Any], obs_keys: tuple[str, ...] | list[str] = ()
                  ) -> tuple[str, dict[str, Any]]:
    """``(env_id, make_env kwargs)`` rebuilding the env a robomimic file was recorded in.

    Args:
        env_args: the file's ``data.attrs["env_args"]`` (parsed JSON: ``env_name``, ``env_kwargs``).
        obs_keys: the observation keys the policy reads (robomimic names such as ``robot0_eef_pos``,
            ``object``, ``agentview_image``, or ttfkit's ``agent_pos``/``environment_state``).

    The kwargs are JSON data (they go into the evaluation's env spec). Raises ``ValueError`` naming the
    ``env_args`` field that cannot be used (unknown task, controller, non-square or depth cameras).
    """
    if not isinstance(env_args, dict):
        raise ValueError(f"env_args must be a dict (robomimic's data.attrs['env_args']), got {env_args!r:.200}")
    name = env_args.get("env_name")
    if name not in _BY_ENV_NAME:
        raise ValueError(f"env_args.env_name={name!r} is not a robomimic task ttfkit knows: {sorted(_BY_ENV_NAME)}")
    task = _BY_ENV_NAME[name]
    env_kwargs = dict(env_args.get("env_kwargs") or {})
    kwargs: dict[str, Any] = {}
    if "controller_configs" in env_kwargs:
        kwargs["controller"] = map_controller_config(env_kwargs["controller_configs"],
                                                     where="env_args.env_kwargs.controller_configs")
    kwargs["robosuite_kwargs"] = {k: v for k, v in env_kwargs.items() if k not in _OWN_ENV_KWARGS}
    own = {"agent_pos", "environment_state"}
    rm_keys = [k for k in obs_keys if k not in own]
    if any(k.endswith("_depth") for k in rm_keys):
        raise ValueError(f"env_args / obs keys {rm_keys}: depth images are not supported by ttfkit's robomimic envs")
    if any(k.endswith("_image") for k in rm_keys):
        heights, widths = env_kwargs.get("camera_heights", 84), env_kwargs.get("camera_widths", 84)
        if np.ndim(heights) or np.ndim(widths) or heights != widths:
            raise ValueError(f"env_args.env_kwargs.camera_heights={heights!r} / camera_widths={widths!r}: "
                             "ttfkit renders square images of one size for every camera")
        kwargs["image_size"] = int(heights)
    if rm_keys:
        kwargs["obs_keys"] = rm_keys
    version = str(env_args.get("env_version", ""))
    if version and not version.startswith("1.5"):
        logger.info("env_args recorded with robosuite %s; rebuilding in robosuite 1.5.2 (controller mapped "
                    "to world-frame OSC_POSE)", version)
    return f"ttfkit/robomimic-{task}-v0", kwargs


def env_from_store(path: str, obs_keys: tuple[str, ...] | list[str] = ()) -> tuple[str, dict[str, Any]]:
    """``env_from_args`` on the ``env_args`` attr of a zarr store written by ``ttf data import-robomimic``."""
    from ttfkit.data import ReplayBuffer

    attrs = dict(ReplayBuffer.open(path, mode="r").attrs)
    env_args = attrs.get("env_args")
    if not env_args:
        raise ValueError(f"{path}: the store has no env_args attr (source {attrs.get('source')!r}); only stores "
                         "imported from robomimic files name their env: pass --env")
    try:
        return env_from_args(env_args, obs_keys)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


for _name, _task in TASKS.items():
    register_env(f"ttfkit/robomimic-{_name}-v0", entry_point="ttfkit.envs.robomimic:RobomimicEnv",
                 max_episode_steps=_task.horizon, kwargs={"task": _name})
