"""Training throughput of each model: our script, its graph fed from memory, Keras 3, PyTorch.

    python -m bench                                  # every model, about 15 minutes here
    python -m bench --models=cifar10 --seconds=2 --json=bench.json

For each model, one process per way of running it (bench/workloads.py, bench/peers.py) is
built and warmed up; then, round after round, each process in turn times one window of
--seconds, in an order that rotates each round, so that drift of the machine hits all of them
alike. A figure is the median over the rounds (min and max are printed beside it), in examples
(images) per second of training:
  ours      our script end to end (its input pipeline, hooks, summaries and checkpoints on the
            script's schedule; test-set evaluations left out)
  ours_loop the same with --steps_per_run=10 (the opt-in in-graph loop, ten steps per
            Session.run), for the scripts that have the flag (bench.LOOP_MODELS)
  ours_fed  the same train op on a batch held in memory: the ceiling for `ours`
  keras     the same model, batch and optimiser in Keras 3 (compile + one long fit), with
            the fastest of its jit_compile / steps_per_execution settings (named)
  pytorch   the same in PyTorch, threads = cores, the fastest of eager NCHW, channels_last
            and torch.compile (named)
and, for CIFAR-10, the input pipeline alone: the queue pipeline of cifar10/inputs.py and its
tf.data variant (images/s). The fp32 matmul peak is measured in the same run (a 2048^2 matmul,
before and after the models); FLOPs per step are counted from our graph (bench/flops.py).
Keras and PyTorch are optional (pip install -e '.[bench]'; pip install torch==2.13.0): a
missing one is reported and left out.
"""

import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

from absl import flags

import bench
from common import data
from common import provenance

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WAYS = ['ours', 'ours_loop', 'bf16', 'ours_fed', 'keras', 'pytorch']
PEAK_FRAMEWORKS = ['tensorflow', 'numpy', 'pytorch']
PIPELINES = ['queue', 'dataset']


def define_flags():
    flags.DEFINE_list('models', bench.MODELS, 'Models to measure: %s.' % ','.join(bench.MODELS))
    flags.DEFINE_list('ways', WAYS, 'Ways to run each model: %s.' % ','.join(WAYS))
    flags.DEFINE_float('seconds', 4.0, 'Length of one timed window (at least two steps run).',
                       lower_bound=0.0)
    flags.DEFINE_integer('rounds', 5, 'Timed windows per way and model (the median is kept).',
                         lower_bound=1)
    flags.DEFINE_float('warmup_seconds', 3.0, 'Untimed steps before the first window.',
                       lower_bound=0.0)
    flags.DEFINE_boolean('pipeline', True, 'Also time the CIFAR-10 input pipelines alone.')
    flags.DEFINE_string('json', None, 'Also write the figures to this JSON file.')
    flags.DEFINE_string('data_dir', None,
                        'Folder holding mnist/ and cifar10/ (default: $TF_CLASSICS_DATA, else '
                        '../shared/data beside the repository, else ./data in it, '
                        'downloading there).')
    bench.check_choices(flags, 'models', bench.MODELS)
    bench.check_choices(flags, 'ways', WAYS)


class Worker(object):
    """A bench.worker process: starts, builds and warms up one workload; times windows."""

    def __init__(self, model, way, workdir, warmup_seconds, env, batch=None):
        """batch: the model's batch size, for the Keras and PyTorch ways."""
        self.name = '%s/%s' % (model, way)
        os.makedirs(os.path.join(workdir, way), exist_ok=True)
        self.log_path = os.path.join(workdir, way, 'log.txt')
        self._log = open(self.log_path, 'w')
        command = [sys.executable, '-m', 'bench.worker', model, way,
                   os.path.join(workdir, way), str(warmup_seconds)]
        self._proc = subprocess.Popen(
            command + ([str(batch)] if batch else []), cwd=REPO, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True)
        words = self._answer('ready')
        info = json.loads(' '.join(words))
        self.examples_per_step = info['examples_per_step']
        self.flops = info['flops']
        self.variant = info.get('variant')  # the peers' setting that was fastest

    def _answer(self, kind):
        for line in self._proc.stdout:
            if line.startswith('@@ %s' % kind):
                return line.split()[2:]
        self._proc.wait()
        raise RuntimeError('%s failed (exit %s); the end of %s:\n%s' % (
            self.name, self._proc.returncode, self.log_path, _tail(self.log_path)))

    def window(self, seconds):
        """Examples per second over one window of `seconds`."""
        self._proc.stdin.write('run %f\n' % seconds)
        self._proc.stdin.flush()
        _, examples, elapsed = self._answer('result')
        return int(examples) / float(elapsed)

    def close(self):
        if self._proc.poll() is None:
            try:
                self._proc.stdin.write('quit\n')
                self._proc.stdin.close()
                self._proc.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        self._log.close()


def _tail(path, lines=15):
    with open(path) as f:
        return ''.join(f.readlines()[-lines:])


def _available(way):
    module = {'keras': 'keras', 'pytorch': 'torch', 'numpy': 'numpy'}.get(way)
    return module is None or importlib.util.find_spec(module) is not None


def _cpu():
    facts = provenance.hardware_facts()
    return '%s, %d cores (%s)' % (facts['cpu'], facts['cores'], ' '.join(facts['cpu_flags']))


def measure(model, ways, workdir, env, batch, warmup_seconds, rounds, seconds, log=print):
    """Interleaved windows of each way of `model` (batch: its batch size), `rounds` of
    `seconds` each after warmup_seconds: {way: [examples/s, ...]}, the FLOPs per step,
    {way: error} for those that failed and {way: variant} for those that named one (the
    peers' fastest settings)."""
    workers, errors = {}, {}
    try:
        for way in ways:
            log('  starting %s/%s' % (model, way))
            try:
                workers[way] = Worker(model, way, os.path.join(workdir, model),
                                      warmup_seconds, env, batch)
            except RuntimeError as e:
                errors[way] = str(e).strip().splitlines()[-1]
                log('  ' + str(e))
        figures = {way: [] for way in workers}
        order = list(workers)
        for r in range(rounds):
            shift = r % len(order) if order else 0
            for way in order[shift:] + order[:shift]:
                figures[way].append(workers[way].window(seconds))
        flops_per_step = next((w.flops for w in workers.values() if w.flops), None)
        variants = {way: w.variant for way, w in workers.items() if w.variant}
        return figures, flops_per_step, errors, variants
    finally:
        for w in workers.values():
            w.close()


def _median(values):
    return statistics.median(values) if values else None


def _ratio(a, b):
    return a / b if a and b else None


def main(argv):
    del argv
    env = dict(os.environ, PYTHONUNBUFFERED='1', TF_CPP_MIN_LOG_LEVEL='2')
    env['TF_CLASSICS_DATA'] = os.path.abspath(FLAGS.data_dir) if FLAGS.data_dir else data.data_root()
    ways = [w for w in FLAGS.ways if _available(w)]
    missing = [w for w in FLAGS.ways if w not in ways]
    workdir = tempfile.mkdtemp(prefix='tf-classics-bench-')
    started = datetime.datetime.now()
    print('Benchmark, %s: %s; %s' % (started.strftime('%Y-%m-%d %H:%M'), _cpu(), ', '.join(
        '%s %s' % kv for kv in provenance.versions().items() if kv[1])), flush=True)
    if missing:
        print('Not installed, left out: %s (pip install -e \'.[bench]\'; pip install '
              'torch==2.13.0)' % ', '.join(missing), flush=True)
    print('Windows of %.1f s, %d rounds, median; work files in %s' % (
        FLAGS.seconds, FLAGS.rounds, workdir), flush=True)

    peaks = {}
    for framework in PEAK_FRAMEWORKS:
        if _available(framework):
            peaks[framework] = Worker('matmul_peak', framework,
                                      os.path.join(workdir, 'matmul_peak'), 0.5, env)
    peak_runs = {framework: [] for framework in peaks}

    def measure_peaks():
        for framework, worker in peaks.items():
            peak_runs[framework] += [worker.window(FLAGS.seconds) * worker.flops / 1e9
                                     for _ in range(2)]
    measure_peaks()
    print('fp32 matmul, %d^2: %s GFLOP/s' % (bench.PEAK_SIZE, ', '.join(
        '%s %.1f' % (f, _median(r)) for f, r in peak_runs.items())), flush=True)

    rows = []
    try:
        for model in FLAGS.models:
            model_ways = [w for w in ways if w != 'ours_loop' or model in bench.LOOP_MODELS]
            model_ways += PIPELINES if model == 'cifar10' and FLAGS.pipeline else []
            batch = bench.batch_size(model)  # the script's (this imports it, and TensorFlow)
            figures, flops_per_step, errors, variants = measure(
                model, model_ways, workdir, env, batch, FLAGS.warmup_seconds, FLAGS.rounds,
                FLAGS.seconds)
            row = {'model': model, 'batch': batch}
            for way in WAYS + model_ways:  # null where not measured
                row[way] = _median(figures.get(way, []))
            row['flops_per_step'] = flops_per_step
            row['windows'] = figures
            row['variants'] = variants
            if errors:
                row['errors'] = errors
            rows.append(row)
            print(_row_line(row), flush=True)
    finally:
        measure_peaks()
        for worker in peaks.values():
            worker.close()
    gflops = max(_median(r) for r in peak_runs.values())
    for row in rows:
        fractions = {}
        for way in WAYS:
            if row.get(way) and row['flops_per_step']:
                fractions[way] = (row[way] / row['batch'] * row['flops_per_step']) / (gflops * 1e9)
        row['peak_fraction'] = fractions.get('ours')
        row['peak_fractions'] = fractions
    print()
    print(table(rows, gflops))
    print('Took %s.' % str(datetime.datetime.now() - started).split('.')[0])
    if FLAGS.json:
        with open(FLAGS.json, 'w') as f:
            json.dump(rows + [{'model': 'matmul_peak', 'gflops': gflops,
                               'by_framework': {f: _median(r) for f, r in peak_runs.items()},
                               'windows': peak_runs,
                               'cpu': _cpu(), 'versions': provenance.versions(),
                               'date': started.isoformat(timespec='seconds')}], f, indent=1)
        print('Wrote %s' % FLAGS.json)


def _fmt(x, spec='%.0f'):
    return spec % x if x is not None else '-'


def _spread(values):
    """'min / median / max' of a way's windows."""
    return ' / '.join('{:,.0f}'.format(x) for x in (min(values), _median(values), max(values)))


def _row_line(row):
    """The model's figures as they come: min / median / max of each way, and the peers'
    settings."""
    return '  %s (min / median / max): %s' % (row['model'], '; '.join(
        '%s %s%s' % (way, _spread(row['windows'][way]),
                     ' (%s)' % row['variants'][way] if way in row['variants'] else '')
        for way in WAYS + PIPELINES if row['windows'].get(way)))


def table(rows, gflops):
    """The results as a Markdown table (examples/s, ratios, % of the matmul peak)."""
    lines = ['| model | batch | ours | ours_loop | bf16 | ours_fed | keras | pytorch | bf16/ours | '
             'ours/keras | ours_loop/keras | ours/pytorch | ours/ours_fed | GFLOP/step | '
             '% of peak: ours / loop / bf16 / fed / keras / pytorch |',
             '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        pf = r['peak_fractions']
        lines.append('| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |'
                     % (r['model'], r['batch'], _fmt(r.get('ours')), _fmt(r.get('ours_loop')),
                        _fmt(r.get('bf16')), _fmt(r.get('ours_fed')), _fmt(r.get('keras')),
                        _fmt(r.get('pytorch')),
                        _fmt(_ratio(r.get('bf16'), r.get('ours')), '%.2f'),
                        _fmt(_ratio(r.get('ours'), r.get('keras')), '%.2f'),
                        _fmt(_ratio(r.get('ours_loop'), r.get('keras')), '%.2f'),
                        _fmt(_ratio(r.get('ours'), r.get('pytorch')), '%.2f'),
                        _fmt(_ratio(r.get('ours'), r.get('ours_fed')), '%.2f'),
                        _fmt(r['flops_per_step'] and r['flops_per_step'] / 1e9, '%.2f'),
                        ' / '.join(_fmt(pf.get(w) and 100 * pf[w], '%.0f') for w in WAYS)))
    lines.append('')
    lines.append('Examples (images) per second of training, median of the windows; the fp32 '
                 'matmul peak (the best of TensorFlow, NumPy and PyTorch) %.1f GFLOP/s.' % gflops)
    lines.append('')
    lines.append('| model | ' + ' | '.join(WAYS) + ' |')
    lines.append('|---|' + '---|' * len(WAYS))
    for r in rows:
        lines.append('| %s | %s |' % (r['model'], ' | '.join(
            _spread(r['windows'][w]) if r['windows'].get(w) else '-' for w in WAYS)))
    lines.append('')
    lines.append('Examples/s over the windows: min / median / max.')
    for r in rows:
        if r['variants']:
            lines.append('%s: %s.' % (r['model'], '; '.join(
                '%s ran %s' % kv for kv in sorted(r['variants'].items()))))
    for r in rows:
        if r.get('queue') or r.get('dataset'):
            lines.append('CIFAR-10 input pipeline alone, images/s: queue %s, tf.data %s; the '
                         'model consumes %s (ours_fed).' % (
                             _fmt(r.get('queue')), _fmt(r.get('dataset')),
                             _fmt(r.get('ours_fed'))))
        for way, error in r.get('errors', {}).items():
            lines.append('%s/%s failed: %s' % (r['model'], way, error))
    return '\n'.join(lines)
