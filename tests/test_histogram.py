"""common/histogram.py against TensorFlow's HistogramSummary kernel: the serialized Summary
bytes compared whole (bucket limits and counts, min, max, num, sum, sum_squares), on the inputs
where an exact re-implementation can go wrong; and the graph op of common/summaries.py failing
on a NaN or an Inf exactly as TensorFlow's does."""

import sys

import ml_dtypes
import numpy as np
import pytest
import tensorflow as tf

from common import histogram
from common import summaries
from common import training

DBL_MAX = sys.float_info.max
FLT_MAX = float(np.finfo(np.float32).max)


def tensorflow_summary(values, tag='t'):
    """tf.raw_ops.HistogramSummary's serialized Summary of values (eager)."""
    return tf.raw_ops.HistogramSummary(tag=tag, values=tf.constant(values)).numpy()


def ours(values, tag='t'):
    summary, non_finite = histogram.summary_and_check(tag, values)
    assert non_finite == 0.0
    return summary


def assert_same(values, tag='t'):
    expected = tensorflow_summary(values, tag)
    got = ours(values, tag)
    if got != expected:  # say which field differs
        a, b = tf.compat.v1.Summary(), tf.compat.v1.Summary()
        a.ParseFromString(expected)
        b.ParseFromString(got)
        assert b == a
    assert got == expected


def on_the_limits(dtype):
    """Each bucket limit in dtype's range, rounded to dtype, and its two neighbours in dtype;
    not +DBL_MAX itself, where TensorFlow's kernel writes past the end of its buckets (and
    crashes this process)."""
    finfo = np.finfo(dtype)
    limits = histogram.LIMITS[np.abs(histogram.LIMITS) <= float(finfo.max)].astype(dtype)
    with np.errstate(over='ignore'):
        values = np.concatenate([limits, np.nextafter(limits, dtype(np.inf)),
                                 np.nextafter(limits, dtype(-np.inf))])
    return values[np.isfinite(values) & (values.astype(np.float64) < DBL_MAX)]


RNG = np.random.RandomState(20)

FLOAT32_CASES = {
    'normal, the weights of mnist_with_summaries': (0.1 * RNG.standard_normal(392000)),
    'normal, several chunks and a partial one': RNG.standard_normal(3 * histogram.CHUNK + 123),
    'relu activations': np.maximum(RNG.standard_normal(5000), 0),
    'all zeros': np.zeros(3000),
    'one value': np.array([0.5]),
    'negatives only': -np.abs(RNG.standard_normal(4000)) * 1e3,
    'huge': np.array([FLT_MAX, -FLT_MAX, 3e38, -1e30, 1e20, 1.0000001e20, 9.99e19]),
    'tiny and denormal': np.array([1e-13, -1e-13, 1e-12, -1e-12, 1e-38, -1e-40, 1e-45, -1e-45,
                                   np.finfo(np.float32).tiny, 0.0]),
    'on the limits': on_the_limits(np.float32),
    'mixed': np.concatenate([10.0 ** RNG.uniform(-14, 22, 20000) * RNG.choice([-1, 1], 20000),
                             np.zeros(50), on_the_limits(np.float32)[::7]]),
}


@pytest.mark.parametrize('case', sorted(FLOAT32_CASES))
def test_float32_equals_tensorflow_bit_for_bit(case):
    values = FLOAT32_CASES[case].astype(np.float32)
    RNG.shuffle(values)
    assert_same(values)


FLOAT64_CASES = {
    'normal': RNG.standard_normal(100000) * 1e5,
    'near DBL_MAX': np.array([np.nextafter(DBL_MAX, 0), -DBL_MAX, -np.nextafter(DBL_MAX, 0),
                              1e308, -1e308, 1e300, 1.7e308]),
    'tiny and denormal': np.array([5e-324, -5e-324, 1e-310, 2.2250738585072014e-308, 1e-13,
                                   -1e-13, 1e-300]),
    'on the limits': on_the_limits(np.float64),
    'squares overflow to Inf': np.array([1e200, -1e200, 1.0]),
    # Flushed to zero by TensorFlow (sum 0.0, not 5e-309; sum_squares 0.0, not 1e-320).
    'subnormal sum': np.array([3e-308, -2.5e-308]),
    'subnormal squares': np.array([1e-160, 1e-300, 1e-155]),
    # A subnormal is stored as min (max) when it is the first value equal to a zero there.
    'subnormal extremes': np.array([2.0, -2.0, 1e-310, 0.0, -5e-324, -0.0]),
    'subnormal extremes, all zero-like': np.array([-0.0, 1e-310, 0.0, -5e-324]),
    'wide': 10.0 ** RNG.uniform(-330, 308, 50000) * RNG.choice([-1, 1], 50000),
}


@pytest.mark.parametrize('case', sorted(FLOAT64_CASES))
def test_float64_equals_tensorflow_bit_for_bit(case):
    assert_same(FLOAT64_CASES[case].astype(np.float64))


@pytest.mark.parametrize('dtype', [np.float16, ml_dtypes.bfloat16, np.int8, np.uint8, np.int32,
                                   np.int64, np.uint64])
def test_other_types_equal_tensorflow(dtype):
    if np.dtype(dtype).kind == 'f' or dtype == ml_dtypes.bfloat16:
        values = np.concatenate([RNG.standard_normal(5000) * 100, on_the_limits(np.float16),
                                 [1e-39, -1e-39, -0.0]])  # subnormal in bfloat16
    else:
        info = np.iinfo(dtype)
        values = RNG.randint(max(info.min, -2 ** 62), min(info.max, 2 ** 62), 5000,
                            dtype=np.int64)
        if dtype == np.int64:  # rounded by static_cast<double>
            values[:3] = [2 ** 53 + 1, -(2 ** 62) - 1, 2 ** 62 + 12345]
    assert_same(np.asarray(values).astype(dtype))


def test_empty_and_shapes():
    assert_same(np.zeros([0], np.float32))
    assert_same(np.zeros([3, 0, 2], np.float64))
    assert_same(RNG.standard_normal([20, 30, 4]).astype(np.float32))
    assert_same(np.float32(2.5))  # a scalar


def test_zero_signs_first_equal_extreme_wins():
    # TensorFlow keeps the first of equal minima (maxima): -0.0 or +0.0, serialized differently.
    for values in ([-0.0, 0.0, 1.0], [0.0, -0.0, 1.0], [-0.0, 0.0], [0.0, -0.0], [-0.0],
                   [-1.0, 0.0, -0.0], [-1.0, -0.0, 0.0], [-0.0, -0.0, 2.0]):
        assert_same(np.array(values, np.float32))
        assert_same(np.array(values, np.float64))


def test_tags():
    values = RNG.standard_normal(2000).astype(np.float32)
    for tag in ['layer1/weights/summaries/histogram', '', 'ümlaut/ß', 'x' * 300]:
        assert_same(values, tag)


def test_the_inputs_catch_an_off_by_one_bucket_and_a_pairwise_sum():
    """The cases above fail a wrong implementation: buckets by lower_bound instead of
    upper_bound (off by one on a limit), or np.sum's pairwise sums instead of TensorFlow's
    sequential ones."""
    def wrong(values, side, pairwise):
        x = np.asarray(values, np.float64).reshape(-1)
        x = np.where(np.abs(x) < np.finfo(np.float64).tiny, 0.0, x)  # TensorFlow's DAZ
        right = histogram.histogram(values)
        index = np.searchsorted(histogram.LIMITS, x, side=side)
        counts = np.bincount(index, minlength=histogram.NUM_BUCKETS).astype(np.float64)
        total, squares = (np.sum(x), np.sum(x * x)) if pairwise else (right.sum,
                                                                        right.sum_squares)
        h = histogram.Histogram(right.min, right.max, right.num, total, squares, counts)
        return histogram.encode_summary('t', h)

    on_limits = FLOAT64_CASES['on the limits']
    assert wrong(on_limits, 'right', False) == tensorflow_summary(on_limits)  # the control
    assert wrong(on_limits, 'left', False) != tensorflow_summary(on_limits)
    weights = FLOAT32_CASES['normal, the weights of mnist_with_summaries'].astype(np.float32)
    assert wrong(weights, 'right', True) != tensorflow_summary(weights)


@pytest.mark.parametrize('values, first', [
    ([1.0, np.nan, 2.0], 'nan'), ([np.inf, 1.0], 'inf'), ([1.0, -np.inf, np.nan], '-inf'),
    ([np.nan, np.inf], 'nan'), (np.append(np.zeros(200000), np.inf), 'inf')])
@pytest.mark.parametrize('dtype', [np.float32, np.float64, np.float16])
def test_the_first_nan_or_inf_is_reported(values, first, dtype):
    summary, non_finite = histogram.summary_and_check('t', np.array(values, dtype))
    assert summary == b'' and str(non_finite) == first


def _run_graph(build, feed_values, kernel='numpy'):
    """(TensorFlow's op, ours): their outputs, or the errors they raise, on feed_values."""
    results = []
    for k in ('tensorflow', kernel):
        with tf.Graph().as_default():
            values = tf.compat.v1.placeholder(tf.as_dtype(feed_values.dtype))
            with tf.compat.v1.name_scope('layer1/weights'), summaries.histogram_kernel(k):
                op = build(values)
            with tf.compat.v1.Session() as sess:
                try:
                    results.append(sess.run(op, {values: feed_values}))
                except tf.errors.OpError as e:
                    results.append(e)
    return results


def assert_same_error(theirs, got, words):
    assert type(got) is type(theirs) is tf.errors.InvalidArgumentError
    assert got.op.name == theirs.op.name == 'layer1/weights/HistogramSummary'

    def without_stack(message):  # where each op was built: a line of summaries.py differs
        return [line for line in message.splitlines() if not line.startswith('  ')]
    assert without_stack(got.message) == without_stack(theirs.message)
    assert '%s for: layer1/weights/HistogramSummary' % words in without_stack(got.message)
    # What the scripts make of it.
    diverged = training.divergence_in_summary(got, 7)
    assert str(diverged) == ('Model diverged with NaN or Inf in the summary '
                             'layer1/weights/HistogramSummary at step 7')


@pytest.mark.parametrize('values, words', [([1.0, np.nan, np.inf], 'Nan in summary histogram'),
                                           ([np.inf, np.nan], 'Infinity in Histogram'),
                                           ([-np.inf], 'Infinity in Histogram')])
def test_the_graph_op_fails_as_tensorflow_does(values, words):
    theirs, got = _run_graph(lambda v: summaries.histogram_summary('t', v),
                             np.array(values, np.float32))
    assert_same_error(theirs, got, words)


@pytest.mark.parametrize('bad', [None, np.nan, -np.inf])
@pytest.mark.parametrize('size', [10, summaries.SMALL_HISTOGRAM, summaries.SMALL_HISTOGRAM + 1,
                                  60000])
def test_a_size_known_at_run_time_picks_the_kernel_then(size, bad, monkeypatch):
    calls = []

    def counted(tag, values):
        calls.append(values.size)
        return summary_and_check(tag, values)
    summary_and_check = histogram.summary_and_check
    monkeypatch.setattr(histogram, 'summary_and_check', counted)
    values = RNG.standard_normal(size).astype(np.float32)
    if bad is not None:
        values[size // 2:] = bad
    theirs, got = _run_graph(lambda v: summaries.histogram_summary('t', v), values, 'auto')
    assert calls == ([size] if size > summaries.SMALL_HISTOGRAM else [])
    if bad is None:
        assert got == theirs
    else:
        assert_same_error(theirs, got, 'Nan in summary histogram' if np.isnan(bad) else
                          'Infinity in Histogram')


@pytest.mark.parametrize('values', [
    FLOAT32_CASES['tiny and denormal'].astype(np.float32),
    np.array([-0.0, 1e-45, 0.0, -1e-45, 3.0], np.float32),
    FLOAT64_CASES['subnormal sum'], FLOAT64_CASES['subnormal squares'],
    FLOAT64_CASES['subnormal extremes'], FLOAT64_CASES['subnormal extremes, all zero-like']],
    ids=['float32 tiny', 'float32 zero-like', 'float64 sum', 'float64 squares',
         'float64 extremes', 'float64 zero-like'])
def test_in_tensorflows_threads_too(values):
    """In a tf.numpy_function, in a thread where the CPU flushes subnormals (TensorFlow's
    executor sets that), the same bytes as in the Python thread the cases above ran in."""
    theirs, got = _run_graph(lambda v: summaries.histogram_summary('t', v), values)
    assert got == theirs == ours(values)


def test_the_graph_op_equals_tensorflow_and_is_named_like_it():
    values = RNG.standard_normal([784, 500]).astype(np.float32)
    theirs, got = _run_graph(lambda v: summaries.histogram('histogram', v, in_scope=True),
                             values)
    assert got == theirs
    with tf.Graph().as_default():
        with tf.compat.v1.name_scope('deep'):
            big = summaries.histogram('w', tf.zeros([summaries.SMALL_HISTOGRAM + 1]),
                                      name='conv/w')
            small = summaries.histogram('b', tf.zeros([summaries.SMALL_HISTOGRAM]),
                                        name='conv/b')
            unknown = summaries.histogram('a', tf.compat.v1.placeholder(tf.float32, [None, 2]))
        graph = tf.compat.v1.get_default_graph()
        # The op the NaN/Inf error names: TensorFlow's kernel, as named before.
        assert graph.get_operation_by_name('deep/conv/w').type == 'HistogramSummary'
        assert graph.get_operation_by_name('deep/HistogramSummary').type == 'HistogramSummary'
        assert small.op.name == 'deep/conv/b' and small.op.type == 'HistogramSummary'
        assert big.op.name == 'deep/conv/w/summary' and unknown.shape == []
        assert [t.name for t in tf.compat.v1.get_collection(
            tf.compat.v1.GraphKeys.SUMMARIES)] == [big.name, small.name, unknown.name]


def test_towers_merge_all_and_a_monitored_training_session(tmp_path):
    """Histograms on two logical CPU devices (the towers of cifar10/multi_gpu_train.py),
    merged by merge_all, written by MonitoredTrainingSession's summary hook."""
    values = RNG.standard_normal([2, 30000]).astype(np.float32)
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        for i in range(2):
            with tf.device('/cpu:%d' % i), tf.compat.v1.name_scope('tower_%d' % i):
                summaries.histogram('tower_%d/activations' % i, tf.constant(values[i]) * 1.0)
        merged = tf.compat.v1.summary.merge_all()
        step = tf.compat.v1.assign_add(global_step, 1)
        config = tf.compat.v1.ConfigProto(device_count={'CPU': 2})
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=str(tmp_path), save_summaries_steps=1, save_checkpoint_secs=None,
                config=config, scaffold=tf.compat.v1.train.Scaffold(summary_op=merged)) as sess:
            got = sess.run(merged)
            sess.run(step)
    expected = tf.compat.v1.Summary()
    for i in range(2):
        expected.MergeFromString(tensorflow_summary(values[i], 'tower_%d/activations' % i))
    assert got == expected.SerializeToString()
    events = [e for path in tmp_path.glob('events.out.tfevents.*')
              for e in tf.compat.v1.train.summary_iterator(str(path)) if e.HasField('summary')]
    assert events and events[0].summary == expected


def test_the_limits_are_tensorflows():
    limits = histogram.LIMITS
    assert len(limits) == 1551 and limits[775] == 0.0
    assert limits[-1] == DBL_MAX and limits[0] == -DBL_MAX
    assert limits[776] == 1e-12 and limits[777] == 1e-12 * 1.1
    assert np.all(limits[:775] == -limits[:775:-1])
    assert np.all(np.diff(limits) > 0)
    # TensorFlow's own limits, read back from a histogram with a value in every bucket.
    in_every_bucket = np.concatenate([[-DBL_MAX], limits[:-1]])
    summary = tf.compat.v1.Summary.FromString(tensorflow_summary(in_every_bucket))
    assert np.array_equal(np.array(summary.value[0].histo.bucket_limit), limits)
