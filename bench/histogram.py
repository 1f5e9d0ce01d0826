"""The histogram summary: TensorFlow's kernel against common/histogram.py, and what it does to
mnist_with_summaries, which writes every summary at every training step.

    python -m bench.histogram                      # about 2.5 minutes
    python -m bench.histogram --seconds=0.5 --rounds=3 --json=histogram.json

(python -m bench runs it after mnist_with_summaries, with its --seconds and --rounds: about
4 minutes with its defaults; --nohistogram leaves it out.)

Two parts, each in one process with its ways interleaved, round after round, in an order that
rotates each round:
  ops    ms per summary op on float32 values N(0, 0.1) held in a variable: `tensorflow`
         (tf.raw_ops.HistogramSummary), `numpy` (common/histogram.py in a tf.numpy_function,
         whatever the size) and `auto` (what summaries.histogram builds: TensorFlow's kernel
         up to summaries.SMALL_HISTOGRAM values known in advance), plus `read` (the variable
         alone: the cost of a session call). 392,000 values are layer 1's weights.
  steps  mnist_with_summaries' training step, steps/s, batches of 100 real MNIST images fed
         as the script feeds them: (a) `tensorflow_histograms`, the script's train_step with
         TensorFlow's kernel for every histogram; (b) `our_histograms`, the same with ours
         (the script as it is); (c) `no_weights1_histogram` and (d) `no_histograms`, (b)
         fetching every summary but layer 1's weight histogram, or but every histogram:
         where the summaries' time goes; (e) `no_summaries`, the same train op and feeds
         without the summary fetch: the graph's speed. Every 100th step of (a) to (d) runs
         with a full trace, as in the script.
Figures are min / median / max over the rounds; with the steps, the process's CPU time per step
(every thread's), which other jobs on the machine change less than the wall-clock rates.
"""

import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import types

from absl import flags

import bench
import common  # noqa: F401  (before TensorFlow: its CPU defaults)
from common import entry
from common import provenance

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZES = [392000, 50000, 16384, 8192, 1000, 10]
OP_WAYS = ['tensorflow', 'numpy', 'auto', 'read']
STEP_WAYS = ['tensorflow_histograms', 'our_histograms', 'no_weights1_histogram',
             'no_histograms', 'no_summaries']
WEIGHTS1_SCOPE = 'layer1/weights/summaries/'  # where layer 1's weight histogram is built


def define_flags():
    flags.DEFINE_float('seconds', 2.0, 'Length of one timed window.', lower_bound=0.0)
    flags.DEFINE_integer('rounds', 5, 'Timed windows per way.', lower_bound=1)
    flags.DEFINE_float('warmup_seconds', 2.0, 'Untimed steps of each way first.',
                       lower_bound=0.0)
    flags.DEFINE_string('json', None, 'Also write the figures to this JSON file.')


def _cpu_seconds():
    """This process's CPU time so far, user and system, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _window(fn, seconds, min_calls=3):
    """Calls fn() for `seconds` (at least min_calls times); returns (calls per second, CPU
    seconds per call)."""
    cpu = _cpu_seconds()
    calls, elapsed = bench.timed(fn, seconds, min_calls)
    return calls / elapsed, (_cpu_seconds() - cpu) / calls


def interleaved(ways, seconds, rounds, warmup_seconds):
    """({name: [calls/s of each round]}, {name: [CPU s per call of each round]}) for ways =
    [(name, fn)], one window of each per round, in an order rotating each round."""
    for _, fn in ways:
        _window(fn, warmup_seconds, min_calls=1)
    rates = {name: [] for name, _ in ways}
    cpu = {name: [] for name, _ in ways}
    for r in range(rounds):
        shift = r % len(ways)
        for name, fn in ways[shift:] + ways[:shift]:
            rate, seconds_per_call = _window(fn, seconds)
            rates[name].append(rate)
            cpu[name].append(seconds_per_call)
    return rates, cpu


def spread(values):
    """(min, median, max)."""
    return min(values), statistics.median(values), max(values)


def time_ops(sizes, seconds, rounds, warmup_seconds):
    """{size: {way: [ms per op, ...]}} (see the module's doc)."""
    import numpy as np
    import tensorflow as tf
    from common import summaries
    out = {}
    rng = np.random.RandomState(0)
    for size in sizes:
        with tf.Graph().as_default():
            var = tf.compat.v1.Variable((0.1 * rng.standard_normal(size)).astype(np.float32))
            values = tf.identity(var)
            ops = {'read': values.op}
            for kernel in ('tensorflow', 'numpy', 'auto'):
                with summaries.histogram_kernel(kernel):
                    ops[kernel] = summaries.histogram_summary('values', values)
            with tf.compat.v1.Session() as sess:
                sess.run(var.initializer)
                first = sess.run([ops[k] for k in ('tensorflow', 'numpy', 'auto')])
                if len(set(first)) != 1:
                    raise AssertionError('the histograms of %d values differ' % size)
                rates, _ = interleaved([(w, lambda op=ops[w]: sess.run(op)) for w in OP_WAYS],
                                       seconds, rounds, warmup_seconds)
        out[size] = {w: [1e3 / r for r in rates[w]] for w in OP_WAYS}
    return out


def time_steps(seconds, rounds, warmup_seconds, workdir):
    """({way: [steps/s, ...]}, {way: [CPU ms per step, ...]}) of mnist_with_summaries'
    training step (see the module's doc)."""
    import dataclasses
    import tensorflow as tf
    from common import data
    from common import summaries
    from mnist import input_data
    from mnist import mnist_with_summaries as script
    config = dataclasses.replace(script.DEFAULTS, log_dir=workdir, data_dir=data.resolve_data_dir(
        'mnist', script.DEFAULTS.data_dir, False))
    mnist = input_data.read_data_sets(config.data_dir, validation_size=script.VALIDATION_SIZE)
    closers, ways = [], []

    def build(kernel, name):
        graph = tf.Graph()
        with graph.as_default(), summaries.histogram_kernel(kernel):
            tf.compat.v1.set_random_seed(0)
            model = script.Model(config.learning_rate)
            sess = tf.compat.v1.Session()
            sess.run(tf.compat.v1.global_variables_initializer())
        closers.append(sess.close)
        return model, sess, writer_for(graph, name)

    def feed(model):
        xs, ys = mnist.train.next_batch(script.BATCH_SIZE)
        return {model.x: xs, model.y_: ys, model.keep_prob: config.dropout}

    def summarised(model, sess, writer, merged=None):
        """The script's train_step; merged: the summary op it fetches instead of the
        model's (the same placeholders and train op)."""
        counter = [0]
        fetched = model if merged is None else types.SimpleNamespace(
            merged=merged, cross_entropy=model.cross_entropy, train_step=model.train_step)

        def step():
            counter[0] += 1
            script.train_step(sess, fetched, writer, counter[0], feed(model))
        return step

    def merged_without(graph, leave_out):
        """A merge of the graph's summaries but those for which leave_out(op) is true."""
        with graph.as_default():
            kept = [s for s in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES)
                    if not leave_out(s.op)]
            return tf.compat.v1.summary.merge(kept)

    def writer_for(graph, name):
        """A way's own event file: each traced step's run metadata is tagged by its step."""
        with graph.as_default():
            writer = tf.compat.v1.summary.FileWriter(os.path.join(workdir, name))
        closers.append(writer.close)
        return writer

    def is_histogram(op):
        return op.type not in ('ScalarSummary', 'ImageSummary')

    try:
        theirs = build('tensorflow', 'tensorflow_histograms')
        ours = build('auto', 'our_histograms')
        model, sess = ours[0], ours[1]
        graph = sess.graph
        weights1 = [s.op.name for s in graph.get_collection(tf.compat.v1.GraphKeys.SUMMARIES)
                    if is_histogram(s.op) and s.op.name.startswith(WEIGHTS1_SCOPE)]
        if len(weights1) != 1:
            raise AssertionError('layer 1 weight histograms: %s' % weights1)
        ways = [('tensorflow_histograms', summarised(*theirs)),
                ('our_histograms', summarised(*ours)),
                ('no_weights1_histogram', summarised(
                    model, sess, writer_for(graph, 'no_weights1_histogram'),
                    merged_without(graph, lambda op: op.name == weights1[0]))),
                ('no_histograms', summarised(model, sess, writer_for(graph, 'no_histograms'),
                                             merged_without(graph, is_histogram))),
                ('no_summaries', lambda: sess.run([model.cross_entropy, model.train_step],
                                                  feed(model)))]
        rates, cpu = interleaved(ways, seconds, rounds, warmup_seconds)
        return rates, {w: [1e3 * c for c in cpu[w]] for w in cpu}
    finally:
        for close in closers:
            close()


def hardware():
    """CPU model, cores, vector extensions, load, versions: the figures' context."""
    facts, versions = provenance.hardware_facts(), provenance.versions()
    return {'cpu': facts['cpu'], 'cores': facts['cores'],
            'avx': [f for f in facts['cpu_flags'] if f.startswith('avx')],
            'load': [round(x, 2) for x in os.getloadavg()], 'python': versions['python'],
            'tensorflow': versions['tensorflow'], 'numpy': versions['numpy']}


def _fmt(values, spec):
    return '/'.join(spec % v for v in spread(values))


def report(ops, steps, cpu, hw):
    """The figures as lines of text."""
    lines = ['Histogram summary: TensorFlow\'s kernel against common/histogram.py. %s, %d cores '
             '(%s), load %s; Python %s, TensorFlow %s, NumPy %s' % (
                 hw['cpu'], hw['cores'], ' '.join(hw['avx']) or 'no AVX',
                 ' '.join(map(str, hw['load'])), hw['python'], hw['tensorflow'], hw['numpy'])]
    lines.append('  ms per op, min/median/max of the rounds (read: the variable alone):')
    for size, ways in ops.items():
        ratio = statistics.median(ways['tensorflow']) / statistics.median(ways['auto'])
        lines.append('    %9s values: tensorflow %s, numpy %s, auto %s, read %s; '
                     'tensorflow/auto %.1fx' % (
                         '{:,}'.format(size), _fmt(ways['tensorflow'], '%.3f'),
                         _fmt(ways['numpy'], '%.3f'), _fmt(ways['auto'], '%.3f'),
                         _fmt(ways['read'], '%.3f'), ratio))
    if steps:
        median = {w: statistics.median(r) for w, r in steps.items()}
        lines.append('  mnist_with_summaries training steps/s, min/median/max: %s' % ', '.join(
            '%s %s' % (w, _fmt(steps[w], '%.0f')) for w in STEP_WAYS))
        lines.append('  of the graph\'s speed (median): every summary with ours %.2f, with '
                     'TensorFlow\'s histograms %.2f' % (
                         median['our_histograms'] / median['no_summaries'],
                         median['tensorflow_histograms'] / median['no_summaries']))
        lines.append('  CPU ms per step (all threads of the process), min/median/max: %s' % (
            ', '.join('%s %s' % (w, _fmt(cpu[w], '%.1f')) for w in STEP_WAYS)))
        lines.append('  where the summaries\' time goes, %s' % breakdown(median))
    return lines


def breakdown(median):
    """The summaries' cost per step (ms, from the median steps/s of the ways): every
    summary, and its parts: layer 1's weight histogram, the other histograms, the scalars,
    images and writing (what no_histograms adds to no_summaries)."""
    ms = {w: 1e3 / median[w] for w in STEP_WAYS}
    return ('ms per step (median): all summaries %.2f, of which layer 1\'s weight histogram '
            '%.2f, the other histograms %.2f, scalars, images and writing %.2f; without layer '
            '1\'s weight histogram %.2f of the graph\'s speed' % (
                ms['our_histograms'] - ms['no_summaries'],
                ms['our_histograms'] - ms['no_weights1_histogram'],
                ms['no_weights1_histogram'] - ms['no_histograms'],
                ms['no_histograms'] - ms['no_summaries'],
                median['no_weights1_histogram'] / median['no_summaries']))


def run_in_subprocess(seconds, rounds, warmup_seconds, env, workdir):
    """python -m bench.histogram in a process of its own (its flags are the script's): its
    lines of text, and its figures (None and the error's last lines when it failed)."""
    path = os.path.join(workdir, 'histogram.json')
    result = subprocess.run(
        [sys.executable, '-m', 'bench.histogram', '--seconds=%s' % seconds,
         '--rounds=%d' % rounds, '--warmup_seconds=%s' % warmup_seconds, '--json=%s' % path],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        return (['Histogram summary: failed (exit %d):' % result.returncode] +
                result.stderr.strip().splitlines()[-5:]), None
    with open(path) as f:
        return result.stdout.strip().splitlines(), json.load(f)


def main(argv):
    del argv
    hw = hardware()
    ops = time_ops(SIZES, FLAGS.seconds / 4, FLAGS.rounds, FLAGS.warmup_seconds / 4)
    # The script prints a line at each traced step: to stderr, the figures alone to stdout.
    with tempfile.TemporaryDirectory(prefix='tf-classics-histogram-') as workdir, \
            contextlib.redirect_stdout(sys.stderr):
        steps, cpu = time_steps(FLAGS.seconds, FLAGS.rounds, FLAGS.warmup_seconds, workdir)
    for line in report(ops, steps, cpu, hw):
        print(line, flush=True)
    if FLAGS.json:
        with open(FLAGS.json, 'w') as f:
            json.dump({'hardware': hw, 'ms_per_op': {str(k): v for k, v in ops.items()},
                       'steps_per_second': steps, 'cpu_ms_per_step': cpu}, f, indent=1)


if __name__ == '__main__':
    entry.run(define_flags, main)
