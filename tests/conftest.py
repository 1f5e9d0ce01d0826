"""Shared test helpers: where the real data is, and running a script as a user would."""

import json
import os
import signal
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def shared_data_root():
    """$TF_CLASSICS_DATA, else ../shared/data beside the repository."""
    return os.environ.get('TF_CLASSICS_DATA') or os.path.join(REPO, '..', 'shared', 'data')


@pytest.fixture(scope='session')
def data_root():
    root = shared_data_root()
    if not os.path.isdir(os.path.join(root, 'cifar10')):
        pytest.fail('real data not found at %s: set TF_CLASSICS_DATA' % root)
    return root


def default_sigint():
    """Popen's preexec_fn for a child that a test stops with SIGINT: a shell that started the
    tests in the background (nohup ... &) left SIGINT ignored, and the child would inherit it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_script(script, *args, env=None, timeout=600):
    """Runs `python <script> args...` from the repo root; returns the CompletedProcess."""
    full_env = dict(os.environ)
    full_env.setdefault('TF_CLASSICS_DATA', shared_data_root())
    full_env['PYTHONUNBUFFERED'] = '1'
    full_env.pop('TF_CPP_MIN_LOG_LEVEL', None)  # as a user runs it: common/logs.py decides
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, os.path.join(REPO, script)] + list(args), cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


DUMP_DEFAULTS = """
import json, sys
from absl import flags
import %s as script
script.define_flags()
flags.FLAGS(['x'])
print(json.dumps({name: flags.FLAGS[name].default for name in sys.argv[1:]}))
"""


def flag_defaults(module, names):
    """The defaults of a script's flags, read in a fresh process (flags are global)."""
    out = subprocess.run([sys.executable, '-c', DUMP_DEFAULTS % module] + list(names),
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    return json.loads(out.strip().splitlines()[-1])
