"""TensorFlow's own log lines, hidden by default: a script prints the original's lines and ours.

TensorFlow logs from C++ (the `I0000`, `W0000`, `E0000` lines; it reads TF_CPP_MIN_LOG_LEVEL
once, when it is imported) and from Python (its `tensorflow` logger: INFO lines and the
deprecation warnings). By default:

- before TensorFlow is imported (common.before_tensorflow()), TF_CPP_MIN_LOG_LEVEL=3: none of
  the C++ lines (2, errors shown, where a GPU is asked for: --num_gpus or CUDA_VISIBLE_DEVICES
  with a TensorFlow that can use one). Among them, on AVX2 machines, `E0000 ... oneDNN supports DT_UINT8 only on platforms
  with AVX-512`: not an error of the run (the op falls back to TensorFlow's Eigen kernel). A
  few lines TensorFlow's libraries print while they load ignore the variable ("oneDNN custom
  operations are on", "All log messages before absl::InitializeLog()"): with the level 3,
  `import tensorflow` runs with the process's stderr (file descriptor 2) sent to /dev/null
  (never with --tf_logs or where a GPU is asked for);
- when the script's main starts (entry.main_for), the `tensorflow` logger shows its errors
  only, plus the lines a script asked for with a LoggingTensorHook or a StepCounterHook
  (cnn_mnist's Estimator lines), each printed once (absl's handler printed them a second time).

--tf_logs shows all of TensorFlow's lines, each once. A TF_CPP_MIN_LOG_LEVEL set by the user is
kept, and sets the Python side too: 0 everything, 1 warnings and errors, 2 and 3 errors.
"""

import contextlib
import importlib.util
import logging
import os
import sys

FLAG = 'tf_logs'
ENV = 'TF_CPP_MIN_LOG_LEVEL'

# The level TF_CPP_MIN_LOG_LEVEL stands for on the Python side.
_PYTHON_LEVEL = {'0': logging.INFO, '1': logging.WARNING, '2': logging.ERROR, '3': logging.ERROR}

# The methods of TensorFlow's hooks that log what a script asked them for.
_HOOK_LINES = ('_log_tensors', '_log_and_record')


def define_flag():
    """Defines --tf_logs (training.py does, for every script). This module imports absl only
    here: common is imported by run_all.sh --list, which runs without the venv."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    if FLAG not in flags.FLAGS:
        flags.DEFINE_boolean(FLAG, False, 'Show TensorFlow\'s own log lines (its C++ start-up '
                             'lines, INFO lines, deprecation warnings); by default they are '
                             'hidden. TF_CPP_MIN_LOG_LEVEL, when set, is kept.')


def asked_for(argv):
    """Whether the command line argv (the program, then its arguments) gives --tf_logs: the last
    of --tf_logs, --tf_logs=<bool>, --notf_logs before a `--` decides, as for absl."""
    shown = False
    for arg in argv[1:]:
        if arg == '--':
            break
        if arg == '--' + FLAG:
            shown = True
        elif arg == '--no' + FLAG:
            shown = False
        elif arg.startswith('--%s=' % FLAG):
            shown = arg.split('=', 1)[1].lower() in ('true', 't', '1')
    return shown


def cpu_only_build():
    """Whether the TensorFlow installed is the CPU-only wheel (tensorflow-cpu), which loads no
    GPU library. Read from the installed packages, without importing TensorFlow."""
    from importlib import metadata  # pylint: disable=g-import-not-at-top
    try:
        metadata.distribution('tensorflow-cpu')
    except metadata.PackageNotFoundError:
        return False
    return True


def gpu_asked_for(argv, environ, cpu_only=None):
    """Whether a GPU is asked for: the command line argv gives --num_gpus, or
    CUDA_VISIBLE_DEVICES names a GPU, with a TensorFlow that can use one (cpu_only: whether
    it is the CPU-only build; default: cpu_only_build()). The CPU build's towers on logical
    CPUs (--num_gpus=2 on a laptop) are no GPU."""
    visible = environ.get('CUDA_VISIBLE_DEVICES')
    asked = (any(a == '--num_gpus' or a.startswith('--num_gpus=') for a in argv[1:]) or
             (visible is not None and visible.strip() not in ('', '-1')))
    return asked and not (cpu_only_build() if cpu_only is None else cpu_only)


def before_tensorflow(argv=None, environ=None):
    """Sets TF_CPP_MIN_LOG_LEVEL in environ (default os.environ) unless it is set or argv
    (default sys.argv) gives --tf_logs: 3, and the coming `import tensorflow` runs with stderr
    on /dev/null; where a GPU is asked for (gpu_asked_for), 2 (errors shown), and stderr stays,
    so that TensorFlow's errors while it loads the GPU libraries are seen. Call it before TensorFlow is
    imported (common.before_tensorflow does)."""
    environ = os.environ if environ is None else environ
    argv = sys.argv if argv is None else argv
    if not asked_for(argv):
        environ.setdefault(ENV, '2' if gpu_asked_for(argv, environ) else '3')
    if (environ.get(ENV) == '3' and 'tensorflow' not in sys.modules and
            not any(isinstance(f, _QuietImport) for f in sys.meta_path)):
        sys.meta_path.insert(0, _QuietImport())


@contextlib.contextmanager
def _stderr_to_devnull():
    """File descriptor 2 on /dev/null (what C++ code writes too), restored after."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietLoader(object):
    """TensorFlow's package loader, run with stderr on /dev/null; an error it raises is printed
    after, as usual."""

    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _stderr_to_devnull():
            self._loader.exec_module(module)


class _QuietImport(object):
    """An import hook, for the first `import tensorflow` only: its loader is a _QuietLoader."""

    def find_spec(self, name, path=None, target=None):
        del path, target
        if name != 'tensorflow':
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietFilter(logging.Filter):
    """Lets through the records at `level` or above, and the hooks' lines at any level."""

    def __init__(self, level):
        super().__init__()
        self.level = level

    def filter(self, record):
        return record.levelno >= self.level or record.funcName in _HOOK_LINES


def configure(shown=None, environ=None):
    """Sets up TensorFlow's Python logger after the flags are parsed (shown: --tf_logs, read
    from the flags when None): each line printed once; with shown False, only the level
    TF_CPP_MIN_LOG_LEVEL stands for (errors when it is 3 or unset) and the hooks' lines."""
    from absl import flags  # pylint: disable=g-import-not-at-top
    import tensorflow as tf  # pylint: disable=g-import-not-at-top  (after before_tensorflow)

    environ = os.environ if environ is None else environ
    if shown is None:
        shown = flags.FLAGS[FLAG].value
    logger = tf.get_logger()
    if logger.handlers:  # TensorFlow's own handler: absl's (on the root logger) printed it again
        logger.propagate = False
    for old in [f for f in logger.filters if isinstance(f, _QuietFilter)]:
        logger.removeFilter(old)
    if shown:
        logger.setLevel(logging.INFO)
        return
    logger.setLevel(logging.INFO)  # the filter decides
    logger.addFilter(_QuietFilter(_PYTHON_LEVEL.get(environ.get(ENV, '3'), logging.ERROR)))
