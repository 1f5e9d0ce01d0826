"""What the scripts share. Importing this package before TensorFlow sets TensorFlow's CPU
defaults for the scripts:

TF_ENABLE_ONEDNN_OPTS=1 (unless already set): TensorFlow turns its oneDNN CPU kernels on by
itself only on CPUs with AVX-512 VNNI, BF16 or AMX. On an AVX2 machine (the README's) they made
the conv models 1.4-2.2x faster (python -m bench), and TensorFlow reads the variable once,
when it is imported. TF_ENABLE_ONEDNN_OPTS=0 turns them off.

TF_CPP_MIN_LOG_LEVEL=3 (unless already set, or --tf_logs is given): none of TensorFlow's C++ log
lines; see common/logs.py.
"""

import os

os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

from common import logs  # noqa: E402

logs.before_tensorflow()
