"""ttfkit.optim"""
