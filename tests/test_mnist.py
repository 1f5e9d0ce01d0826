"""The MNIST scripts: parameter counts, a few real steps each, tags, log formats, errors."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from common import checkpoints
from helpers import flag_defaults
from helpers import run_script
from mnist import cnn_mnist
from mnist import deep_cnn
from mnist import input_data
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
    ds = input_data.DataSet(images, np.arange(10, dtype=np.int32), seed=0)
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
    # one line, naming the flag given; nothing printed before it, no folder made
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert result.stdout == ''
    last = result.stderr.strip()
    assert last.startswith('error: --data_dir=%s: MNIST file %s' % (tmp_path / 'none',
                                                                     tmp_path / 'none'))
    assert 'pass --data_dir' not in last
    assert not (tmp_path / 'none').exists() and not (tmp_path / 'log').exists()
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


# --- the originals' split --------------------------------------------------------------------

def test_read_data_sets_splits_as_the_original(data_root):
    mnist = input_data.read_data_sets(os.path.join(data_root, 'mnist'))
    assert (mnist.train.num_examples, mnist.validation.num_examples,
            mnist.test.num_examples) == (55000, 5000, 10000)
    # validation = the first 5,000 training images of the file, train = the rest
    assert list(mnist.validation.labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert list(mnist.train.labels[:10]) == [7, 3, 4, 6, 1, 8, 1, 0, 9, 8]
    assert list(mnist.test.labels[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert mnist.train.images.shape == (55000, 784) and mnist.validation.images.shape == (5000, 784)

    everything = input_data.read_data_sets(os.path.join(data_root, 'mnist'), validation_size=0,
                                            scale=False)
    assert (everything.train.num_examples, everything.validation.num_examples) == (60000, 0)
    assert list(everything.train.labels[:10]) == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert everything.train.images.dtype == np.uint8
    with pytest.raises(ValueError, match='between 0 and 60000'):
        input_data.read_data_sets(os.path.join(data_root, 'mnist'), validation_size=60001)

    fake = input_data.read_data_sets(None, fake_data=True)
    # the original's fake label: 0 (one-hot [1, 0, ..., 0])
    assert fake.validation.next_batch(2)[1].tolist() == [0, 0]


def test_each_script_trains_on_the_originals_split():
    # The tutorials read input_data's default split; Görner (deep_cnn) and the MLP report
    # kept no validation set.
    assert cnn_mnist.VALIDATION_SIZE == 5000
    assert mnist_with_summaries.VALIDATION_SIZE == 5000
    assert deep_cnn.VALIDATION_SIZE == 0
    assert mlp.VALIDATION_SIZE == 0


def test_mlp_prints_the_reports_training_set_shape():
    result = run_script('mnist/mlp.py', '--num_steps=1', '--seed=0')
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r'^Training set \(60000, 784\)$', result.stdout, re.M)


# --- the order of the batches ----------------------------------------------------------------

def test_epoch_stream_continues_where_it_stopped():
    images = np.zeros((10, 28, 28), np.uint8)
    labels = np.arange(10, dtype=np.int32)
    first = input_data.DataSet(images, labels, seed=7)
    for _ in range(3):
        first.next_batch(4)                     # 12 examples: into the second epoch
    resumed = input_data.DataSet(images, labels)  # another (random) seed
    resumed.seek(first.position, first.seed)
    for _ in range(4):
        assert first.next_batch(4)[1].tolist() == resumed.next_batch(4)[1].tolist()
    assert resumed.epochs_completed == first.epochs_completed == 2
    # each epoch is a permutation; epochs differ
    stream = input_data.DataSet(images, labels, seed=7)
    epochs = [sorted(stream.next_batch(10)[1]) for _ in range(3)]
    assert all(e == list(range(10)) for e in epochs)
    stream.seek(0)
    assert stream.next_batch(10)[1].tolist() != stream.next_batch(10)[1].tolist()


def _queue_ages(next_rows, batches, batch_size=100, capacity=1000):
    """For each row dequeued: how many rows were enqueued after it (the feeder keeps the
    queue full, so before batch j the first capacity + batch_size * j rows are in)."""
    ages = []
    for j in range(batches):
        rows = next_rows()
        ages.append(capacity + batch_size * j - 1 - rows)
    return np.concatenate(ages)


def test_shuffle_queue_input_matches_tensorflows_random_shuffle_queue():
    n, capacity, batch = 100000, 1000, 100   # n large: no wrap-around in 300 batches
    rows = np.arange(n, dtype=np.int64)
    sampler = cnn_mnist.ShuffleQueueInput(rows, rows, capacity=capacity, seed=0)
    start = sampler._next_row
    ours = _queue_ages(lambda: (sampler.next_batch(batch)[1] - start) % n, 300)

    # TensorFlow's queue, driven as numpy_input_fn's feeder drove it: refilled to capacity
    # (in row order) before each dequeue_many.
    with tf.Graph().as_default():
        queue = tf.queue.RandomShuffleQueue(capacity, capacity // 4, [tf.int64], shapes=[[]],
                                            seed=1)
        feed = tf.compat.v1.placeholder(tf.int64, [None])
        enqueue, dequeue, size = queue.enqueue_many([feed]), queue.dequeue_many(batch), queue.size()
        with tf.compat.v1.Session() as sess:
            fed = [0]

            def tf_rows():
                count = capacity - sess.run(size)
                sess.run(enqueue, {feed: np.arange(fed[0], fed[0] + count)})
                fed[0] += count
                return sess.run(dequeue)
            theirs = _queue_ages(tf_rows, 300)

    for ages in (ours, theirs):
        assert ages.min() >= 0 and len(np.unique(ages)) > 500
    assert len(np.unique(np.repeat(np.arange(300) * batch, batch) - ours)) == len(ours)  # rows
    # Each row stays with probability 0.9 per batch: mean age about 10 batches of rows.
    assert abs(ours.mean() - theirs.mean()) < 0.05 * theirs.mean()
    assert abs(np.median(ours) - np.median(theirs)) < 0.08 * np.median(theirs)
    assert abs(ours.std() - theirs.std()) < 0.08 * theirs.std()


def test_shuffle_queue_input_walks_the_set_from_a_random_row():
    rows = np.arange(5000, dtype=np.int64)
    starts = set()
    for seed in range(5):
        sampler = cnn_mnist.ShuffleQueueInput(rows, rows, seed=seed)
        starts.add(sampler._next_row)
        start = sampler._next_row
        seen = np.concatenate([sampler.next_batch(100)[1] for _ in range(41)])
        # 41 batches: 1,000 + 40 * 100 = 5,000 rows enqueued, each once
        assert len(np.unique(seen)) == len(seen) == 4100
        first = (sampler.next_batch(100)[1] - start) % 5000  # wrapped around once
        assert len(first) == 100
    assert len(starts) == 5


# --- divergence ------------------------------------------------------------------------------

def _assert_diverged(result, run_dir=None):
    """Exit status 1, one error line naming the step, no traceback; the latest checkpoint (if
    any) holds only finite values and is not later than the step that diverged."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    errors = [l for l in result.stderr.splitlines() if l.startswith('error:')]
    assert len(errors) == 1 and errors[0] == result.stderr.strip().splitlines()[-1]
    step = int(re.search(r'^error: Model diverged with .* at step (\d+); ', errors[0]).group(1))
    assert 'try a lower --' in errors[0]
    latest = tf.train.latest_checkpoint(run_dir) if run_dir else None
    if latest:
        assert latest in errors[0]
        assert int(latest.rsplit('-', 1)[1]) <= step
        reader = tf.train.load_checkpoint(latest)
        for name, dtype in reader.get_variable_to_dtype_map().items():
            if dtype.is_floating:
                assert np.isfinite(reader.get_tensor(name)).all(), name
    return step, latest


def test_cnn_mnist_diverges_in_one_line(tmp_path):
    model_dir = str(tmp_path / 'model')
    result = run_script('mnist/cnn_mnist.py', '--train_steps=50', '--learning_rate=1e10',
                        '--model_dir=' + model_dir, '--seed=1')
    step, latest = _assert_diverged(result, model_dir)
    assert latest  # the saver hook's checkpoint at step 0, from before the bad step
    assert "{'accuracy'" not in result.stdout


def test_mnist_with_summaries_diverges_in_one_line(tmp_path):
    result = run_script('mnist/mnist_with_summaries.py', '--max_steps=60', '--test_every=20',
                        '--checkpoint_steps=2', '--learning_rate=1e30',
                        '--log_dir=%s' % tmp_path, '--seed=1')
    step, latest = _assert_diverged(result, str(tmp_path))
    assert 'Final test accuracy' not in result.stdout


def test_deep_cnn_diverges_in_one_line(tmp_path):
    result = run_script('mnist/deep_cnn.py', '--max_steps=30', '--eval_every=5',
                        '--checkpoint_steps=1', '--max_learning_rate=1e6',
                        '--log_dir=%s' % tmp_path, '--seed=1')
    step, latest = _assert_diverged(result, str(tmp_path))
    assert latest and 'try a lower --max_learning_rate' in result.stderr
    assert 'Final test accuracy' not in result.stdout


def test_mlp_diverges_in_one_line():
    result = run_script('mnist/mlp.py', '--num_steps=5', '--learning_rate=1e30', '--seed=0')
    _assert_diverged(result)
    assert 'try a lower --learning_rate' in result.stderr


GRID_DRIVER = """
from absl import flags
from common import training
from mnist import mlp

def fake_run(*args, log=print, log_dir=None, precision='fp32'):
    hidden, lr = args[4], args[5]
    log('Loss at step 0: 1.0')
    if lr == 0.5:
        raise training.DivergedError(3 if hidden == 300 else 7, 'loss = NaN')
    return {'loss': 1.5, 'train_accuracy': 90.0, 'test_accuracy': 85.25}

mlp.run = fake_run
mlp.define_flags()
flags.FLAGS(['mlp.py', '--grid=report'])
mlp.main(['mlp.py'])
"""


def test_mlp_grid_marks_a_diverged_configuration_and_goes_on(tmp_path):
    driver = tmp_path / 'grid_driver.py'
    driver.write_text(GRID_DRIVER)
    result = run_script(str(driver))
    assert result.returncode == 0, result.stderr[-3000:]
    assert '  Model diverged with loss = NaN at step 3; on to the next configuration' in \
        result.stdout
    rows = re.findall(r'^\| (\d+) \| ([\d.e-]+) \| \S+ \| \S+ \| ([\d.]+|nan)%? \|$',
                      result.stdout, re.M)  # tools/report.py's pattern
    assert len(rows) == 8
    assert '| 300 | 0.5 | diverged@3 | - | nan |' in result.stdout.splitlines()
    assert '| 1024 | 0.5 | diverged@7 | - | nan |' in result.stdout.splitlines()
    assert '| 1024 | 0.0001 | 1.5 | 90.0% | 85.2% |' in result.stdout.splitlines()


# --- resuming --------------------------------------------------------------------------------

def _scalar_steps(logdir, tag):
    return [e.step for e in _tags(logdir).Scalars(tag)]


def test_deep_cnn_resumes_a_longer_run(tmp_path):
    args = ['--eval_every=10', '--checkpoint_steps=10', '--log_dir=%s' % tmp_path, '--seed=1']
    first = run_script('mnist/deep_cnn.py', '--max_steps=25', *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert 'Resuming from' not in first.stdout
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith('model.ckpt-25')
    again = run_script('mnist/deep_cnn.py', '--max_steps=40', *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'Resuming from %s' % (tmp_path / 'model.ckpt-25') in again.stdout
    steps = re.findall(r'^step (\d+): test accuracy', again.stdout, re.M)
    assert [int(s) for s in steps] == [30, 40]
    assert re.search(r'^Final test accuracy after 40 batches: 0\.\d{4}$', again.stdout, re.M)
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith('model.ckpt-40')
    reader = tf.train.load_checkpoint(str(tmp_path / 'model.ckpt-40'))
    assert reader.get_tensor('global_step') == 40
    assert reader.get_tensor('input_state/position') == 40 * 100  # batches of 100 handed out
    # the event file continues: each evaluation once (TensorBoard drops the first run's
    # final one, at step 25, where the second run starts)
    assert _scalar_steps(str(tmp_path), 'test/accuracy') == [0, 10, 20, 30, 40]

    # the in-graph loop (--steps_per_run) resumes it, evaluates and saves at the same steps
    loop = run_script('mnist/deep_cnn.py', '--max_steps=55', '--steps_per_run=7', *args)
    assert loop.returncode == 0, loop.stderr[-3000:]
    assert 'Resuming from %s' % (tmp_path / 'model.ckpt-40') in loop.stdout
    assert [int(s) for s in re.findall(r'^step (\d+): test accuracy', loop.stdout, re.M)] == [
        40, 50, 55]  # as without it: the start falls on --eval_every
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [checkpoints.step_of(p) for p in state.all_model_checkpoint_paths][-2:] == [50, 55]
    reader = tf.train.load_checkpoint(str(tmp_path / 'model.ckpt-55'))
    assert reader.get_tensor('global_step') == 55
    assert reader.get_tensor('input_state/position') == 55 * 100

    fresh = run_script('mnist/deep_cnn.py', '--max_steps=5', '--fresh', *args)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    assert 'Moved the previous' in fresh.stdout and 'Resuming from' not in fresh.stdout
    assert re.search(r'^Final test accuracy after 5 batches', fresh.stdout, re.M)

    other = run_script('mnist/mnist_with_summaries.py', '--max_steps=5', '--log_dir=%s' % tmp_path)
    assert other.returncode == 1 and 'Traceback' not in other.stderr
    assert re.match(r'error: the checkpoint .*model\.ckpt-5 does not match this model '
                    r'\(layer1/\S+ is not in it\); it was trained by deep_cnn\.py '
                    r'\(flags-\S+\.json\): continue it with deep_cnn\.py, or use --fresh or '
                    r'another --log_dir$',
                    other.stderr.strip().splitlines()[-1])


def test_mnist_with_summaries_resumes_a_longer_run(tmp_path):
    args = ['--test_every=10', '--checkpoint_steps=20', '--log_dir=%s' % tmp_path, '--seed=2']
    first = run_script('mnist/mnist_with_summaries.py', '--max_steps=25', *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith('model.ckpt-25')
    again = run_script('mnist/mnist_with_summaries.py', '--max_steps=45', *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'Resuming from %s' % (tmp_path / 'model.ckpt-25') in again.stdout
    accs = re.findall(r'^Accuracy at step (\d+): ', again.stdout, re.M)
    assert [int(s) for s in accs] == [30, 40]
    assert re.search(r'^Final test accuracy after 45 steps: (0\.\d+|1\.0)$', again.stdout, re.M)
    assert [os.path.basename(p) for p in tf.train.get_checkpoint_state(
        str(tmp_path)).all_model_checkpoint_paths] == ['model.ckpt-20', 'model.ckpt-25',
                                                       'model.ckpt-40', 'model.ckpt-45']
    reader = tf.train.load_checkpoint(str(tmp_path / 'model.ckpt-45'))
    assert reader.get_tensor('global_step') == 45
    assert reader.get_tensor('input_state/position') == (45 - 5) * 100  # 5 test steps
    assert _scalar_steps(str(tmp_path / 'test'), 'accuracy') == [0, 10, 20, 30, 40, 45]
    train_steps = _scalar_steps(str(tmp_path / 'train'), 'cross_entropy')
    assert train_steps == [i for i in range(45) if i % 10]


def test_cnn_mnist_refuses_another_models_checkpoint_in_one_line(tmp_path):
    other = run_script('mnist/deep_cnn.py', '--max_steps=2', '--eval_every=2',
                       '--log_dir=%s' % tmp_path)
    assert other.returncode == 0, other.stderr[-3000:]
    result = run_script('mnist/cnn_mnist.py', '--train_steps=4', '--model_dir=%s' % tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert re.match(r'error: the checkpoint .*model\.ckpt-2 does not match this model '
                    r'\(\S+ is not in it\); it was trained by deep_cnn\.py \(flags-\S+\.json\): '
                    r'continue it with deep_cnn\.py, or use --fresh or another --model_dir$',
                    result.stderr.strip().splitlines()[-1]), result.stderr[-2000:]
    assert tf.train.latest_checkpoint(str(tmp_path)).endswith('model.ckpt-2')
