"""Summary ops with exact tags.

tf.compat.v1.summary.scalar/histogram derive the tag from a fresh name scope, which TF makes
unique case-insensitively: 'mean' next to a reduce_mean op becomes 'mean_1', a tower's activation
becomes 'tower_1/conv1/conv1/...'. These helpers tag exactly what they are given.

The histogram is TensorFlow's, bit for bit, computed faster for large tensors
(common/histogram.py).
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


def scalar_values(values):
    """A Summary of plain numbers, {tag: value} (written with a FileWriter's add_summary at a
    step), for figures computed outside the graph."""
    return tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(v))
                                       for tag, v in values.items()])


# Up to this many values, TensorFlow's own kernel is faster: its cost per value is higher, but
# it has no Python call to make (python -m bench.histogram: the crossing point moved between
# 4,000 and 12,000 values with the load of the machine).
SMALL_HISTOGRAM = 8192
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
    common/histogram.py in a tf.numpy_function for more than SMALL_HISTOGRAM values, by
    TensorFlow's kernel for fewer; chosen at run time when the graph does not know the size
    (see also histogram_kernel).

    Fails as TensorFlow's op does on a NaN or an Inf: InvalidArgumentError 'Nan in summary
    histogram for: <op>' (or 'Infinity in Histogram for: <op>'), raised by a TensorFlow
    HistogramSummary op named as TensorFlow's own would be (`name` in the current scope),
    given the first non-finite value. tag: a str.
    """
    values = tf.convert_to_tensor(values)
    size = values.shape.num_elements()
    kernel = _kernel[0]
    if kernel == 'auto' and size is not None:
        kernel = 'tensorflow' if size <= SMALL_HISTOGRAM else 'numpy'
    if kernel == 'tensorflow':
        return tf.raw_ops.HistogramSummary(tag=tag, values=values, name=name)
    with tf.compat.v1.name_scope(name) as scope:
        if kernel == 'numpy':
            summary, non_finite = _numpy_histogram(tag, values)
            # A histogram of 0.0 when every value is finite, else of the first NaN or Inf:
            # that one fails with TensorFlow's own message, naming this op (<scope>/<name>).
            # The output depends on it by data: Grappler prunes an op only a control input
            # needs.
            check = tf.raw_ops.HistogramSummary(tag=tag, values=tf.reshape(non_finite, [1]),
                                                name=scope)
            summary = tf.where(tf.equal(non_finite, 0.0), summary, check, name='summary')
        else:  # 'auto', the size known at run time only: Switch and Merge, as tf.cond in TF1
            big = tf.greater(tf.size(values, out_type=tf.int64), SMALL_HISTOGRAM, name='big')
            small_values, big_values = tf.raw_ops.Switch(data=values, pred=big)
            numpy_summary, non_finite = _numpy_histogram(tag, big_values)
            # TensorFlow's kernel on the values when they are few, else on the first NaN or
            # Inf (or a 0): one op either way, which fails as TensorFlow's would.
            kernel_values = tf.raw_ops.Merge(inputs=[
                small_values, tf.reshape(tf.cast(non_finite, values.dtype), [1])]).output
            kernel_summary = tf.raw_ops.HistogramSummary(tag=tag, values=kernel_values,
                                                         name=scope)
            small_summary, check = tf.raw_ops.Switch(data=kernel_summary, pred=big)
            numpy_summary = tf.where(tf.equal(non_finite, 0.0), numpy_summary, check)
            summary = tf.raw_ops.Merge(inputs=[small_summary, numpy_summary],
                                       name='summary').output
    summary.set_shape([])
    return summary


def _numpy_histogram(tag, values):
    """(the serialized Summary, 0.0) or (b'', the first NaN or Inf): common/histogram.py."""
    return tf.numpy_function(functools.partial(_histogram.summary_and_check, tag), [values],
                             [tf.string, tf.float64], name='values')
