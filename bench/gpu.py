"""The GPU run, ready to go: one command that measures the CIFAR-10 trainer on a GPU machine.

    python -m bench.gpu --install        # a fresh GPU machine with internet: about 10 minutes
    python -m bench.gpu                  # TensorFlow with CUDA already installed
    python -m bench.gpu --quick          # the same on whatever is here, in tiny windows

--install first swaps tensorflow-cpu for `tensorflow[and-cuda]==2.21.0` (pip) when nvidia-smi
sees a GPU that TensorFlow does not, then runs in a fresh process. It prints, each measured in a
process of its own (the GPUs a process sees are fixed when TensorFlow starts):
  - CIFAR-10 examples/s of multi_gpu_train's step as the script runs it (its input pipeline,
    session, hooks, summaries and checkpoints), with 1 tower and with 2 towers (two virtual GPUs
    on one card when there is one card), fp32 and --precision=bf16 (on a GPU: the float16
    rewrite) each with and without --xla, and --use_fp16 (the original's float16 model);
  - the input pipeline alone (the original's queues and the tf.data variant), images/s on this
    machine's cores;
  - eval.py polling beside a real multi_gpu_train.py run on the same card, both ending well
    (no out-of-memory) and the evaluator's precision;
  - the extrapolated wall time of the report's 60,000 steps of 128 images (4 hours on the
    report's cloud GPU; the goal here is 3 minutes on one H100).
Without a GPU the same cases run on the CPU (the towers on logical CPUs): that is the path the
tests run, with --quick.
"""

import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from absl import flags

import bench
from common import data
from common import entry
from common import provenance

FLAGS = flags.FLAGS
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPORT_STEPS, REPORT_BATCH = 60000, 128

# (name, towers, precision, xla, use_fp16)
CASES = [('1 tower fp32', 1, 'fp32', False, False), ('1 tower fp32 xla', 1, 'fp32', True, False),
         ('1 tower bf16', 1, 'bf16', False, False), ('1 tower bf16 xla', 1, 'bf16', True, False),
         ('1 tower use_fp16', 1, 'fp32', False, True),
         ('2 towers fp32', 2, 'fp32', False, False), ('2 towers fp32 xla', 2, 'fp32', True, False),
         ('2 towers bf16', 2, 'bf16', False, False), ('2 towers bf16 xla', 2, 'bf16', True, False)]
QUICK_CASES = ['1 tower fp32', '2 towers bf16']


def define_flags():
    flags.DEFINE_boolean('install', False, 'Install TensorFlow with CUDA first when a GPU is '
                         'there that TensorFlow does not see (needs internet).')
    flags.DEFINE_boolean('quick', False, 'Two cases, tiny windows and a 10-step run beside the '
                         'evaluator: the command\'s own test.')
    flags.DEFINE_float('seconds', 10.0, 'Length of the timed window of each case.',
                       lower_bound=0.0)
    flags.DEFINE_float('warmup_seconds', 10.0, 'Untimed steps before it (XLA compiles here).',
                       lower_bound=0.0)
    flags.DEFINE_integer('gpu_memory_mb', 16384, 'Memory of each virtual GPU when two towers '
                         'share one card.', lower_bound=256)
    flags.DEFINE_float('queue_fraction', None, 'The trainers\' --min_fraction_of_examples_in_queue '
                       '(default: theirs, 0.4; with --quick 0.01).', lower_bound=0.0,
                       upper_bound=1.0)
    flags.DEFINE_string('case', None, '(internal) measure one case in this process.')


def _gpus_seen_by_nvidia_smi():
    try:
        out = subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines() if out.returncode == 0 else []
    except (OSError, subprocess.SubprocessError):
        return []


def install_if_needed():
    """pip install tensorflow[and-cuda] when nvidia-smi sees a GPU and TensorFlow sees none.
    Returns True when it installed (the caller then starts afresh)."""
    if not _gpus_seen_by_nvidia_smi():
        print('No GPU (nvidia-smi): nothing to install; measuring on the CPU.', flush=True)
        return False
    probe = subprocess.run([sys.executable, '-c', 'import tensorflow as tf; '
                            'print(len(tf.config.list_physical_devices("GPU")))'],
                           capture_output=True, text=True)
    if probe.returncode == 0 and probe.stdout.strip().splitlines()[-1:] != ['0']:
        return False
    for cmd in ([sys.executable, '-m', 'pip', 'uninstall', '-y', 'tensorflow-cpu'],
                [sys.executable, '-m', 'pip', 'install', 'tensorflow[and-cuda]==2.21.0']):
        print('$ %s' % ' '.join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return True


def measure_case(name, workdir, seconds, warmup_seconds, gpu_memory_mb, queue_fraction):
    """Runs one case in this process: {'case', 'examples_per_sec', 'devices'}."""
    import tensorflow as tf
    from cifar10 import model
    from cifar10 import multi_gpu_train
    from cifar10 import train_lib
    (_, num_towers, precision, xla, use_fp16), = [c for c in CASES if c[0] == name]
    config = dataclasses.replace(
        train_lib.DEFAULTS, train_dir=workdir, num_gpus=num_towers, precision=precision, xla=xla,
        min_fraction_of_examples_in_queue=queue_fraction,
        model=model.ModelFlags(use_fp16=use_fp16),
        data_dir=data.resolve_data_dir('cifar10', train_lib.DEFAULTS.data_dir, False))
    devices, session_config = train_lib.tower_session_config(config, split_gpu_mb=gpu_memory_mb)
    batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
    with tf.Graph().as_default(), tf.device('/cpu:0'):
        train_op, losses, summary_op = multi_gpu_train.training_graph_from_files(
            config, batches_dir, devices)
        with train_lib.monitored_session(config, session_config,
                                         [train_lib.step_logger(config, losses)],
                                         summary_op) as sess:
            rate = _timed_rate(lambda: sess.run(train_op), config.batch_size * num_towers,
                               seconds, warmup_seconds)
    return {'case': name, 'examples_per_sec': rate, 'devices': devices}


def measure_pipeline(pipeline, seconds, warmup_seconds, queue_fraction):
    """The training input alone: images/s of dequeued batches."""
    import tensorflow as tf
    from cifar10 import inputs
    from cifar10 import train_lib
    batches_dir = data.maybe_download_and_extract_cifar10(
        data.resolve_data_dir('cifar10', train_lib.DEFAULTS.data_dir, False))
    with tf.Graph().as_default():
        images, labels = inputs.training_batches(batches_dir, train_lib.DEFAULTS.batch_size,
                                                 queue_fraction,
                                                 pipeline)
        batch = tf.group(images, labels)
        with tf.compat.v1.train.MonitoredSession() as sess:
            rate = _timed_rate(lambda: sess.run(batch), train_lib.DEFAULTS.batch_size, seconds,
                               warmup_seconds)
    return {'case': 'input pipeline: %s' % pipeline, 'examples_per_sec': rate}


def _timed_rate(step, examples_per_step, seconds, warmup_seconds):
    """Examples per second of step() over `seconds`, after `warmup_seconds` of it."""
    bench.timed(step, warmup_seconds, 1)
    steps, elapsed = bench.timed(step, seconds)
    return steps * examples_per_step / elapsed


def _run_case(case, workdir, env, seconds, warmup_seconds, gpu_memory_mb, queue_fraction):
    """Measures one case in a process of its own; returns its dict (or one with 'error')."""
    cmd = [sys.executable, '-m', 'bench.gpu', '--case=' + case, '--seconds=%g' % seconds,
           '--warmup_seconds=%g' % warmup_seconds, '--gpu_memory_mb=%d' % gpu_memory_mb,
           '--queue_fraction=%g' % queue_fraction]
    out = subprocess.run(cmd, cwd=REPO, env=dict(env, BENCH_GPU_WORKDIR=workdir),
                         capture_output=True, text=True)
    found = re.findall(r'^@@ (.*)$', out.stdout, re.M)
    if out.returncode != 0 or not found:
        tail = (out.stderr.strip().splitlines() or ['no output'])[-1]
        return {'case': case, 'error': 'exit %d: %s' % (out.returncode, tail)}
    return json.loads(found[-1])


def evaluator_beside_training(workdir, steps, env, queue_fraction):
    """multi_gpu_train.py for `steps` steps with eval.py polling beside it on the same
    devices; then eval.py --run_once on the last checkpoint. Returns a dict."""
    os.makedirs(workdir, exist_ok=True)
    train_dir, eval_dir = os.path.join(workdir, 'train'), os.path.join(workdir, 'eval')
    poll_log = open(os.path.join(workdir, 'eval_log.txt'), 'w')
    evaluator = subprocess.Popen(
        [sys.executable, 'cifar10/eval.py', '--checkpoint_dir=' + train_dir,
         '--eval_dir=' + eval_dir, '--eval_interval_secs=5'], cwd=REPO, env=env,
        stdout=poll_log, stderr=subprocess.STDOUT)
    start = time.time()
    trained = subprocess.run(
        [sys.executable, 'cifar10/multi_gpu_train.py', '--train_dir=' + train_dir,
         '--max_steps=%d' % steps, '--checkpoint_steps=%d' % max(steps // 4, 1),
         '--min_fraction_of_examples_in_queue=%g' % queue_fraction],
        cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.time() - start
    evaluator.send_signal(2)  # SIGINT: the evaluator's clean stop
    try:
        evaluator.wait(timeout=60)
    except subprocess.TimeoutExpired:
        evaluator.kill()
    poll_log.close()
    final = subprocess.run(
        [sys.executable, 'cifar10/eval.py', '--run_once', '--checkpoint_dir=' + train_dir,
         '--eval_dir=' + eval_dir], cwd=REPO, env=env, capture_output=True, text=True)
    with open(os.path.join(workdir, 'eval_log.txt')) as f:
        polled = re.findall(r'precision @ 1 = ([\d.]+)', f.read())
    found = re.findall(r'precision @ 1 = ([\d.]+)', final.stdout)
    oom = 'out of memory' in (trained.stderr + final.stderr).lower()
    return {'train_exit': trained.returncode, 'train_seconds': seconds,
            'evaluations_beside': len(polled), 'final_exit': final.returncode,
            'precision': float(found[-1]) if found else None, 'out_of_memory': oom,
            'error': None if trained.returncode == 0 and final.returncode == 0 else
            ((trained.stderr or final.stderr).strip().splitlines() or ['?'])[-1]}


def main(argv):
    del argv
    env = dict(os.environ, PYTHONUNBUFFERED='1', TF_CPP_MIN_LOG_LEVEL='2')
    env.setdefault(data.DATA_ENV, data.data_root())
    if FLAGS.case:
        workdir = os.environ.get('BENCH_GPU_WORKDIR') or tempfile.mkdtemp()
        if FLAGS.case.startswith('pipeline:'):
            result = measure_pipeline(FLAGS.case.split(':', 1)[1], FLAGS.seconds,
                                      FLAGS.warmup_seconds, FLAGS.queue_fraction)
        else:
            result = measure_case(FLAGS.case, os.path.join(workdir, re.sub(r'\W+', '_',
                                                                           FLAGS.case)),
                                  FLAGS.seconds, FLAGS.warmup_seconds, FLAGS.gpu_memory_mb,
                                  FLAGS.queue_fraction)
        print('@@ %s' % json.dumps(result), flush=True)
        return
    if FLAGS.install and install_if_needed():
        os.execv(sys.executable, [sys.executable, '-m', 'bench.gpu'] +
                 [a for a in sys.argv[1:] if a != '--install'])
    facts = provenance.hardware_facts()
    print('bench.gpu, %s: %s; TensorFlow %s' % (
        datetime.datetime.now().strftime('%Y-%m-%d %H:%M'), facts['hardware'],
        provenance.versions()['tensorflow']), flush=True)
    print('CPU flags: %s' % ' '.join(facts['cpu_flags']), flush=True)
    seconds, warmup = FLAGS.seconds, FLAGS.warmup_seconds
    queue_fraction = FLAGS.queue_fraction
    if FLAGS.quick:
        seconds, warmup = min(seconds, 1.0), min(warmup, 1.0)
    if queue_fraction is None:
        queue_fraction = 0.01 if FLAGS.quick else 0.4
    workdir = tempfile.mkdtemp(prefix='tf-classics-bench-gpu-')
    started = time.time()
    rows = []
    for name, *_ in CASES:
        if FLAGS.quick and name not in QUICK_CASES:
            continue
        rows.append(_run_case(name, workdir, env, seconds, warmup, FLAGS.gpu_memory_mb,
                              queue_fraction))
        print(_line(rows[-1]), flush=True)
    for pipeline in ('queue', 'dataset'):
        rows.append(_run_case('pipeline:' + pipeline, workdir, env, seconds, warmup,
                              FLAGS.gpu_memory_mb, queue_fraction))
        print(_line(rows[-1]), flush=True)
    beside = evaluator_beside_training(os.path.join(workdir, 'beside'),
                                       10 if FLAGS.quick else 2000, env,
                                       queue_fraction)
    print('eval.py beside multi_gpu_train.py (%d steps, %.0f s): train exit %d, %d evaluations '
          'beside it, final precision @ 1 %s, out of memory: %s%s' % (
              10 if FLAGS.quick else 2000, beside['train_seconds'], beside['train_exit'],
              beside['evaluations_beside'], beside['precision'],
              'yes' if beside['out_of_memory'] else 'no',
              '; error: %s' % beside['error'] if beside['error'] else ''), flush=True)
    timed = [r for r in rows if r.get('examples_per_sec') and 'tower' in r['case']]
    if timed:
        best = max(timed, key=lambda r: r['examples_per_sec'])
        wall = REPORT_STEPS * REPORT_BATCH / best['examples_per_sec']
        print('The report\'s %s steps of %d images: %.1f minutes at the best rate (%s, %.0f '
              'examples/s); goal 3 minutes on one H100' % (
                  '{:,}'.format(REPORT_STEPS), REPORT_BATCH, wall / 60, best['case'],
                  best['examples_per_sec']), flush=True)
    print('Took %.0f s.' % (time.time() - started), flush=True)
    shutil.rmtree(workdir, ignore_errors=True)


def _line(row):
    if row.get('error'):
        return '  %s: failed (%s)' % (row['case'], row['error'])
    return '  %s: %s examples/s%s' % (row['case'], '{:,.0f}'.format(row['examples_per_sec']),
                                      ' on %s' % ', '.join(row['devices'])
                                      if row.get('devices') else '')


if __name__ == '__main__':
    entry.run(define_flags, main)
