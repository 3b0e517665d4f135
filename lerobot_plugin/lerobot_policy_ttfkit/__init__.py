"""LeRobot policy plugin for ttfkit (policy type "ttfkit").

LeRobot imports this package because its distribution name starts with ``lerobot_policy_``; importing
it registers ``TtfkitConfig`` and makes ``TtfkitPolicy`` and ``make_ttfkit_pre_post_processors``
findable by LeRobot's factory (``configuration_`` -> ``modeling_`` / ``processor_`` by name).
"""

from lerobot_policy_ttfkit.configuration_ttfkit import TtfkitConfig
from lerobot_policy_ttfkit.modeling_ttfkit import TtfkitPolicy
from lerobot_policy_ttfkit.processor_ttfkit import make_ttfkit_pre_post_processors

__all__ = ["TtfkitConfig", "TtfkitPolicy", "make_ttfkit_pre_post_processors"]
