"""What the tests share beside their fixtures (tests/conftest.py): where the real data is, and
running a script as a user would (to the end, or in the background while a test watches its
log)."""

import json
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A CIFAR-10 run small enough for a test: batches of 16, a queue of 250 images, a log line
# every step.
TINY_CIFAR10 = ['--batch_size=16', '--min_fraction_of_examples_in_queue=0.005',
                '--log_frequency=1']


def shared_data_root():
    """$TF_CLASSICS_DATA, else ../shared/data beside the repository."""
    return os.environ.get('TF_CLASSICS_DATA') or os.path.join(REPO, '..', 'shared', 'data')


def default_sigint():
    """Popen's preexec_fn for a child that a test stops with SIGINT: a shell that started the
    tests in the background (nohup ... &) left SIGINT ignored, and the child would inherit it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def script_env(env=None):
    """The environment a script runs in: the shared data, unbuffered output, and TensorFlow's
    log level as a user has it (common/logs.py decides); env: more, or other, variables."""
    full_env = dict(os.environ)
    full_env.setdefault('TF_CLASSICS_DATA', shared_data_root())
    full_env['PYTHONUNBUFFERED'] = '1'
    full_env.pop('TF_CPP_MIN_LOG_LEVEL', None)
    full_env.update(env or {})
    return full_env


def run_script(script, *args, env=None, timeout=600):
    """Runs `python <script> args...` from the repo root; returns the CompletedProcess."""
    return subprocess.run([sys.executable, os.path.join(REPO, script)] + list(args), cwd=REPO,
                          env=script_env(env), capture_output=True, text=True, timeout=timeout)


def popen(script, args, log, env=None, preexec_fn=default_sigint):
    """Starts `python <script> args...` in the background, its output (both streams) in the
    file `log`; returns the Popen."""
    return subprocess.Popen([sys.executable, script] + list(args), cwd=REPO,
                            env=script_env(dict({'TF_CPP_MIN_LOG_LEVEL': '2'}, **(env or {}))),
                            stdout=open(log, 'w'), stderr=subprocess.STDOUT,
                            preexec_fn=preexec_fn)


def wait_for_line(log, pattern, proc, limit=240, count=1):
    """The matches of pattern (re.M) in the file log once there are `count` of them; the
    process must stay alive meanwhile."""
    deadline = time.time() + limit
    while time.time() < deadline:
        found = re.findall(pattern, log.read_text(), re.M)
        if len(found) >= count:
            return found
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError('no %r in %s:\n%s' % (pattern, log, log.read_text()[-3000:]))


def error_lines(stderr):
    """The one-line errors ('error: ...') of a script's stderr."""
    return [line for line in stderr.splitlines() if line.startswith('error:')]


def last_line(stderr):
    """The last line of a script's stderr ('' when there is none)."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ''


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
