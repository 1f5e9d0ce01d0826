"""The tests' fixtures (their helpers are in tests/helpers.py)."""

import os

import common

# Before any test imports TensorFlow: the oneDNN setting the scripts run with (their
# common.before_tensorflow() line), so that the tests run the kernels the scripts run.
common.cpu_defaults()

import pytest  # noqa: E402

from helpers import TINY_CIFAR10, run_script, shared_data_root


@pytest.fixture(scope='session')
def data_root():
    root = shared_data_root()
    if not os.path.isdir(os.path.join(root, 'cifar10')):
        pytest.fail('real data not found at %s: set TF_CLASSICS_DATA' % root)
    return root


@pytest.fixture(scope='session')
def tiny_cifar10_checkpoint(tmp_path_factory, data_root):
    """A CIFAR-10 --train_dir trained 3 steps by cifar10/train.py (TINY_CIFAR10), for the
    suites that need some checkpoint of the model (one per test process): its path. Tests
    that write into a run folder copy it first."""
    train_dir = str(tmp_path_factory.mktemp('tiny_cifar10') / 'train')
    result = run_script('cifar10/train.py', '--train_dir=' + train_dir, '--max_steps=3',
                        *TINY_CIFAR10)
    assert result.returncode == 0, result.stderr[-3000:]
    return train_dir
