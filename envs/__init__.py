"""ttfkit.envs"""
