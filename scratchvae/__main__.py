"""``python -m scratchvae``: the same command line as the ``scratchvae`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
