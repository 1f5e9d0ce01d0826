"""python -m bench: see bench/run.py."""
from absl import app

from bench import run

if __name__ == '__main__':
    run.define_flags()
    app.run(run.main)
