"""Summary ops with exact tags.

tf.compat.v1.summary.scalar/histogram derive the tag from a fresh name scope, which TF makes
unique case-insensitively: 'mean' next to a reduce_mean op becomes 'mean_1', a tower's activation
becomes 'tower_1/conv1/conv1/...'. These helpers tag exactly what they are given.
"""

import contextlib
import functools

import tensorflow as tf

from common import histogram as _histogram


def _in_scope(name):
    scope = tf.compat.v1.get_default_graph().get_name_scope()
    return '%s/%s' % (scope, name) if scope else name


def scalar(tag, x, in_scope=False):
    """A scalar summary tagged `tag` (prefixed with the current name scope if in_scope),
    added to the SUMMARIES collection."""
    op = tf.raw_ops.ScalarSummary(tags=_in_scope(tag) if in_scope else tag, values=x)
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.SUMMARIES, op)
    return op


def histogram(tag, x, in_scope=False, name='HistogramSummary'):
    """A histogram summary tagged `tag` (see scalar): the same serialized Summary as
    tf.raw_ops.HistogramSummary, bit for bit, and the same error on a NaN or an Inf, computed
    faster (histogram_summary). name: the op's, which that error names."""
    op = histogram_summary(_in_scope(tag) if in_scope else tag, x, name)
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.SUMMARIES, op)
    return op


# Up to this many values (known when the graph is built), TensorFlow's own kernel is faster:
# its cost per value is higher, but it has no Python call to make (python -m bench.histogram).
SMALL_HISTOGRAM = 1024
KERNELS = ('auto', 'tensorflow', 'numpy')
_kernel = ['auto']


@contextlib.contextmanager
def histogram_kernel(kind):
    """Within it, histogram_summary builds TensorFlow's kernel ('tensorflow'), common/histogram.py
    ('numpy') or, the default, the faster of the two for the size ('auto'): for the benchmark
    and the tests."""
    if kind not in KERNELS:
        raise ValueError('histogram kernel %r: expected one of %s' % (kind, ', '.join(KERNELS)))
    before, _kernel[0] = _kernel[0], kind
    try:
        yield
    finally:
        _kernel[0] = before


def histogram_summary(tag, values, name='HistogramSummary'):
    """tf.raw_ops.HistogramSummary(tag=tag, values=values, name=name), computed by
    common/histogram.py in
    a tf.numpy_function for more than SMALL_HISTOGRAM values, or an unknown number (see
    histogram_kernel).

    Fails as TensorFlow's op does on a NaN or an Inf: InvalidArgumentError 'Nan in summary
    histogram for: <op>' (or 'Infinity in ...'), raised by a TensorFlow HistogramSummary op
    named as TensorFlow's own would be (`name` in the current scope), given the first
    non-finite value. tag: a str.
    """
    values = tf.convert_to_tensor(values)
    size = values.shape.num_elements()
    if _kernel[0] == 'tensorflow' or (
            _kernel[0] == 'auto' and size is not None and size <= SMALL_HISTOGRAM):
        return tf.raw_ops.HistogramSummary(tag=tag, values=values, name=name)
    with tf.compat.v1.name_scope(name) as scope:
        summary, non_finite = tf.numpy_function(
            functools.partial(_histogram.summary_and_check, tag), [values],
            [tf.string, tf.float64], name='values')
        # A histogram of 0.0 when every value is finite, else of the first NaN or Inf: that
        # one fails with TensorFlow's own message, naming this op ('<scope>/HistogramSummary').
        # The output depends on it by data: Grappler prunes an op only a control input needs.
        check = tf.raw_ops.HistogramSummary(tag=tag, values=tf.reshape(non_finite, [1]),
                                            name=scope)
        summary = tf.where(tf.equal(non_finite, 0.0), summary, check, name='summary')
    summary.set_shape([])
    return summary
