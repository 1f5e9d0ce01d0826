"""python -m bench: see bench/run.py."""
import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)
from bench import run
from common import entry

if __name__ == '__main__':
    entry.run(run.define_flags, run.main)
