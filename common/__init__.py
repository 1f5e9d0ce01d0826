"""What the scripts share. Importing this package changes nothing; a script calls, at its top
and before TensorFlow is imported, the one line

    import common
    common.before_tensorflow()  # oneDNN kernels; TensorFlow's C++ log lines (common/__init__.py)

which sets, unless already set:

TF_ENABLE_ONEDNN_OPTS=1: TensorFlow turns its oneDNN CPU kernels on by itself only on CPUs with
AVX-512 VNNI, BF16 or AMX. On an AVX2 machine (the README's) they made the conv models 1.4-2.2x
faster (python -m bench), and TensorFlow reads the variable once, when it is imported.
TF_ENABLE_ONEDNN_OPTS=0 turns them off. The tests set it the same way (tests/conftest.py), so
that they run the kernels the scripts run.

TF_CPP_MIN_LOG_LEVEL: TensorFlow's C++ log lines, hidden unless --tf_logs (common/logs.py).
"""

import os

ONEDNN = 'TF_ENABLE_ONEDNN_OPTS'


def cpu_defaults(environ=None):
    """TF_ENABLE_ONEDNN_OPTS=1 in environ (default os.environ) unless it is set."""
    (os.environ if environ is None else environ).setdefault(ONEDNN, '1')


def before_tensorflow(argv=None, environ=None):
    """cpu_defaults(), then common.logs.before_tensorflow (argv: default sys.argv). Call it
    before TensorFlow is imported."""
    from common import logs  # pylint: disable=g-import-not-at-top
    cpu_defaults(environ)
    logs.before_tensorflow(argv, environ)
