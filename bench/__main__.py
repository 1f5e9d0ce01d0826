"""python -m bench: see bench/run.py."""
from bench import run
from common import entry

if __name__ == '__main__':
    entry.run(run.define_flags, run.main)
