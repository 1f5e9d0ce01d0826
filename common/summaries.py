"""Summary ops with exact tags.

tf.compat.v1.summary.scalar/histogram derive the tag from a fresh name scope, which TF makes
unique case-insensitively: 'mean' next to a reduce_mean op becomes 'mean_1', a tower's activation
becomes 'tower_1/conv1/conv1/...'. These helpers tag exactly what they are given, as the
originals' tf.scalar_summary / tf.histogram_summary did (TensorFlow 0.12). The ops are
TensorFlow's own ScalarSummary and HistogramSummary, the ones tf.compat.v1.summary builds: any
TensorFlow process can run a graph that holds them (a restored `.meta`, TensorBoard's graph).
"""

import tensorflow as tf


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
    """A histogram summary tagged `tag` (see scalar), added to the SUMMARIES collection; it
    fails on a NaN or an Inf ('Nan in summary histogram for: <op>'). name: the op's."""
    op = tf.raw_ops.HistogramSummary(tag=_in_scope(tag) if in_scope else tag, values=x,
                                     name=name)
    tf.compat.v1.add_to_collection(tf.compat.v1.GraphKeys.SUMMARIES, op)
    return op


def scalar_values(values):
    """A Summary of plain numbers, {tag: value} (written with a FileWriter's add_summary at a
    step), for figures computed outside the graph."""
    return tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(tag=tag, simple_value=float(v))
                                       for tag, v in values.items()])
