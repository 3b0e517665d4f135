"""Scripted experts for ``ttfkit/robomimic-{lift,can,square}-v0`` (``ttfkit.envs.robomimic``).

Each expert is a stateless function of one observation (``agent_pos`` (9,) = eef pos, eef quat xyzw,
finger qpos (2); ``environment_state`` = robosuite's ``object-state``, whose first 7 entries are the
object's position and quaternion, xyzw) returning an OSC_POSE action (7,) in [-1, 1]: world-frame
position delta (x 5 cm), axis-angle rotation delta (x 0.5 rad), gripper (-1 open, +1 close). The
gripper points down throughout; only its yaw turns. The phase is read from the observation (where the
object is, how far the fingers are open), so a failed grasp is retried without any memory.

- Lift: above the cube with the yaw matched to the cube's (mod 90 deg), descend, close, lift 15 cm.
- Can: the same grasp on the can, up to a 1.05 m travel height, over the Can's quadrant of the target
  bin (robosuite ``PickPlaceCan.target_bin_placements[3]``), lower, open, leave upward (success needs
  the gripper > ~7 cm from the can).
- Square: grasp the nut's handle (6 cm from its centre along the nut's x axis) with the fingers closing
  across it, lift the nut above the peg (top at 0.95 m), turn it to the peg's yaw (mod 90 deg), centre
  the nut's ring over the square peg (robosuite ``peg1`` at (0.23, 0.10)), lower, open, leave upward.
  The nut is turned so that its handle never points away from the robot (out of the arm's reach).

Positions of the bin quadrant and the peg are constants of robosuite 1.5.2's models; tests check them
against the built env.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

__all__ = ["ROBOMIMIC_EXPERTS", "lift", "can", "square", "CAN_TARGET", "SQUARE_PEG"]

CAN_TARGET = np.array([0.1975, 0.4025, 0.80])  # PickPlaceCan: centre of the Can's quadrant of bin 2
SQUARE_PEG = np.array([0.23, 0.10, 0.85])  # NutAssemblySquare: peg1 body (square peg, top at z=0.95)
_DOWN = Rotation.from_matrix(np.diag([1.0, -1.0, -1.0]))  # gripper pointing down, yaw 0 (fingers close along y)
_POS_SCALE, _ROT_SCALE = 0.05, 0.5  # OSC_POSE output_max: metres / radians per unit action
_OPEN, _CLOSE = -1.0, 1.0


def _yaw(quat_xyzw: np.ndarray) -> float:
    m = Rotation.from_quat(quat_xyzw).as_matrix()
    return float(np.arctan2(m[1, 0], m[0, 0]))


def _wrap(angle: float, period: float) -> float:
    """``angle`` wrapped to [-period/2, period/2)."""
    return float((angle + period / 2) % period - period / 2)


def _action(eef: np.ndarray, quat: np.ndarray, target: np.ndarray, yaw: float, grip: float,
            gain: float = 1.0) -> np.ndarray:
    """OSC_POSE action moving the eef toward ``target`` and the gripper to pointing down at ``yaw``."""
    pos = np.clip(gain * (target - eef) / _POS_SCALE, -1.0, 1.0)
    err = (Rotation.from_euler("z", yaw) * _DOWN * Rotation.from_quat(quat).inv()).as_rotvec()
    rot = np.clip(err / _ROT_SCALE, -1.0, 1.0)
    return np.concatenate([pos, rot, [grip]])


def _nearest_yaw(current: float, object_yaw: float, period: float) -> float:
    """The yaw equal to ``object_yaw`` modulo ``period`` that is closest to ``current``."""
    return current + _wrap(object_yaw - current, period)


def _pick(agent: np.ndarray, grasp: np.ndarray, yaw: float, hold_width: tuple[float, float],
          approach: float = 0.06, xy_tol: float = 0.01) -> tuple[np.ndarray | None, bool]:
    """Shared approach-descend-close logic. Returns (action or None once the object is held, held)."""
    eef, quat, width = agent[0:3], agent[3:7], agent[7] - agent[8]
    d_xy = np.linalg.norm(eef[:2] - grasp[:2])
    dz = eef[2] - grasp[2]
    near = d_xy < xy_tol + 0.005 and abs(dz) < 0.02
    if near and hold_width[0] < width < hold_width[1]:
        return None, True
    yaw_err = abs(_wrap(yaw - _yaw(quat), 2 * np.pi))
    if near and width < hold_width[0]:  # closed on nothing: open and back up
        return _action(eef, quat, grasp + [0, 0, approach], yaw, _OPEN), False
    if d_xy > xy_tol or yaw_err > np.deg2rad(5):
        above = grasp + [0, 0, approach]
        if d_xy > 0.03 and eef[2] < grasp[2] + approach - 0.02:  # rise before travelling
            above = np.r_[eef[:2], grasp[2] + approach]
        return _action(eef, quat, above, yaw, _OPEN), False
    if dz > 0.006:
        return _action(eef, quat, grasp, yaw, _OPEN), False
    return _action(eef, quat, grasp, yaw, _CLOSE), False


def lift(agent: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Lift expert (state: cube pos (3), cube quat (4), gripper-to-cube (3))."""
    cube, cube_quat = state[0:3], state[3:7]
    eef, quat = agent[0:3], agent[3:7]
    yaw = _nearest_yaw(_yaw(quat), _yaw(cube_quat), np.pi / 2)
    action, held = _pick(agent, cube, yaw, hold_width=(0.03, 0.05))
    if not held:
        return action
    return _action(eef, quat, np.r_[cube[:2], cube[2] + 0.15], yaw, _CLOSE)


def can(agent: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Can expert (state: can pos (3), can quat (4), can-to-eef pos (3) and quat (4))."""
    obj = state[0:3]
    eef, quat, width = agent[0:3], agent[3:7], agent[7] - agent[8]
    yaw = _yaw(quat)  # a cylinder: keep the current yaw
    in_bin = (np.all(np.abs(obj[:2] - CAN_TARGET[:2]) < [0.08, 0.10]) and obj[2] < CAN_TARGET[2] + 0.1)
    if in_bin:  # let go and leave upward
        if width < 0.06 and np.linalg.norm(eef - obj) < 0.05:
            return _action(eef, quat, eef, yaw, _OPEN)
        return _action(eef, quat, np.r_[eef[:2], 1.1], yaw, _OPEN)
    action, held = _pick(agent, obj + [0, 0, 0.015], yaw, hold_width=(0.04, 0.058), approach=0.08,
                         xy_tol=0.02)
    if not held:
        return action
    travel = 1.05
    offset = CAN_TARGET[:2] - obj[:2]
    if np.linalg.norm(offset) > 0.03:
        if eef[2] < travel - 0.03:
            return _action(eef, quat, np.r_[eef[:2], travel], yaw, _CLOSE)
        return _action(eef, quat, np.r_[eef[:2] + offset, travel], yaw, _CLOSE, gain=2.0)
    return _action(eef, quat, np.r_[eef[:2] + offset, CAN_TARGET[2] + 0.09], yaw, _CLOSE, gain=2.0)


_HANDLE = np.array([0.06, 0.0, 0.0])  # grasp point in the nut's frame (handle spans x 0.044-0.079)
_NUT_TRAVEL = 1.0  # nut height while moving over the peg (peg top 0.95)


def square(agent: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Square expert (state: nut pos (3), nut quat (4), nut-to-eef pos (3) and quat (4))."""
    nut, nut_quat = state[0:3], state[3:7]
    eef, quat, width = agent[0:3], agent[3:7], agent[7] - agent[8]
    cur_yaw, nut_yaw = _yaw(quat), _yaw(nut_quat)
    xy_err = SQUARE_PEG[:2] - nut[:2]
    on_peg = np.linalg.norm(xy_err) < 0.02 and nut[2] < 0.87
    if on_peg:  # let go and leave upward
        if width < 0.06 and eef[2] < nut[2] + 0.03:
            return _action(eef, quat, eef, cur_yaw, _OPEN)
        return _action(eef, quat, np.r_[eef[:2], nut[2] + 0.15], cur_yaw, _OPEN)
    grasp = nut + Rotation.from_quat(nut_quat).apply(_HANDLE)
    grip_yaw = _nearest_yaw(cur_yaw, nut_yaw, np.pi)  # fingers close across the handle (nut's y)
    action, held = _pick(agent, grasp, grip_yaw, hold_width=(0.022, 0.04))
    if not held:
        return action
    turn = _peg_turn(nut_yaw)
    yaw = cur_yaw + turn
    dist = np.linalg.norm(xy_err)
    if dist > 0.01 or abs(turn) > np.deg2rad(6):
        if nut[2] < _NUT_TRAVEL - 0.02:  # lift straight up first (turning is fine)
            return _action(eef, quat, np.r_[eef[:2], eef[2] + (_NUT_TRAVEL - nut[2])], yaw, _CLOSE)
        return _action(eef, quat, np.r_[eef[:2] + xy_err, eef[2] + (_NUT_TRAVEL - nut[2])], yaw, _CLOSE)
    if nut[2] > _NUT_TRAVEL - 0.03 and (dist > 0.003 or abs(turn) > np.deg2rad(2)):
        return _action(eef, quat, np.r_[eef[:2] + xy_err, eef[2] + (_NUT_TRAVEL - nut[2])], yaw, _CLOSE)
    down = np.r_[eef[:2] + xy_err, eef[2] - min(0.03, nut[2] - 0.83)]
    return _action(eef, quat, down, yaw, _CLOSE)


def _peg_turn(nut_yaw: float) -> float:
    """Yaw change bringing the nut's square onto the peg's (a multiple of 90 deg), the nearest one among
    those that do not point the handle away from the robot (+x): with the handle beyond the peg the
    gripper is out of the arm's reach (measured on seeds 12-35: 5 of 24 nuts got stuck there)."""
    turns = [_wrap(k * np.pi / 2 - nut_yaw, 2 * np.pi) for k in (1, 2, 3)]  # handle to +y, -x, -y
    return min(turns, key=abs)


ROBOMIMIC_EXPERTS = {"lift": lift, "can": can, "square": square}
