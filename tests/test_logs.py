"""TensorFlow's own log lines: hidden by default, back with --tf_logs or TF_CPP_MIN_LOG_LEVEL,
each printed once (common/logs.py)."""

import collections
import os
import re
import subprocess
import sys

import tensorflow as tf  # noqa: F401  (imported before common.logs: no import hook here)

from common import logs
from helpers import REPO, run_script

# A line of TensorFlow's: C++ (I0000 ..., W1205 ...), its Python logger, absl's copy of it, the
# deprecation notes, the libraries' start-up lines.
TENSORFLOW_LINE = re.compile(
    r'^(?:[IWEF]\d{4} |(?:INFO|WARNING|ERROR):tensorflow:|WARNING: All log messages before absl'
    r'|Instructions for updating:|To enable the following instructions)')
CIFAR10_20_STEPS = ('cifar10/train.py', '--max_steps=20', '--min_fraction_of_examples_in_queue=0.01')


def _lines(result):
    return (result.stdout + result.stderr).splitlines()


def _tensorflow_lines(result):
    return [line for line in _lines(result) if TENSORFLOW_LINE.match(line)]


def test_short_cifar10_run_prints_its_own_lines_only(tmp_path):
    result = run_script(*CIFAR10_20_STEPS, '--train_dir=%s' % tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _tensorflow_lines(result) == []
    assert len(_lines(result)) <= 15, _lines(result)
    assert any(line.startswith('Filling queue with') for line in _lines(result))
    assert re.search(r': step 10, loss = ', result.stdout)


def test_short_deep_cnn_run_prints_its_own_lines_only(tmp_path):
    result = run_script('mnist/deep_cnn.py', '--max_steps=20', '--log_dir=%s' % tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _tensorflow_lines(result) == []
    assert len(_lines(result)) <= 15, _lines(result)
    assert re.search(r'^Final test accuracy after 20 batches: ', result.stdout, re.M)


def test_tf_logs_shows_tensorflow_lines_each_once(tmp_path):
    result = run_script(*CIFAR10_20_STEPS, '--train_dir=%s' % tmp_path, '--tf_logs')
    assert result.returncode == 0, result.stderr[-3000:]
    shown = _tensorflow_lines(result)
    assert 'INFO:tensorflow:Create CheckpointSaverHook.' in shown
    assert any('oneDNN custom operations are on' in line for line in shown)  # at the import
    assert any(line.startswith('WARNING:tensorflow:From ') for line in shown)  # deprecations
    # absl's handler printed each of the tensorflow logger's lines a second time, its own way
    assert not [line for line in _lines(result) if 'basic_session_run_hooks.py:' in line]
    repeated = [line for line, n in collections.Counter(_lines(result)).items()
                if n > 1 and line.startswith(('INFO:tensorflow:', 'WARNING:tensorflow:'))]
    assert repeated == []


def test_tf_cpp_min_log_level_of_the_user_is_kept(tmp_path):
    result = run_script('mnist/deep_cnn.py', '--max_steps=0', '--log_dir=%s' % tmp_path,
                        env={'TF_CPP_MIN_LOG_LEVEL': '0'})
    assert result.returncode == 0, result.stderr[-3000:]
    assert any('oneDNN custom operations are on' in line for line in _lines(result))


def test_tf_logs_on_the_command_line():
    assert logs.asked_for(['x', '--tf_logs'])
    assert logs.asked_for(['x', '--notf_logs', '--tf_logs=true'])
    assert not logs.asked_for(['x', '--tf_logs', '--notf_logs'])
    assert not logs.asked_for(['x', '--tf_logs=false'])
    assert not logs.asked_for(['x', '--', '--tf_logs'])
    assert not logs.asked_for(['x', '--tf_logs_dir=y'])


def test_before_tensorflow_keeps_what_the_user_set():
    environ = {}
    logs.before_tensorflow(['x'], environ)
    assert environ == {'TF_CPP_MIN_LOG_LEVEL': '3'}
    environ = {'TF_CPP_MIN_LOG_LEVEL': '1'}
    logs.before_tensorflow(['x'], environ)
    assert environ == {'TF_CPP_MIN_LOG_LEVEL': '1'}
    environ = {}
    logs.before_tensorflow(['x', '--tf_logs'], environ)
    assert environ == {}


IMPORT_COMMON = """
import os, sys
before = (dict(os.environ), list(sys.meta_path))
import common, common.logs, cifar10, mnist
print(dict(os.environ) == before[0], list(sys.meta_path) == before[1])
"""


def test_importing_the_shared_package_changes_nothing():
    env = {k: v for k, v in os.environ.items()
           if k not in ('TF_ENABLE_ONEDNN_OPTS', 'TF_CPP_MIN_LOG_LEVEL')}
    result = subprocess.run([sys.executable, '-c', IMPORT_COMMON], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['True', 'True']


def test_before_tensorflow_sets_onednn_and_hides_nothing_where_a_gpu_is_asked_for(monkeypatch):
    import common
    environ = {}
    common.before_tensorflow(['x'], environ)
    assert environ == {'TF_ENABLE_ONEDNN_OPTS': '1', 'TF_CPP_MIN_LOG_LEVEL': '3'}
    monkeypatch.setattr(logs, 'cpu_only_build', lambda: False)  # a TensorFlow with CUDA
    environ = {'TF_ENABLE_ONEDNN_OPTS': '0'}
    common.before_tensorflow(['x', '--num_gpus=2'], environ)
    assert environ == {'TF_ENABLE_ONEDNN_OPTS': '0', 'TF_CPP_MIN_LOG_LEVEL': '2'}
    environ = {'CUDA_VISIBLE_DEVICES': '0'}
    logs.before_tensorflow(['x'], environ)
    assert environ['TF_CPP_MIN_LOG_LEVEL'] == '2'
    assert not logs.gpu_asked_for(['x'], {'CUDA_VISIBLE_DEVICES': '-1'})
    # the CPU-only wheel loads no GPU library: its towers on logical CPUs are no GPU
    assert not logs.gpu_asked_for(['x', '--num_gpus=2'], {}, cpu_only=True)
    assert logs.gpu_asked_for(['x', '--num_gpus=2'], {}, cpu_only=False)


def test_towers_on_logical_cpus_print_no_tensorflow_line(tmp_path):
    """multi_gpu_train.py --num_gpus=2 with the CPU-only wheel (this venv's): the warning that
    the towers run on CPUs, and none of TensorFlow's lines."""
    assert logs.cpu_only_build()
    result = run_script('cifar10/multi_gpu_train.py', '--num_gpus=2', '--max_steps=2',
                        '--batch_size=16', '--min_fraction_of_examples_in_queue=0.005',
                        '--train_dir=%s' % tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _tensorflow_lines(result) == [], _tensorflow_lines(result)
    assert 'WARNING: 0 GPU(s) visible for 2 towers' in result.stderr


def test_one_tower_on_the_cpu_runs_without_a_warning(tmp_path):
    """The default, one tower, on a machine without a GPU: the original's CPU run, no word."""
    result = run_script('cifar10/multi_gpu_train.py', '--max_steps=1', '--batch_size=16',
                        '--min_fraction_of_examples_in_queue=0.005', '--train_dir=%s' % tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'GPU(s) visible' not in result.stdout + result.stderr
