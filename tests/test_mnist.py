"""The MNIST scripts: parameter counts, a few real steps each, tags, log formats, errors."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from common import mnist_input
from conftest import flag_defaults
from conftest import run_script
from mnist import cnn_mnist
from mnist import deep_cnn
from mnist import mlp
from mnist import mnist_with_summaries


def _count(build):
    with tf.Graph().as_default():
        build()
        return sum(int(np.prod(v.shape)) for v in tf.compat.v1.trainable_variables())


def test_parameter_counts():
    # conv 5x5x1x32, conv 5x5x32x64, dense 3136x1024, dense 1024x10 (+ biases)
    assert _count(lambda: cnn_mnist.Model(0.001)) == 832 + 51264 + 3212288 + 10250
    assert _count(lambda: mnist_with_summaries.Model(0.001)) == 784 * 500 + 500 + 5010
    # conv 6x6x1x6, 5x5x6x12, 4x4x12x24, dense 1176x200, 200x10 (+ biases)
    assert _count(deep_cnn.Model) == 222 + 1812 + 4632 + 235400 + 2010


def test_mnist_input_batches_walk_shuffled_epochs():
    images = np.arange(10 * 28 * 28, dtype=np.uint8).reshape(10, 28, 28)
    ds = mnist_input.DataSet(images, np.arange(10, dtype=np.int32), seed=0)
    seen = np.concatenate([ds.next_batch(4)[1] for _ in range(5)])
    assert sorted(seen[:10]) == list(range(10)) and ds.epochs_completed == 1
    x, _ = ds.next_batch(3)
    assert x.shape == (3, 784) and x.dtype == np.float32 and x.max() <= 1.0


def _tags(logdir):
    acc = event_accumulator.EventAccumulator(logdir, size_guidance={'images': 1})
    acc.Reload()
    return acc


def test_mnist_with_summaries_fake_data_smoke(tmp_path):
    """The original's own smoke test."""
    result = run_script('mnist/mnist_with_summaries.py', '--fake_data', '--max_steps=10',
                        '--learning_rate=0.00', '--log_dir=%s' % tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Accuracy at step 0: ' in result.stdout


def test_mnist_with_summaries_real_steps(tmp_path):
    result = run_script('mnist/mnist_with_summaries.py', '--max_steps=101', '--test_every=50',
                        '--log_dir=%s' % tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    accs = re.findall(r'^Accuracy at step (\d+): (0\.\d+|1\.0)$', result.stdout, re.M)
    assert [int(s) for s, _ in accs] == [0, 50, 100]
    assert float(accs[-1][1]) > 0.8
    assert 'Adding run metadata for 99' in result.stdout
    train, test = _tags(str(tmp_path / 'train')), _tags(str(tmp_path / 'test'))
    scalars = train.Tags()['scalars']
    for layer in ('layer1', 'layer2'):
        for var in ('weights', 'biases'):
            for stat in ('mean', 'stddev', 'max', 'min'):
                assert '%s/%s/summaries/%s' % (layer, var, stat) in scalars
            assert '%s/%s/summaries/histogram' % (layer, var) in train.Tags()['histograms']
        assert layer + '/Wx_plus_b/pre_activations' in train.Tags()['histograms']
        assert layer + '/activations' in train.Tags()['histograms']
    # Exact tags, as the tutorial's code names them (no '_1' from scope uniquification).
    for tag in ('dropout/dropout_keep_probability', 'cross_entropy', 'accuracy'):
        assert tag in scalars and tag in test.Tags()['scalars']
    assert any(t.startswith('input_reshape/input/image') for t in train.Tags()['images'])
    assert 'step099' in train.Tags()['run_metadata']
    assert train.Tags()['graph']


def test_cnn_mnist_steps_evaluation_and_resume(tmp_path):
    model_dir = str(tmp_path / 'model')
    result = run_script('mnist/cnn_mnist.py', '--train_steps=60', '--model_dir=' + model_dir,
                        '--seed=3')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'probabilities = [[' in result.stderr
    assert re.search(r'loss = [\d.]+, step = 0', result.stderr)
    final = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\{'accuracy': 0\.\d+, 'loss': \d+\.\d+, 'global_step': 60\}", final)
    assert 'accuracy' in _tags(model_dir + '/eval').Tags()['scalars']
    assert 'loss' in _tags(model_dir).Tags()['scalars']

    again = run_script('mnist/cnn_mnist.py', '--train_steps=80', '--model_dir=' + model_dir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'Resuming from' in again.stdout
    assert again.stdout.strip().splitlines()[-1].endswith("'global_step': 80}")


def test_deep_cnn_steps(tmp_path):
    result = run_script('mnist/deep_cnn.py', '--max_steps=20', '--eval_every=10',
                        '--log_dir=%s' % tmp_path, '--seed=1')
    assert result.returncode == 0, result.stderr[-3000:]
    steps = re.findall(r'^step (\d+): test accuracy (0\.\d{4}), test loss', result.stdout, re.M)
    assert [int(s) for s, _ in steps] == [0, 10, 20]
    assert re.search(r'^Final test accuracy after 20 batches: 0\.\d{4}$', result.stdout, re.M)
    tags = _tags(str(tmp_path)).Tags()
    for tag in ('test/accuracy', 'train/accuracy', 'learning_rate', 'test/cross_entropy'):
        assert tag in tags['scalars']
    assert 'weights/conv1/weights' in tags['histograms']


def test_deep_cnn_learning_rate_schedule():
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        lrs = sess.run([deep_cnn.learning_rate(s) for s in (0, 2000, 100000)])
    assert lrs == pytest.approx([0.003, 0.0001 + 0.0029 / np.e, 0.0001], rel=1e-5)


def test_mlp_report_settings_first_step(tmp_path):
    result = run_script('mnist/mlp.py', '--num_steps=1', '--seed=0')
    assert result.returncode == 0, result.stderr[-3000:]
    loss = float(re.search(r'^Loss at step 0: (\d+\.\d{6})$', result.stdout, re.M).group(1))
    assert 1e4 <= loss <= 1e5  # raw pixels and stddev-1 weights: the report saw 73,913
    assert re.search(r'^Training accuracy: \d+\.\d%$', result.stdout, re.M)
    assert re.search(r'^Test accuracy: \d+\.\d%$', result.stdout, re.M)


def test_mlp_grids():
    assert len(mlp.REPORT_GRID) == 8 and len(mlp.FULL_GRID) == 12
    assert set(mlp.REPORT_GRID) <= set(mlp.FULL_GRID)
    assert (1024, 0.0001) in mlp.REPORT_GRID and (300, 0.01) not in mlp.REPORT_GRID


def test_mlp_plot_samples(tmp_path):
    pytest.importorskip('matplotlib')
    out = tmp_path / 'samples.png'
    result = run_script('mnist/mlp.py', '--plot_samples=%s' % out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 10000


def test_wrong_data_dir_and_corrupt_file(tmp_path, data_root):
    result = run_script('mnist/deep_cnn.py', '--data_dir=%s' % (tmp_path / 'none'),
                        '--log_dir=%s' % (tmp_path / 'log'),
                        env={'https_proxy': 'http://127.0.0.1:9', 'HTTPS_PROXY':
                             'http://127.0.0.1:9'})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith('error: MNIST file %s' % (tmp_path / 'none'))
    assert '--data_dir' in last and 'TF_CLASSICS_DATA' in last

    corrupt = tmp_path / 'corrupt'
    corrupt.mkdir()
    for name in os.listdir(os.path.join(data_root, 'mnist')):
        os.symlink(os.path.join(data_root, 'mnist', name), corrupt / name)
    os.unlink(corrupt / 'train-images-idx3-ubyte.gz')
    (corrupt / 'train-images-idx3-ubyte.gz').write_bytes(b'\x1f\x8b' + b'\0' * 100)
    result = run_script('cnn_mnist.py'.join(['mnist/', '']), '--data_dir=%s' % corrupt,
                        '--model_dir=%s' % (tmp_path / 'm'))
    assert result.returncode == 1
    assert re.search(r'^error: .*train-images-idx3-ubyte\.gz: checksum mismatch',
                     result.stderr.strip().splitlines()[-1])


def test_flag_defaults_are_the_originals():
    assert flag_defaults('mnist.cnn_mnist', [
        'model_dir', 'train_steps', 'batch_size', 'learning_rate']) == {
        'model_dir': '/tmp/mnist_convnet_model', 'train_steps': 20000, 'batch_size': 100,
        'learning_rate': 0.001}
    assert flag_defaults('mnist.mnist_with_summaries', [
        'fake_data', 'max_steps', 'learning_rate', 'dropout', 'data_dir', 'log_dir',
        'test_every']) == {
        'fake_data': False, 'max_steps': 1000, 'learning_rate': 0.001, 'dropout': 0.9,
        'data_dir': '/tmp/tensorflow/mnist/input_data',
        'log_dir': '/tmp/tensorflow/mnist/logs/mnist_with_summaries', 'test_every': 10}
    assert flag_defaults('mnist.deep_cnn', ['max_steps', 'batch_size']) == {
        'max_steps': 10000, 'batch_size': 100}
    assert flag_defaults('mnist.mlp', ['hidden_size', 'learning_rate', 'num_steps']) == {
        'hidden_size': 1024, 'learning_rate': 0.0001, 'num_steps': 301}
