"""ttfkit.data"""
