"""Split the Fetch pick-and-place evaluation episodes by whether the goal is in the air (goal z > 0.43 m; the
table-top goal lies at the object's height, 0.425 m) and count each policy's successes in both groups. Only
resets the env for each evaluation seed (no rollouts). Writes goal_height_split.json here.

Run from the repository root: ``python docs/results/2026-11-30/pixels-3/goal_height_split.py``.
"""

import json

import numpy as np

from ttfkit.envs.registry import make_env
env = make_env("ttfkit/fetch-pick-and-place-v4")
R = str(__import__("pathlib").Path(__file__).parent) + "/"
runs = {"state": R + "eval_fetch-pick-and-place_state.json", "pixels10k": R + "eval_fetch-pick-and-place_pixels_step010000.json",
        "pixels5k": R + "eval_fetch-pick-and-place_pixels_step005000.json"}
seeds = json.load(open(runs["state"]))["seeds"]
air, dist = [], []
for s in seeds:
    env.reset(seed=s)
    lay = env.unwrapped.layout()  # object xy, goal xyz
    air.append(lay[4] > 0.43)
    dist.append(np.linalg.norm(lay[:2] - lay[2:4]))
air = np.array(air); print("goal in the air:", air.sum(), "of", air.size)
out = {"seeds": seeds, "goal_in_air": air.tolist()}
for k, p in runs.items():
    s = np.array(json.load(open(p))["successes"], bool)
    out[k] = s.tolist()
    print(f"{k}: goal in air {s[air].sum()}/{air.sum()}, on table {s[~air].sum()}/{(~air).sum()}")
json.dump(out, open(R + "goal_height_split.json", "w"))
