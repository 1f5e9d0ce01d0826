"""The CIFAR-10 tutorial: model, reader, tower gradient averaging, train/eval scripts."""

import dataclasses
import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.backend.event_processing import event_accumulator

from cifar10 import inputs
from cifar10 import model
from cifar10 import multi_gpu_train
from cifar10 import train_lib
from common import checkpoints
from common import data
from common import training
from helpers import default_sigint
from helpers import error_lines
from helpers import flag_defaults
from helpers import popen
from helpers import run_script
from helpers import wait_for_line

LOG_LINE = re.compile(r'^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}: step \d+, loss = \d+\.\d\d '
                      r'\(\d+\.\d examples/sec; \d+\.\d{3} sec/batch\)$', re.M)


def _num_params(**kwargs):
    with tf.Graph().as_default():
        model.inference(tf.zeros([2, 24, 24, 3]), **kwargs)
        return sum(int(np.prod(v.shape)) for v in tf.compat.v1.trainable_variables())


def test_parameter_count():
    assert _num_params() == 1068298
    # conv21 adds 102,464 weights; its extra pool shrinks local3's input from 6x6x64 to 3x3x64.
    assert _num_params(conv21=True) == 1068298 + 102464 - (2304 - 576) * 384


def _read_records(filenames, n, reader=inputs.read_cifar10):
    with tf.Graph().as_default():
        queue = tf.compat.v1.train.string_input_producer(filenames, shuffle=False)
        record = reader(queue)
        with tf.compat.v1.Session() as sess:
            coord = tf.compat.v1.train.Coordinator()
            threads = tf.compat.v1.train.start_queue_runners(sess, coord)
            out = [sess.run([record.label, record.uint8image]) for _ in range(n)]
            coord.request_stop()
            coord.join(threads)
    return out


def test_reader_synthetic_records(tmp_path):
    """Label byte then the R, G, B planes, each 32x32 row-major."""
    rng = np.random.RandomState(0)
    planes = rng.randint(0, 256, size=(3, 3, 32, 32)).astype(np.uint8)  # record, depth, h, w
    path = tmp_path / 'records.bin'
    path.write_bytes(b''.join(bytes([label]) + planes[i].tobytes()
                              for i, label in enumerate([7, 0, 9])))
    records = _read_records([str(path)], 3)
    for i, (label, image) in enumerate(records):
        assert label.tolist() == [[7, 0, 9][i]]
        assert image.shape == (32, 32, 3)
        np.testing.assert_array_equal(image, planes[i].transpose(1, 2, 0))
        assert image[0, 1, 2] == planes[i][2, 0, 1]  # blue, row 0, column 1


def test_reader_real_test_batch(data_root):
    batches = os.path.join(data_root, 'cifar10', data.CIFAR10_DIRNAME)
    (label, image), = _read_records(data.cifar10_test_files(batches), 1)
    assert label.tolist() == [3]
    np_images, _ = data.read_cifar10_numpy(data.cifar10_test_files(batches))
    np.testing.assert_array_equal(image, np_images[0])


def test_eval_inputs_come_in_file_order(data_root):
    """What makes eval's exact count honest: the first N examples are the first N records."""
    batches = os.path.join(data_root, 'cifar10', data.CIFAR10_DIRNAME)
    _, np_labels = data.read_cifar10_numpy(data.cifar10_test_files(batches))
    with tf.Graph().as_default():
        images, labels = inputs.inputs(data.cifar10_test_files(batches), 100, 1000)
        with tf.compat.v1.Session() as sess:
            coord = tf.compat.v1.train.Coordinator()
            threads = tf.compat.v1.train.start_queue_runners(sess, coord)
            got = np.concatenate([sess.run(labels) for _ in range(3)])
            img = sess.run(images)
            coord.request_stop()
            coord.join(threads)
    np.testing.assert_array_equal(got, np_labels[:300])
    assert img.shape == (100, 24, 24, 3)
    np.testing.assert_allclose(img.reshape(100, -1).mean(axis=1), 0, atol=1e-4)  # standardised


def _first_batches(images, labels, n=2):
    with tf.compat.v1.train.MonitoredSession() as sess:
        return [sess.run([images, labels]) for _ in range(n)]


@pytest.mark.parametrize('pipeline', [inputs.distorted_inputs, inputs.distorted_inputs_dataset])
def test_distorted_training_batches(data_root, pipeline):
    """Both training pipelines (queue, tf.data): 24x24 standardised images, shuffled labels."""
    batches = os.path.join(data_root, 'cifar10', data.CIFAR10_DIRNAME)
    with tf.Graph().as_default():
        images, labels = pipeline(data.cifar10_train_files(batches), 64, 0.01)
        assert images.shape.as_list() == [64, 24, 24, 3] and labels.shape.as_list() == [64]
        got = _first_batches(images, labels)
    for img, lab in got:
        flat = img.reshape(64, -1)
        np.testing.assert_allclose(flat.mean(axis=1), 0, atol=1e-4)
        np.testing.assert_allclose(flat.std(axis=1), 1, atol=1e-3)
        assert lab.min() >= 0 and lab.max() <= 9 and len(set(lab)) > 5
    assert not np.array_equal(got[0][0], got[1][0])


def test_average_gradients_is_the_mean():
    with tf.Graph().as_default():
        v = tf.Variable([0.0, 0.0])
        tower_grads = [[(tf.constant([1.0, 2.0]), v)], [(tf.constant([3.0, 6.0]), v)]]
        (grad, var), = multi_gpu_train.average_gradients(tower_grads)
        assert var is v
        with tf.compat.v1.Session() as sess:
            assert sess.run(grad).tolist() == [2.0, 4.0]


def _one_step(num_towers, images, labels, init=None):
    """One training step of multi_gpu_train's graph with num_towers towers on logical CPUs,
    the towers' batches (the halves of images with 2 towers) coming through its prefetch
    queue: which tower dequeues which half is a race, which the mean over the towers does not
    see.

    Returns (initial values, values after the step, step stats of the traced step).
    """
    with tf.Graph().as_default(), tf.device('/cpu:0'):
        tf.compat.v1.train.get_or_create_global_step()
        batch = len(images) // num_towers
        source = tf.queue.FIFOQueue(num_towers, [tf.float32, tf.int32],
                                    shapes=[(batch,) + images.shape[1:], [batch]])
        fill = source.enqueue_many([np.stack(np.split(images, num_towers)),
                                    np.stack(np.split(labels, num_towers))])
        batch_images, batch_labels = source.dequeue()
        devices = ['/cpu:%d' % i for i in range(num_towers)]
        config = dataclasses.replace(train_lib.DEFAULTS, batch_size=batch)
        train_op, _, summary_op = multi_gpu_train.training_graph(
            config, batch_images, batch_labels, devices)
        variables = tf.compat.v1.trainable_variables()
        config = tf.compat.v1.ConfigProto(device_count={'CPU': 2}, allow_soft_placement=False)
        with tf.compat.v1.Session(config=config) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            if init is not None:
                for v in variables:
                    v.load(init[v.op.name], sess)
            before = {v.op.name: sess.run(v) for v in variables}
            sess.run(fill)
            coord = tf.compat.v1.train.Coordinator()
            threads = tf.compat.v1.train.start_queue_runners(sess, coord)
            metadata = tf.compat.v1.RunMetadata()
            # the merged summaries evaluate with the step (no duplicate tags)
            sess.run([train_op, summary_op], options=tf.compat.v1.RunOptions(
                trace_level=tf.compat.v1.RunOptions.FULL_TRACE), run_metadata=metadata)
            after = {v.op.name: sess.run(v) for v in variables}
            coord.request_stop()
        coord.join(threads, stop_grace_period_secs=5, ignore_live_threads=True)
    return before, after, metadata.step_stats


def test_two_towers_equal_one_tower_on_the_combined_batch():
    rng = np.random.RandomState(1)
    images = rng.normal(size=(16, 24, 24, 3)).astype(np.float32)
    labels = rng.randint(0, 10, size=16).astype(np.int32)
    init, one, _ = _one_step(1, images, labels)
    _, two, stats = _one_step(2, images, labels, init=init)
    assert sorted(one) == sorted(two) and len(one) == 10
    for name in one:
        assert not np.array_equal(one[name], init[name]), name  # the step changed something
        np.testing.assert_allclose(two[name], one[name], rtol=1e-4, atol=1e-6, err_msg=name)

    nodes = {}
    for dev in stats.dev_stats:
        nodes.setdefault(dev.device.split('/')[-1], set()).update(
            n.node_name for n in dev.node_stats)
    # The convolutions' backward passes ran on their tower's device (variable reads stay with
    # the variables on /cpu:0).
    grad = 'tower_%d/gradients/tower_%d/conv2/Conv2D_grad/Conv2DBackpropFilter'
    assert grad % (1, 1) in nodes['device:CPU:1']
    assert grad % (1, 1) not in nodes['device:CPU:0']
    assert grad % (0, 0) in nodes['device:CPU:0']


# --- the scripts, as a user runs them --------------------------------------------------------

TRAIN_ARGS = ['--num_gpus=2', '--batch_size=16', '--min_fraction_of_examples_in_queue=0.005',
              '--checkpoint_steps=10', '--summary_steps=10', '--log_frequency=5', '--seed=1']


@pytest.fixture(scope='module')
def trained(tmp_path_factory, data_root):
    train_dir = str(tmp_path_factory.mktemp('cifar10_train'))
    result = run_script('cifar10/multi_gpu_train.py', '--max_steps=20', '--train_dir=' + train_dir,
                        *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    return train_dir, result


def test_two_tower_run_writes_checkpoints_logs_and_summaries(trained):
    train_dir, result = trained
    assert 'WARNING: 0 GPU(s) visible for 2 towers' in result.stderr
    assert 'Filling queue with 250 CIFAR images before starting to train.' in result.stdout
    lines = LOG_LINE.findall(result.stdout)
    # from step 0, as the original
    assert [int(re.search(r'step (\d+)', l).group(1)) for l in lines] == [0, 5, 10, 15]
    assert tf.train.latest_checkpoint(train_dir).endswith('model.ckpt-20')
    assert os.path.exists(os.path.join(train_dir, 'model.ckpt-10.index'))
    saved, = glob.glob(os.path.join(train_dir, 'flags-*.json'))
    flags = json.load(open(saved))['flags']
    assert flags['num_gpus'] == 2 and flags['max_steps'] == 20 and flags['batch_size'] == 16

    acc = event_accumulator.EventAccumulator(train_dir, size_guidance={'images': 1})
    acc.Reload()
    tags = acc.Tags()
    # Activation tags are the activation op's name ('conv1/conv1'), tower prefix stripped.
    for tag in ('learning_rate', 'conv1/conv1/sparsity', 'local3/local3/sparsity',
                'cross_entropy', 'cross_entropy (raw)', 'total_loss', 'total_loss (raw)',
                'local3/weight_loss (raw)', 'conv1/weight_loss (raw)',
                'softmax_linear/weight_loss'):
        assert tag in tags['scalars'], tag
    for tag in ('conv1/conv1/activations', 'softmax_linear/softmax_linear/activations',
                'conv1/weights',
                'conv1/weights/gradients', 'local4/biases/gradients'):
        assert tag in tags['histograms'], tag
    assert any(t.startswith('images/image') for t in tags['images'])
    assert not any(t.startswith('tower_') for t in tags['scalars'] + tags['histograms'])


def test_single_device_trainer_with_tf_data_input_and_xla(tmp_path):
    result = run_script('cifar10/train.py', '--max_steps=3', '--batch_size=16',
                        '--input_pipeline=dataset', '--xla', '--log_frequency=1',
                        '--min_fraction_of_examples_in_queue=0.005',
                        '--train_dir=%s' % (tmp_path / 'train'))
    assert result.returncode == 0, result.stderr[-3000:]
    assert [int(s) for s in re.findall(r'step (\d+), loss', result.stdout)] == [0, 1, 2]
    assert tf.train.latest_checkpoint(str(tmp_path / 'train')).endswith('model.ckpt-3')


def test_eval_run_once_prints_precision(trained, tmp_path):
    train_dir, _ = trained
    result = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=' + train_dir,
                        '--eval_dir=' + str(tmp_path), '--num_examples=200', '--batch_size=64')
    assert result.returncode == 0, result.stderr[-3000:]
    match = re.search(r'^\d{4}-.*: precision @ 1 = (\d\.\d{3})$', result.stdout, re.M)
    assert match, result.stdout
    acc = event_accumulator.EventAccumulator(str(tmp_path))
    acc.Reload()
    (event,) = acc.Scalars('Precision @ 1')
    assert event.step == 20
    assert abs(event.value - float(match.group(1))) < 5e-4
    # exactly 200 counted: the precision is a multiple of 1/200
    assert abs(event.value * 200 - round(event.value * 200)) < 1e-3


def test_resume_continues_the_global_step(trained):
    train_dir, _ = trained
    result = run_script('cifar10/multi_gpu_train.py', '--max_steps=30', '--train_dir=' + train_dir,
                        *TRAIN_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Resuming from %s' % os.path.join(train_dir, 'model.ckpt-20') in result.stdout
    steps = [int(s) for s in re.findall(r': step (\d+),', result.stdout)]
    assert steps == [20, 25]  # its first step, a multiple of --log_frequency, is logged
    assert tf.train.latest_checkpoint(train_dir).endswith('model.ckpt-30')
    assert len(glob.glob(os.path.join(train_dir, 'flags-*.json'))) >= 1


def test_fresh_moves_the_old_run_aside(tmp_path, data_root):
    train_dir = tmp_path / 'run'
    train_dir.mkdir()
    (train_dir / 'keep.txt').write_text('old work')
    result = run_script('cifar10/train.py', '--fresh', '--max_steps=2', '--batch_size=8',
                        '--min_fraction_of_examples_in_queue=0.001', '--train_dir=%s' % train_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    aside, = glob.glob(str(tmp_path / 'run.old-*'))
    assert open(os.path.join(aside, 'keep.txt')).read() == 'old work'
    assert tf.train.latest_checkpoint(str(train_dir)).endswith('model.ckpt-2')


def test_missing_data_gives_one_clear_error(tmp_path):
    result = run_script('cifar10/multi_gpu_train.py', '--data_dir=%s' % (tmp_path / 'none'),
                        '--train_dir=%s' % (tmp_path / 'train'), '--max_steps=1',
                        env={'https_proxy': 'http://127.0.0.1:9', 'HTTPS_PROXY':
                             'http://127.0.0.1:9'})
    assert result.returncode == 1
    assert result.stdout == '' and len(result.stderr.strip().splitlines()) == 1, result.stderr
    last = result.stderr.strip()
    assert last.startswith('error: --data_dir=%s: CIFAR-10 binary batches not found in '
                           % (tmp_path / 'none'))
    assert not (tmp_path / 'none').exists()
    for part in ('--data_dir', 'TF_CLASSICS_DATA', data.CIFAR10_URL):
        assert part in last
    assert not (tmp_path / 'train').exists()  # nothing started, nothing to lose


def test_eval_without_checkpoint_run_once(tmp_path):
    result = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=%s' % tmp_path,
                        '--eval_dir=%s' % (tmp_path / 'eval'))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: no checkpoint in --checkpoint_dir=%s' % tmp_path)


def test_flag_defaults_are_the_originals():
    assert flag_defaults('cifar10.multi_gpu_train', [
        'batch_size', 'data_dir', 'use_fp16', 'train_dir', 'max_steps', 'num_gpus',
        'log_device_placement', 'log_frequency', 'checkpoint_steps', 'summary_steps',
        'min_fraction_of_examples_in_queue', 'optimizer', 'initial_learning_rate',
        'learning_rate_decay_factor', 'num_epochs_per_decay', 'conv21', 'fresh', 'seed',
        'input_pipeline', 'xla']) == {
        'batch_size': 128, 'data_dir': '/tmp/cifar10_data', 'use_fp16': False,
        'train_dir': '/tmp/cifar10_train', 'max_steps': 1000000, 'num_gpus': 1,
        'log_device_placement': False, 'log_frequency': 10, 'checkpoint_steps': 1000,
        'summary_steps': 100, 'min_fraction_of_examples_in_queue': 0.4, 'optimizer': 'sgd',
        'initial_learning_rate': 0.1, 'learning_rate_decay_factor': 0.1,
        'num_epochs_per_decay': 350.0, 'conv21': False, 'fresh': False, 'seed': None,
        'input_pipeline': 'queue', 'xla': False}
    assert flag_defaults('cifar10.eval', [
        'eval_dir', 'eval_data', 'checkpoint_dir', 'eval_interval_secs', 'num_examples',
        'run_once', 'batch_size', 'data_dir']) == {
        'eval_dir': '/tmp/cifar10_eval', 'eval_data': 'test', 'checkpoint_dir': '/tmp/cifar10_train',
        'eval_interval_secs': 300, 'num_examples': 10000, 'run_once': False, 'batch_size': 128,
        'data_dir': '/tmp/cifar10_data'}


def test_learning_rate_first_decays_at_step_136718():
    with tf.Graph().as_default():
        step = tf.compat.v1.placeholder(tf.int64, [])
        lr = model.learning_rate(step, 128)
        with tf.compat.v1.Session() as sess:
            assert sess.run(lr, {step: 136717}) == pytest.approx(0.1)
            assert sess.run(lr, {step: 136718}) == pytest.approx(0.01)


def test_bad_flag_value_is_one_clear_error(tmp_path):
    result = run_script('cifar10/multi_gpu_train.py', '--num_gpus=0',
                        '--train_dir=%s' % tmp_path)
    assert result.returncode == 2  # a bad command line (docs/changes.md, exit statuses)
    assert result.stderr == ('error: flag --num_gpus=0: 0 is not a positive integer (see '
                             '--helpfull)\n')
    assert not os.listdir(tmp_path)


def test_fp16_model_trains_a_step():
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        images = tf.random.normal([4, 24, 24, 3], seed=1)
        logits = model.inference(images, use_fp16=True)
        total_loss = model.loss(logits, tf.constant([0, 1, 2, 3]))
        train_op = model.train(total_loss, global_step, model.Hyperparameters(batch_size=4))
        assert tf.compat.v1.trainable_variables()[0].dtype.base_dtype == tf.float16
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(train_op)
            assert np.isfinite(sess.run(total_loss)) and sess.run(global_step) == 1


def test_eval_skips_a_checkpoint_rotated_away(tmp_path, capsys):
    from cifar10 import eval as cifar10_eval
    with tf.Graph().as_default():
        tf.compat.v1.get_variable('v', [1])
        saver = tf.compat.v1.train.Saver()
        writer = tf.compat.v1.summary.FileWriter(str(tmp_path))
        result = cifar10_eval.eval_once(saver, writer, None, None,
                                        str(tmp_path / 'model.ckpt-500'), 10, 10)
        writer.close()
    assert result is None
    assert 'model.ckpt-500 is gone (rotated away?), skipped' in capsys.readouterr().out


def test_eval_names_the_missing_file_of_a_checkpoint_rotated_away_mid_restore(tmp_path, capsys):
    """The trainer deletes a checkpoint while the evaluator restores it: one line naming the
    vanished checkpoint, not Saver.restore's guess that the graph does not match."""
    import glob
    from cifar10 import eval as cifar10_eval
    with tf.Graph().as_default():
        var = tf.compat.v1.get_variable('v', [1])
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as sess:
            sess.run(var.initializer)
            ckpt = saver.save(sess, str(tmp_path / 'model.ckpt'), global_step=3)

        class Rotating(object):
            """The data file is gone when the restore reads it, the index right after."""

            def restore(self, sess, path):
                for f in glob.glob(path + '.data-*'):
                    os.remove(f)
                try:
                    saver.restore(sess, path)
                finally:
                    os.remove(path + '.index')

        writer = tf.compat.v1.summary.FileWriter(str(tmp_path))
        result = cifar10_eval.eval_once(Rotating(), writer, None, None, ckpt, 10, 10)
        writer.close()
    assert result is None
    line, = [x for x in capsys.readouterr().out.splitlines() if 'is gone' in x]
    assert line.endswith(': checkpoint %s is gone (rotated away?), skipped' % ckpt), line
    assert 'Restoring from checkpoint failed' not in line and 'error:' not in line


def test_eval_polls_waits_evaluates_each_checkpoint_once_and_stops_on_ctrl_c(trained, tmp_path):
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from helpers import REPO, shared_data_root
    train_dir, _ = trained
    watched = tmp_path / 'train'
    watched.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED='1', TF_CLASSICS_DATA=shared_data_root())
    proc = subprocess.Popen(
        [sys.executable, 'cifar10/eval.py', '--checkpoint_dir=%s' % watched,
         '--eval_dir=%s' % (tmp_path / 'eval'), '--eval_interval_secs=1', '--num_examples=100',
         '--batch_size=50'], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, preexec_fn=default_sigint)
    lines = []

    def wait_for(pattern, limit=120):
        deadline = time.time() + limit
        while time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if re.search(pattern, line):
                return True
        return False

    try:
        assert wait_for(r'no checkpoint in .* yet; waiting'), ''.join(lines)
        # A checkpoint appears (the 'checkpoint' state file last, as the Saver writes it).
        for f in glob.glob(os.path.join(train_dir, 'model.ckpt-20.*')):
            shutil.copy(f, watched)
        (watched / 'checkpoint').write_text('model_checkpoint_path: "model.ckpt-20"\n')
        assert wait_for(r'precision @ 1 = \d\.\d{3}$'), ''.join(lines)
        time.sleep(4)  # several more polls: the same checkpoint is not evaluated again
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines.append(out)
    assert ''.join(lines).count('precision @ 1') == 1
    assert proc.returncode == 130  # Ctrl-C, as every program
    assert 'Interrupted: evaluator stopped.' in err and 'Traceback' not in err


# --- robustness: divergence, checkpoints of another model, kill -9, rotation -----------------

SMALL = ['--batch_size=16', '--min_fraction_of_examples_in_queue=0.005', '--log_frequency=1']
DIVERGED = re.compile(r'^error: Model diverged with (loss = (NaN|-?Inf)( in tower \d)?|NaN or Inf '
                      r'in the (variables|summary \S+)) at step (\d+); the last checkpoint, '
                      r'(\S+), is kept \(finite, written before step \d+\); try a lower '
                      r'--initial_learning_rate$')




def test_check_finite_names_the_tower():
    training.check_finite([1.0, 2.0], 3)
    with pytest.raises(training.DivergedError, match=r'^Model diverged with loss = Inf in tower '
                                                     r'1 at step 7$'):
        training.check_finite(np.array([1.0, np.inf], np.float32), 7)
    with pytest.raises(training.DivergedError, match=r'loss = NaN at step 2$'):
        training.check_finite(np.float16('nan'), 2)


def test_a_diverging_run_ends_in_one_line_and_keeps_a_finite_checkpoint(tmp_path, data_root):
    train_dir = tmp_path / 'train'
    # A checkpoint every step: the guard must refuse the first one with a NaN or Inf in it.
    result = run_script('cifar10/multi_gpu_train.py', '--num_gpus=2', '--max_steps=50',
                        '--initial_learning_rate=1e8', '--checkpoint_steps=1',
                        '--train_dir=%s' % train_dir, *SMALL)
    assert result.returncode == 1, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line == result.stderr.strip().splitlines()[-1]
    match = DIVERGED.match(line)
    assert match, line
    bad_step, kept = int(match.group(5)), match.group(6)
    assert kept == tf.train.latest_checkpoint(str(train_dir))
    assert int(kept.rsplit('-', 1)[1]) <= bad_step  # nothing saved from the bad step on
    reader = tf.train.load_checkpoint(kept)
    for name, dtype in reader.get_variable_to_dtype_map().items():
        if dtype.is_floating:
            assert np.all(np.isfinite(reader.get_tensor(name))), name
    # It resumes from there (and diverges again, in one line).
    again = run_script('cifar10/multi_gpu_train.py', '--num_gpus=2', '--max_steps=50',
                       '--initial_learning_rate=1e8', '--checkpoint_steps=1',
                       '--train_dir=%s' % train_dir, *SMALL)
    assert 'Resuming from %s' % kept in again.stdout
    assert again.returncode == 1 and DIVERGED.match(error_lines(again.stderr)[-1])


@pytest.fixture(scope='module')
def conv21_run(tmp_path_factory, data_root):
    train_dir = str(tmp_path_factory.mktemp('conv21') / 'train')
    result = run_script('cifar10/train.py', '--conv21', '--max_steps=2', '--train_dir=' + train_dir,
                        *SMALL)
    assert result.returncode == 0, result.stderr[-3000:]
    return train_dir


def test_eval_takes_the_model_flags_from_the_trainer(conv21_run, tmp_path):
    result = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=' + conv21_run,
                        '--eval_dir=%s' % tmp_path, '--num_examples=50', '--batch_size=50')
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"^Model flags from the trainer's %s/flags-\d{8}-\d{6}\.json: --conv21=True "
                     r"--use_fp16=False$" % re.escape(conv21_run), result.stdout, re.M), \
        result.stdout
    assert re.search(r'precision @ 1 = \d\.\d{3}$', result.stdout, re.M)


def test_eval_refuses_a_model_flag_that_contradicts_the_trainer(conv21_run, tmp_path):
    result = run_script('cifar10/eval.py', '--run_once', '--noconv21',
                        '--checkpoint_dir=' + conv21_run, '--eval_dir=%s' % tmp_path)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    (line,) = error_lines(result.stderr)
    assert re.match(r'^error: --conv21=False, but the checkpoints in --checkpoint_dir=%s were '
                    r'trained with --conv21=True \(flags-\d{8}-\d{6}\.json\)$'
                    % re.escape(conv21_run), line), line


def test_resuming_with_other_model_flags_is_refused_and_changes_nothing(conv21_run):
    before = sorted(os.listdir(conv21_run))
    result = run_script('cifar10/train.py', '--max_steps=4', '--train_dir=' + conv21_run, *SMALL)
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    (line,) = error_lines(result.stderr)
    assert line.startswith('error: the checkpoint in %s was trained with --conv21=True '
                           '(flags-' % conv21_run), line
    assert 'this run has --conv21=False; give --conv21=True, or --fresh' in line
    assert sorted(os.listdir(conv21_run)) == before


def test_a_foreign_checkpoint_is_one_line_naming_the_file(conv21_run, tmp_path, data_root):
    import shutil
    foreign = tmp_path / 'foreign'  # the checkpoint without the trainer's saved flags
    foreign.mkdir()
    for f in glob.glob(os.path.join(conv21_run, 'model.ckpt-2.*')):
        shutil.copy(f, foreign)
    (foreign / 'checkpoint').write_text('model_checkpoint_path: "model.ckpt-2"\n')
    ckpt = str(foreign / 'model.ckpt-2')
    evaluation = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=%s' % foreign,
                            '--eval_dir=%s' % (tmp_path / 'eval'))
    assert evaluation.returncode == 1 and 'Traceback' not in evaluation.stderr
    (line,) = error_lines(evaluation.stderr)
    assert line.startswith('error: the checkpoint %s does not match the model evaluated (' % ckpt)
    resume = run_script('cifar10/train.py', '--max_steps=4', '--train_dir=%s' % foreign, *SMALL)
    assert resume.returncode == 1 and 'Traceback' not in resume.stderr
    (line,) = error_lines(resume.stderr)
    assert line.startswith('error: the checkpoint %s does not match this model (' % ckpt), line
    assert line.endswith('); use --fresh or another --train_dir')
    assert tf.train.latest_checkpoint(str(foreign)) == ckpt






def test_kill_9_mid_run_then_the_same_command_finishes(tmp_path, data_root):
    train_dir = tmp_path / 'train'
    args = ['--num_gpus=2', '--max_steps=60', '--checkpoint_steps=10',
            '--train_dir=%s' % train_dir] + SMALL
    log = tmp_path / 'first.log'
    proc = popen('cifar10/multi_gpu_train.py', args, log)
    try:
        wait_for_line(log, r': step (3[3-9]|[4-5]\d), loss', proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL  # killed, not finished
    finally:
        if proc.poll() is None:
            proc.kill()
    last_logged = max(int(s) for s in re.findall(r': step (\d+), loss', log.read_text()))
    left = checkpoints.step_of(checkpoints.latest(str(train_dir)))
    assert 30 <= left < 60  # the first run died before --max_steps, past a checkpoint
    result = run_script('cifar10/multi_gpu_train.py', *args)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = int(re.search(r'^Resuming from .*model\.ckpt-(\d+) ', result.stdout, re.M).group(1))
    assert resumed == left  # from the checkpoint the first run left
    assert resumed >= last_logged - 10  # at most one checkpoint interval lost
    assert int(re.findall(r': step (\d+), loss', result.stdout)[0]) >= resumed
    assert checkpoints.latest(str(train_dir)).endswith('model.ckpt-60')


def test_the_evaluator_polls_beside_a_trainer_that_rotates_its_checkpoints(tmp_path, data_root):
    train_dir, eval_log = tmp_path / 'train', tmp_path / 'eval.log'
    # A checkpoint every step and 5 kept: they rotate while the evaluator lists and restores.
    evaluator = popen('cifar10/eval.py', [
        '--checkpoint_dir=%s' % train_dir, '--eval_dir=%s' % (tmp_path / 'eval'),
        '--eval_interval_secs=1', '--num_examples=64', '--batch_size=64'], eval_log)
    try:
        result = run_script('cifar10/train.py', '--max_steps=120', '--checkpoint_steps=1',
                            '--train_dir=%s' % train_dir, *SMALL)
        assert result.returncode == 0, result.stderr[-3000:]
        assert len(glob.glob(str(train_dir / 'model.ckpt-*.index'))) == 5
        # The evaluator outlives the trainer and reaches its last checkpoint.
        acc_dir = str(tmp_path / 'eval')
        deadline = time.time() + 120
        steps = []
        while time.time() < deadline and 120 not in steps:
            assert evaluator.poll() is None, eval_log.read_text()[-3000:]
            acc = event_accumulator.EventAccumulator(acc_dir)
            acc.Reload()
            steps = [e.step for e in acc.Scalars('Precision @ 1')] if 'Precision @ 1' in \
                acc.Tags()['scalars'] else []
            time.sleep(1)
        evaluator.send_signal(signal.SIGINT)
        assert evaluator.wait(timeout=60) == 130
    finally:
        if evaluator.poll() is None:
            evaluator.kill()
    text = eval_log.read_text()
    assert 'Traceback' not in text and 'error:' not in text
    assert 120 in steps and len(steps) >= 2 and len(steps) == len(set(steps)), steps
    assert 'Interrupted: evaluator stopped.' in text


TOWER_LOSSES = """
import dataclasses, json, sys
import common
import tensorflow as tf
from cifar10 import multi_gpu_train, train_lib
from common import data, training
config = dataclasses.replace(train_lib.DEFAULTS, num_gpus=2, seed=1, input_pipeline='dataset',
                             min_fraction_of_examples_in_queue=0.01,
                             data_dir=data.resolve_data_dir('cifar10', '', False))
devices, session_config = train_lib.tower_session_config(config)
batches_dir = data.maybe_download_and_extract_cifar10(config.data_dir)
out = []
with training.seeded_graph(config.seed), tf.device('/cpu:0'):
    train_op, losses, _ = multi_gpu_train.training_graph_from_files(config, batches_dir, devices)
    with tf.compat.v1.Session(config=session_config) as sess:
        sess.run(tf.compat.v1.global_variables_initializer())
        coord = tf.compat.v1.train.Coordinator()
        threads = tf.compat.v1.train.start_queue_runners(sess, coord)
        for _ in range(20):
            out.append(sorted(float(x) for x in sess.run([train_op, losses])[1]))
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=5)
print('@@', json.dumps(out))
"""


def test_the_first_20_losses_are_the_recorded_ones(tmp_path):
    """The same seed gives the same first 20 losses as the code they were recorded with
    (tests/data/cifar10_first_losses.json: which code, machine, flags): a change of the
    trainers' layout must not change what they compute. Deterministic
    input (tf.data, seeded) and kernels (TF_DETERMINISTIC_OPS=1, oneDNN off). train.py: its
    event files' `total_loss (raw)` at steps 1-20. multi_gpu_train.py with 2 towers: which
    tower dequeues which of a step's two batches is a race, so each step's pair of tower
    losses is compared sorted; they come from its graph (multi_gpu_train.training_graph_from_files) run
    without summaries, since the input-image summary takes batches in a race too."""
    with open(os.path.join(os.path.dirname(__file__), 'data', 'cifar10_first_losses.json')) as f:
        before = json.load(f)
    env = {'TF_ENABLE_ONEDNN_OPTS': '0', 'TF_DETERMINISTIC_OPS': '1'}
    assert before['environment'] == env
    result = run_script('cifar10/train.py', '--train_dir=%s' % tmp_path, '--max_steps=20',
                        '--summary_steps=1', *before['flags'], env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    acc = event_accumulator.EventAccumulator(str(tmp_path), size_guidance={'scalars': 0})
    acc.Reload()
    got = [[e.step, e.value] for e in acc.Scalars('total_loss (raw)')]
    assert [s for s, _ in got] == [s for s, _ in before['train_py_total_loss_raw']]
    np.testing.assert_allclose([v for _, v in got],
                               [v for _, v in before['train_py_total_loss_raw']], rtol=1e-4)

    from helpers import REPO, shared_data_root
    towers_run = subprocess.run(
        [sys.executable, '-c', TOWER_LOSSES], cwd=REPO, capture_output=True, text=True,
        env=dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), TF_CPP_MIN_LOG_LEVEL='2',
                 **env), timeout=600)
    assert towers_run.returncode == 0, towers_run.stderr[-3000:]
    pairs = json.loads(towers_run.stdout.split('@@ ', 1)[1])
    np.testing.assert_allclose(pairs, before['multi_gpu_two_towers_sorted'], rtol=1e-4)


def test_precision_bf16_trains_and_the_evaluator_restores_its_checkpoint(tmp_path):
    train_dir = str(tmp_path / 'train')
    result = run_script('cifar10/train.py', '--precision=bf16', '--max_steps=3',
                        '--train_dir=' + train_dir, '--min_fraction_of_examples_in_queue=0.002',
                        '--input_pipeline=dataset')
    assert result.returncode == 0, result.stderr[-3000:]
    assert tf.train.latest_checkpoint(train_dir).endswith('model.ckpt-3')
    # The variables stay float32: the rewrite changes the arithmetic, not the checkpoint.
    shapes = tf.train.load_checkpoint(train_dir).get_variable_to_dtype_map()
    assert shapes['conv1/weights'] == tf.float32
    for precision in ('bf16', 'fp32'):
        evaluation = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=' + train_dir,
                                '--eval_dir=%s' % (tmp_path / precision), '--num_examples=100',
                                '--precision=' + precision)
        assert evaluation.returncode == 0, evaluation.stderr[-3000:]
        assert re.search(r'precision @ 1 = \d\.\d{3}$', evaluation.stdout, re.M)


def test_precision_bf16_sets_the_rewrite_and_says_when_the_cpu_emulates_it(monkeypatch, capsys):
    from common import provenance
    config = training.set_precision(tf.compat.v1.ConfigProto(), 'fp32')
    assert config == tf.compat.v1.ConfigProto()
    monkeypatch.setattr(provenance, 'cpu_model_and_flags', lambda: ('cpu', ['avx2', 'fma']))
    config = training.set_precision(tf.compat.v1.ConfigProto(), 'bf16')
    assert config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 == 1  # ON
    assert capsys.readouterr().err.strip() == (
        'WARNING: --precision=bf16: this CPU has no bfloat16 instructions (AVX512_BF16 or AMX): '
        'TensorFlow will emulate them, slower than fp32')
    monkeypatch.setattr(provenance, 'cpu_model_and_flags',
                        lambda: ('cpu', ['avx512_bf16', 'avx512f']))
    training.set_precision(tf.compat.v1.ConfigProto(), 'bf16')
    assert capsys.readouterr().err == ''
