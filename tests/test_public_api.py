"""The safety net on TensorFlow's public API: no private TensorFlow method overridden, and no
decision taken on the words of a TensorFlow message (a patch release may reword them)."""

import importlib
import inspect
import os
import pkgutil

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from common import training
from common.errors import CheckpointMismatchError, DivergedError
from helpers import REPO, last_line, run_script

PACKAGES = ('common', 'cifar10', 'mnist')


def _project_classes():
    """Every class defined in the project's packages, with its module's name."""
    for package in PACKAGES:
        for info in pkgutil.iter_modules([os.path.join(REPO, package)]):
            module = importlib.import_module('%s.%s' % (package, info.name))
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__:
                    yield module.__name__, cls


def test_no_class_overrides_a_private_tensorflow_method():
    overridden = []
    for module, cls in _project_classes():
        tf_bases = [b for b in cls.__mro__[1:] if b.__module__.startswith('tensorflow')]
        for name, value in vars(cls).items():
            method = inspect.isfunction(value) or isinstance(
                value, (property, staticmethod, classmethod))
            if method and name.startswith('_') and not name.startswith('__') and any(
                    hasattr(b, name) for b in tf_bases):
                overridden.append('%s.%s.%s' % (module, cls.__name__, name))
    assert overridden == []


def _nan_histogram_error():
    """The error a histogram summary raises for a NaN, as a session run gives it."""
    with tf.Graph().as_default():
        values = tf.compat.v1.placeholder(tf.float32, [None])
        histogram = tf.compat.v1.summary.histogram('conv1/activations', values)
        with tf.compat.v1.Session() as sess:
            with pytest.raises(tf.errors.InvalidArgumentError) as caught:
                sess.run(histogram, {values: [np.nan]})
    return caught.value


def test_a_non_finite_histogram_is_a_divergence_whatever_the_message_says():
    error = _nan_histogram_error()
    diverged = training.divergence_in_summary(error, 7)
    assert isinstance(diverged, DivergedError) and diverged.step == 7
    assert str(diverged) == 'Model diverged with NaN or Inf in the summary conv1/activations ' \
                            'at step 7'
    # the same op failing with other words (a TensorFlow release that rewords it)
    reworded = tf.errors.InvalidArgumentError(error.node_def, error.op, 'non-finite input')
    assert str(training.divergence_in_summary(reworded, 7)) == str(diverged)
    # another op's error with the old words is not a divergence
    with tf.Graph().as_default():
        other = tf.constant(1.0, name='other')
        worded = tf.errors.InvalidArgumentError(
            other.op.node_def, other.op, 'Nan in summary histogram for: conv1/activations')
    assert training.divergence_in_summary(worded, 7) is None


def _saved(run_dir, dtype=tf.float32):
    """A checkpoint of one variable 'v' [3] in run_dir; returns its path."""
    with tf.Graph().as_default():
        v = tf.compat.v1.get_variable('v', [3], dtype=dtype)
        with tf.compat.v1.Session() as sess:
            sess.run(v.initializer)
            return checkpoints.saver().save(sess, os.path.join(run_dir, 'model.ckpt'),
                                            global_step=1)


def _restore(ckpt, dtype=tf.float32):
    with tf.Graph().as_default():
        tf.compat.v1.get_variable('v', [3], dtype=dtype)
        with tf.compat.v1.Session() as sess:
            checkpoints.saver().restore(sess, ckpt)


def test_a_checkpoint_that_cannot_be_restored_says_why_from_the_checkpoint_itself(tmp_path):
    ckpt = _saved(str(tmp_path))
    _restore(ckpt)  # restores
    with pytest.raises(CheckpointMismatchError) as caught:
        _restore(ckpt, tf.int32)
    assert str(caught.value) == ('the checkpoint %s cannot be restored into this model (v is '
                                 'float32 there, int32 here)' % ckpt)
    (data,) = [f for f in os.listdir(tmp_path) if '.data-' in f]
    with open(tmp_path / data, 'r+b') as f:
        f.truncate(4)
    with pytest.raises(CheckpointMismatchError) as caught:
        _restore(ckpt)
    assert str(caught.value).startswith(
        'the checkpoint %s cannot be restored into this model (the values of v cannot be '
        'read: ' % ckpt)
    assert checkpoints.check_checkpoint(ckpt, {'v': tf.Variable([0.0] * 3)}, 'x') is None


def test_a_damaged_checkpoint_stops_a_resumed_run_in_one_line(tmp_path):
    run_dir = tmp_path / 'run'
    args = ['--log_dir=%s' % run_dir, '--eval_every=100', '--checkpoint_steps=2']
    first = run_script('mnist/deep_cnn.py', '--max_steps=2', *args)
    assert first.returncode == 0, first.stderr[-3000:]
    (data,) = [f for f in os.listdir(run_dir) if f.startswith('model.ckpt-2.data-')]
    with open(run_dir / data, 'r+b') as f:
        f.truncate(16)
    again = run_script('mnist/deep_cnn.py', '--max_steps=4', *args)
    assert again.returncode == 1 and 'Traceback' not in again.stderr, again.stderr[-3000:]
    assert last_line(again.stderr).startswith(
        'error: the checkpoint %s cannot be restored into this model (the values of '
        % (run_dir / 'model.ckpt-2'))
    assert last_line(again.stderr).endswith('; use --fresh or another --log_dir')
