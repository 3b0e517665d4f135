"""ttfkit.align"""
