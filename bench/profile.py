"""Where one training step's time goes, ours against Keras': op by op, and the Python around
the runtime call.

    python -m bench.profile                                   # cnn_mnist, deep_cnn, cifar10
    python -m bench.profile --models=deep_cnn --steps=20 --json=profile.json

For each model it builds, in one process each after the other, the benchmark's ways
(bench/workloads.py: `ours`, `ours_fed`; bench/peers.py: `keras`, compiled with
steps_per_execution 1, without jit_compile, its train function called once per step) and, for
each, after --warmup_steps:
  - times --steps steps, and the part of each spent in the runtime call (Session.run's
    TF_SessionRun for ours, the train function's EagerLocalExecute for Keras): the rest
    is Python around it (hooks, feeds, fetches, the input's NumPy). `runtime calls` is how
    many Session.run calls a step makes. Keras' runtime calls are timed in the trace below,
    so its Python is the traced steps' wall time less them;
  - traces --steps more steps with TensorFlow's profiler (tf.profiler.experimental, the same
    instrument for both: RunMetadata step stats do not reach the functions Keras runs) and
    sums, per op type, the time of the op events ('<node>:<type>') over every thread, per step.
    Ops run in parallel on the cores, so the op sums can exceed the step's wall time; for
    `ours` they include the input pipeline's threads (CIFAR-10's queue runners), which are off
    the step's critical path but share the cores.
It prints both, per model, and the op types whose time differs most between ours_fed and
Keras. Timings are wall times on a machine that may be shared: compare ways within one run.
"""

import collections
import glob
import json
import os
import re
import statistics
import tempfile
import threading
import time

from absl import flags

import bench  # (before TensorFlow: common's CPU defaults)
from common import entry

FLAGS = flags.FLAGS
PROFILED = ['cnn_mnist', 'deep_cnn', 'cifar10']
WAYS = ['ours', 'ours_fed', 'keras']
_OP_EVENT = re.compile(r'^(?P<node>[^\s:]+):(?P<type>[A-Za-z0-9_]+)$')


def define_flags():
    flags.DEFINE_list('models', PROFILED, 'Models to profile: %s.' % ', '.join(bench.MODELS))
    flags.DEFINE_list('ways', WAYS, 'Ways to profile: %s.' % ', '.join(WAYS))
    flags.DEFINE_integer('steps', 20, 'Steps timed, then as many traced.', lower_bound=1)
    flags.DEFINE_integer('warmup_steps', 10, 'Untimed steps first.', lower_bound=0)
    flags.DEFINE_integer('top', 15, 'Op types printed per model.', lower_bound=1)
    flags.DEFINE_string('json', None, 'Also write the figures to this JSON file.')
    bench.check_choices(flags, 'models', bench.MODELS)
    bench.check_choices(flags, 'ways', WAYS)


class _RuntimeClock(object):
    """Times the runtime calls of v1 sessions (BaseSession._call_tf_sessionrun) that the
    thread making it makes (not the queue runners' threads) while on."""

    def __init__(self):
        from tensorflow.python.client import session
        self._session = session.BaseSession
        self._original = session.BaseSession._call_tf_sessionrun
        self.seconds, self.calls = 0.0, 0
        clock, thread = self, threading.get_ident()

        def timed(sess, *args):
            if threading.get_ident() != thread:
                return clock._original(sess, *args)
            start = time.perf_counter()
            try:
                return clock._original(sess, *args)
            finally:
                clock.seconds += time.perf_counter() - start
                clock.calls += 1
        self._session._call_tf_sessionrun = timed

    def reset(self):
        self.seconds, self.calls = 0.0, 0

    def close(self):
        self._session._call_tf_sessionrun = self._original


def _trace(step, steps, logdir):
    """Runs step() `steps` times under TensorFlow's profiler; returns its XSpace and the mean
    wall time of a step (seconds)."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    tf.profiler.experimental.start(logdir)
    try:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        traced_wall = (time.perf_counter() - start) / steps
    finally:
        tf.profiler.experimental.stop()
    path = sorted(glob.glob(os.path.join(logdir, '**', '*.xplane.pb'), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, 'rb') as f:
        space.ParseFromString(f.read())
    return space, traced_wall


def op_times(space, steps):
    """{op type: microseconds per step} of the op events in an XSpace, and the microseconds
    per step of the functions that Python called (Keras' train function: its
    EagerLocalExecute events on the caller's thread)."""
    by_type = collections.Counter()
    python_calls = 0.0
    for plane in space.planes:
        names = {k: v.name for k, v in plane.event_metadata.items()}
        for line in plane.lines:
            for event in line.events:
                name = names.get(event.metadata_id, '')
                if (name.startswith('EagerLocalExecute: __inference_')
                        and not line.name.startswith('tf_')):  # on the caller's thread
                    python_calls += event.duration_ps / 1e6
                match = _OP_EVENT.match(name)
                if match:
                    by_type[match.group('type')] += event.duration_ps / 1e6
    return {k: v / steps for k, v in by_type.items()}, python_calls / steps


def _keras_step(model, batch):
    """One Keras train-function call per step (steps_per_execution 1, no XLA): (step, close)."""
    import keras
    import tensorflow as tf
    from bench import peers
    net, optimizer = peers.keras_model(model)
    net.compile(optimizer=optimizer,
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=False, steps_per_execution=1)
    images, labels = peers._batch(model, batch)
    dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()
    net.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)  # builds net.train_function
    iterator = iter(dataset)
    return (lambda: net.train_function(iterator)), (lambda: None)


def profile_way(model, way, steps, warmup_steps, workdir):
    """The figures of one way of one model (see the module's docstring)."""
    import contextlib
    import tensorflow as tf
    clock = _RuntimeClock()
    try:
        # Keras runs eagerly; ours builds in a graph of its own, as bench/worker.py does.
        with contextlib.nullcontext() if way == 'keras' else tf.Graph().as_default():
            if way == 'keras':
                step, close = _keras_step(model, bench.batch_size(model))
            else:
                from bench import workloads
                workload = workloads.build(model, way, os.path.join(workdir, model, way))
                step, close = workload.step, workload.close
            try:
                for _ in range(warmup_steps):
                    step()
                clock.reset()
                walls = []
                for _ in range(steps):
                    start = time.perf_counter()
                    step()
                    walls.append(time.perf_counter() - start)
                wall = statistics.median(walls) * 1e6
                session_us, calls = clock.seconds / steps * 1e6, clock.calls / steps
                space, traced_wall = _trace(step, steps, tempfile.mkdtemp(prefix='trace-', dir=workdir))
            finally:
                close()
    finally:
        clock.close()
    ops, keras_us = op_times(space, steps)
    mean = sum(walls) / steps * 1e6
    if way == 'keras':  # its runtime calls are timed in the trace: Python is the traced rest
        runtime_us, python_us, calls = keras_us, traced_wall * 1e6 - keras_us, 1
    else:
        runtime_us, python_us = session_us, mean - session_us
    return {'step_us': wall, 'mean_step_us': mean, 'runtime_us': runtime_us,
            'python_us': python_us, 'runtime_calls': calls, 'traced_step_us': traced_wall * 1e6,
            'ops_us': ops}


def _report(model, figures, top):
    lines = ['%s: us per step (median wall / mean wall / in the runtime call / Python around '
             'it / runtime calls per step)' % model]
    for way, f in figures.items():
        lines.append('  %-8s %8.0f / %8.0f / %8.0f / %7.0f / %.0f' % (
            way, f['step_us'], f['mean_step_us'], f['runtime_us'], f['python_us'],
            f['runtime_calls']))
    types = sorted(set().union(*(f['ops_us'] for f in figures.values())),
                   key=lambda t: -max(f['ops_us'].get(t, 0) for f in figures.values()))
    lines.append('  op type, us per step summed over threads: ' + ' / '.join(figures))
    for t in types[:top]:
        lines.append('    %-40s %s' % (t, ' / '.join(
            '%8.0f' % f['ops_us'].get(t, 0) for f in figures.values())))
    for way, f in figures.items():
        lines.append('    %-40s %s (%s)' % ('all ops', '%8.0f' % sum(f['ops_us'].values()), way))
    if 'ours_fed' in figures and 'keras' in figures:
        ours, keras = figures['ours_fed']['ops_us'], figures['keras']['ops_us']
        diff = sorted(((ours.get(t, 0) - keras.get(t, 0), t) for t in set(ours) | set(keras)),
                      key=lambda d: -abs(d[0]))
        lines.append('  ours_fed - keras, the largest differences (us per step): ' + ', '.join(
            '%s %+.0f' % (t, d) for d, t in diff[:top]))
    return '\n'.join(lines)


def main(argv):
    del argv
    with open('/proc/loadavg') as f:
        load = f.read().split()[:3]
    workdir = tempfile.mkdtemp(prefix='tf-classics-profile-')
    print('Profile, %s, load average %s; %d steps timed, %d traced, after %d' % (
        time.strftime('%Y-%m-%d %H:%M'), ' '.join(load), FLAGS.steps, FLAGS.steps,
        FLAGS.warmup_steps), flush=True)
    results = {'load_average': load, 'models': {}}
    for model in FLAGS.models:
        figures = {}
        for way in FLAGS.ways:
            figures[way] = profile_way(model, way, FLAGS.steps, FLAGS.warmup_steps, workdir)
        results['models'][model] = figures
        print(_report(model, figures, FLAGS.top), flush=True)
    with open('/proc/loadavg') as f:
        results['load_average_after'] = f.read().split()[:3]
    print('load average after: %s' % ' '.join(results['load_average_after']))
    if FLAGS.json:
        with open(FLAGS.json, 'w') as f:
            json.dump(results, f, indent=1)


if __name__ == '__main__':
    entry.run(define_flags, main)
