"""ttfkit.envs: task suite (Meta-World v3, Fetch, robomimic), scripted experts, demo collection and closed-loop
evaluation. Importing this package registers every ``ttfkit/...`` gymnasium id."""

from ttfkit.envs import fetch as _fetch  # noqa: F401  (registers ttfkit/fetch-*-v4)
from ttfkit.envs import metaworld as _metaworld  # noqa: F401  (registers ttfkit/metaworld-*-v3)
from ttfkit.envs import robomimic as _robomimic  # noqa: F401  (registers ttfkit/robomimic-*-v0; robosuite on make)
from ttfkit.envs.collect import CollectReport, collect
from ttfkit.envs.evaluate import EvalResult, evaluate
from ttfkit.envs.experts import Expert, make_expert
from ttfkit.envs.registry import list_envs, make_env

__all__ = ["make_env", "list_envs", "make_expert", "Expert", "evaluate", "EvalResult", "collect", "CollectReport"]
