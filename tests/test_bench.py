"""The benchmark: FLOPs counted from the graph, and a short run of `python -m bench` with its
JSON (the speed figures themselves are printed by the benchmark, never asserted here)."""

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from bench import flops
from bench import peers
from cifar10 import model
from helpers import REPO, shared_data_root


def _mlp_train_op(batch, sizes):
    x = tf.zeros([batch, sizes[0]])
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = tf.compat.v1.get_variable('w%d' % i, [n_in, n_out])
        x = tf.matmul(x, w)
        if i < len(sizes) - 2:
            x = tf.nn.relu(x)
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.zeros([batch], tf.int32), logits=x))
    return tf.compat.v1.train.AdamOptimizer().minimize(loss)


def test_mlp_flops_are_three_products_per_layer_but_the_inputs_gradient():
    with tf.Graph().as_default():
        train_op = _mlp_train_op(100, [784, 500, 10])
        forward = 2 * 100 * (784 * 500 + 500 * 10)
        # forward, the weights' gradients, and the gradient into layer 2 only
        assert flops.step_flops(train_op) == 2 * forward + 2 * 100 * 500 * 10


def test_cifar10_flops_per_step():
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        logits = model.inference(tf.zeros([128, 24, 24, 3]))
        loss = model.loss(logits, tf.zeros([128], tf.int32))
        train_op = model.train(loss, global_step, model.Hyperparameters(batch_size=128))
        conv1 = 2 * 128 * 24 * 24 * 64 * 5 * 5 * 3
        rest = 2 * 128 * (12 * 12 * 64 * 5 * 5 * 64 + 6 * 6 * 64 * 384 + 384 * 192 + 192 * 10)
        assert flops.step_flops(train_op) == 2 * conv1 + 3 * rest  # 13.48 GFLOP


def _bench(*args):
    return subprocess.run([sys.executable, '-m', 'bench'] + list(args), cwd=REPO,
                          capture_output=True, text=True, timeout=600)


def test_bench_prints_the_table_and_writes_json(tmp_path):
    out = tmp_path / 'bench.json'
    result = _bench('--models=mnist_with_summaries', '--ways=ours,ours_fed,keras',
                    '--seconds=0.2', '--rounds=2', '--warmup_seconds=0.2', '--json=%s' % out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '| mnist_with_summaries | 100 |' in result.stdout
    rows = json.loads(out.read_text())
    row, peak = rows
    assert set(row) >= {'model', 'ours', 'ours_fed', 'keras', 'pytorch', 'flops_per_step',
                        'peak_fraction'}
    assert row['model'] == 'mnist_with_summaries'
    assert row['ours'] > 0 and row['ours_fed'] > 0 and row['keras'] > 0
    assert row['pytorch'] is None  # not asked for
    # Keras' fastest setting is named, in the JSON and under the table, and every way's
    # windows are printed as min / median / max.
    assert re.fullmatch(r'jit_compile=(True|False), steps_per_execution=(1|10)',
                        row['variants']['keras'])
    assert 'mnist_with_summaries: keras ran %s.' % row['variants']['keras'] in result.stdout
    spread = re.search(r'^\| mnist_with_summaries \| ([\d,]+) / ([\d,]+) / ([\d,]+) \| - \| - \| '
                       r'[\d,]+ / [\d,]+ / [\d,]+ \| [\d,]+ / [\d,]+ / [\d,]+ \| - \|$',
                       result.stdout, re.M)
    assert spread, result.stdout
    low, median, high = (float(x.replace(',', '')) for x in spread.groups())
    assert low <= median <= high
    assert row['flops_per_step'] == 2 * 2 * 100 * (784 * 500 + 500 * 10) + 2 * 100 * 500 * 10
    assert 0 < row['peak_fraction'] < 2
    assert len(row['windows']['ours']) == 2
    assert peak['model'] == 'matmul_peak' and peak['gflops'] > 1


def test_bench_times_the_in_graph_loop_where_a_script_has_it(tmp_path):
    out = tmp_path / 'bench.json'
    result = _bench('--models=deep_cnn,mlp', '--ways=ours,ours_loop', '--seconds=0.2',
                    '--rounds=1', '--warmup_seconds=0', '--json=%s' % out)
    assert result.returncode == 0, result.stderr[-3000:]
    deep_cnn, mlp, _ = json.loads(out.read_text())
    assert deep_cnn['ours'] > 0 and deep_cnn['ours_loop'] > 0
    assert mlp['ours'] > 0 and mlp['ours_loop'] is None  # no --steps_per_run: not started
    assert 'errors' not in mlp and 'starting mlp/ours_loop' not in result.stdout
    assert re.search(r'^\| deep_cnn \| 100 \| [\d,]+ \| [\d,]+ \| - \| - \| - \| - \| - \| - \| '
                     r'- \| - \| - \|', result.stdout, re.M), result.stdout


def test_bench_rejects_an_unknown_model():
    result = _bench('--models=cnn_mnist,resnet')
    assert result.returncode != 0
    assert '--models: expected a comma-separated list of cnn_mnist' in result.stderr


def test_the_gpu_command_runs_its_cpu_path():
    """python -m bench.gpu --quick: without a GPU the same cases on the CPU (towers on logical
    CPUs), each in its own process, the pipelines, the evaluator beside a real run, the
    extrapolated wall time of the report's 60,000 steps."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONUNBUFFERED='1')
    env.setdefault('TF_CLASSICS_DATA', shared_data_root())
    out = subprocess.run([sys.executable, '-m', 'bench.gpu', '--quick'], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert re.search(r'^bench\.gpu, .*; TensorFlow 2\.21\.0$', text, re.M)
    assert re.search(r'^CPU flags: .*avx', text, re.M)
    assert re.search(r'^  1 tower fp32: [\d,]+ examples/s on /cpu:0$', text, re.M)
    assert re.search(r'^  2 towers bf16: [\d,]+ examples/s on /cpu:0, /cpu:1$', text, re.M)
    for pipeline in ('queue', 'dataset'):
        assert re.search(r'^  input pipeline: %s: [\d,]+ examples/s$' % pipeline, text, re.M)
    assert re.search(r'^eval\.py beside multi_gpu_train\.py \(10 steps, \d+ s\): train exit 0, '
                     r'\d+ evaluations beside it, final precision @ 1 0\.\d+, out of memory: no$',
                     text, re.M)
    assert re.search(r"^The report's 60,000 steps of 128 images: [\d.]+ minutes at the best rate",
                     text, re.M)


def _tiny_keras_fit(steps_per_execution):
    import keras
    net = keras.Sequential([keras.Input([4]), keras.layers.Dense(3)])
    net.compile(optimizer=keras.optimizers.SGD(0.01),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                steps_per_execution=steps_per_execution)
    data = tf.data.Dataset.from_tensors((np.ones([8, 4], np.float32),
                                         np.zeros([8], np.int64))).repeat()
    return net, peers.LongFit(net, data)


@pytest.mark.parametrize('steps_per_execution', [1, 5])
def test_keras_long_fit_times_windows_of_one_fit_and_holds_it_between_them(
        steps_per_execution):
    """One fit() for every window (its fixed cost paid once); between windows it does not
    train (it would take the cores from the other ways' windows)."""
    net, fit = _tiny_keras_fit(steps_per_execution)
    try:
        steps, elapsed = fit.window(0.2)
        assert steps >= 2 and elapsed >= 0.2 and steps % steps_per_execution == 0
        held = int(net.optimizer.iterations.numpy())
        time.sleep(0.3)
        assert int(net.optimizer.iterations.numpy()) == held
        steps2, _ = fit.window(0.1)
        assert steps2 >= 2 and steps2 % steps_per_execution == 0
        # the steps a window counts are the steps the optimiser took in it
        assert int(net.optimizer.iterations.numpy()) == held + steps2
    finally:
        fit.close()
    assert not fit._thread.is_alive()
    with pytest.raises(RuntimeError, match='the fit has ended'):
        fit.window(0.1)


class _FakeRun(object):
    def __init__(self, step_seconds, fail=False):
        if fail:
            raise ValueError('no compiler here')
        self.step_seconds, self.closed = step_seconds, False

    def window(self, seconds):
        return max(2, round(seconds / self.step_seconds)), seconds

    def close(self):
        self.closed = True


def test_the_fastest_peer_setting_is_kept_the_others_closed_a_failing_one_left_out():
    runs, lines = {}, []

    def start(name, step_seconds):
        runs[name] = _FakeRun(step_seconds, fail=name == 'broken')
        return runs[name]
    settings = [('slow', 0.1), ('fast', 0.01), ('broken', 0.001), ('middle', 0.05)]
    best, run = peers._fastest(settings, start, lambda r: r.window, 1.0, lambda s: s[0],
                               lines.append)
    assert best == ('fast', 0.01) and run is runs['fast'] and not run.closed
    assert runs['slow'].closed and runs['middle'].closed
    assert lines[0] == 'probe slow: 10.00 steps/s'
    assert lines[2] == "probe broken: failed, left out: ['no compiler here']"
    with pytest.raises(ValueError, match='no compiler here'):
        peers._fastest([('broken', 1)], start, lambda r: r.window, 1.0, lambda s: s[0],
                       lines.append)


def test_keras_tries_steps_per_execution_except_on_the_full_batch_mlp():
    assert peers.keras_settings('cnn_mnist') == peers.KERAS_SETTINGS
    assert peers.keras_settings('mlp') == [(False, 1), (True, 1)]


def test_pytorch_keeps_its_fastest_of_eager_channels_last_and_compile():
    """Where PyTorch is installed (the bench extra): the chosen setting is named and trains."""
    pytest.importorskip('torch')
    lines = []
    workload = peers.torch_workload('deep_cnn', 4, 0.05, log=lines.append)
    probed = [line.split(':')[0] for line in lines]
    assert probed[:2] == ['probe eager, nchw', 'probe eager, channels_last']
    assert probed[3].startswith('probe torch.compile, ')
    assert workload.variant in {p[len('probe '):] for p in probed}
    workload.step()
    workload.close()
