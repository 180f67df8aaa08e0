"""``python -m rerender``: the same command line as ``rerender``."""
from .cli import run

if __name__ == "__main__":
    run()
