"""Command line of ttfkit: `ttf <subcommand>`; one module per subcommand, dispatched by scripts/cli.py."""
