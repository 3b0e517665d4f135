"""ttfkit.policies"""
