"""Scale-out on TensorFlow's distributed runtime, on loopback: ps + workers, async and sync,
a dying worker, a restarted chief, an unreachable ps. Every process is bounded in time."""

import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import tensorflow as tf

from common import cluster
from conftest import REPO, run_script, shared_data_root

ARGS = ['--batch_size=16', '--min_fraction_of_examples_in_queue=0.005', '--log_frequency=5',
        '--checkpoint_steps=10']


def _launch(train_dir, *extra, workers=2, timeout=300, script='cifar10/multi_gpu_train.py'):
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run(
        [sys.executable, '-m', 'common.cluster', '--ps', '1', '--workers', str(workers), '--',
         script, '--train_dir=%s' % train_dir] + ARGS + list(extra),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _local_steps(output):
    return {int(w): int(n) for w, n in
            re.findall(r'^\[worker\d\] worker (\d): (\d+) local steps$', output, re.M)}


def _global_step(train_dir):
    return int(tf.train.latest_checkpoint(str(train_dir)).rsplit('-', 1)[1])


def test_async_two_workers_then_eval_and_chief_restart(tmp_path):
    train_dir = tmp_path / 'train'
    result = _launch(train_dir, '--max_steps=30')
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r'^\[ps0\] ps task 0 serving at grpc://127\.0\.0\.1:\d+$', result.stdout,
                     re.M)
    steps = _local_steps(result.stdout)
    assert sorted(steps) == [0, 1] and all(n > 0 for n in steps.values()), steps
    # Asynchronous: every worker step is one global step (a last racing step may overshoot).
    assert 30 <= _global_step(train_dir) <= 32
    assert sum(steps.values()) == _global_step(train_dir)
    assert re.search(r'^\[worker1\] \d{4}-.*: step \d+, loss = ', result.stdout, re.M)

    evaluation = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=%s' % train_dir,
                            '--eval_dir=%s' % (tmp_path / 'eval'), '--num_examples=100')
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    assert 'precision @ 1 = ' in evaluation.stdout

    # The chief restarted with the same train_dir (a fresh cluster) resumes from its checkpoint.
    before = _global_step(train_dir)
    again = _launch(train_dir, '--max_steps=%d' % (before + 10))
    assert again.returncode == 0, again.stdout[-3000:]
    assert '[worker0] Resuming from %s/model.ckpt-%d' % (train_dir, before) in again.stdout
    assert sum(_local_steps(again.stdout).values()) <= 12  # it continued, it did not restart
    assert _global_step(train_dir) >= before + 10


def test_sync_replicas_aggregate_both_workers(tmp_path):
    result = _launch(tmp_path, '--max_steps=10', '--sync_replicas')
    assert result.returncode == 0, result.stdout[-3000:]
    assert _global_step(tmp_path) == 10
    steps = _local_steps(result.stdout)
    assert sorted(steps) == [0, 1]
    # Each update waits for both workers' gradients: two worker steps per global step, plus
    # the steps whose gradients arrive stale or after the last update and are dropped (the
    # chief's initial tokens let a worker run a few steps ahead).
    assert 20 <= sum(steps.values()) <= 30, steps


def test_the_single_device_trainer_runs_as_a_cluster_too(tmp_path):
    result = _launch(tmp_path, '--max_steps=10', script='cifar10/train.py')
    assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(_local_steps(result.stdout)) == [0, 1]
    assert _global_step(tmp_path) >= 10


def test_a_dying_worker_leaves_the_other_training(tmp_path):
    ps_port, w0_port, w1_port = cluster.free_ports(3)
    hosts = ['--ps_hosts=127.0.0.1:%d' % ps_port,
             '--worker_hosts=127.0.0.1:%d,127.0.0.1:%d' % (w0_port, w1_port)]
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), PYTHONUNBUFFERED='1',
               TF_CPP_MIN_LOG_LEVEL='2')

    def start(job, index, log):
        return subprocess.Popen(
            [sys.executable, 'cifar10/multi_gpu_train.py', '--train_dir=%s' % tmp_path,
             '--max_steps=40', '--job_name=' + job, '--task_index=%d' % index] + ARGS + hosts,
            cwd=REPO, env=env, stdout=open(log, 'w'), stderr=subprocess.STDOUT)

    ps = start('ps', 0, tmp_path / 'ps.log')
    w0 = start('worker', 0, tmp_path / 'w0.log')
    w1 = start('worker', 1, tmp_path / 'w1.log')
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not re.search(
                r': step \d+, loss', (tmp_path / 'w1.log').read_text()):
            assert w1.poll() is None, (tmp_path / 'w1.log').read_text()[-2000:]
            time.sleep(0.5)
        w1.send_signal(signal.SIGKILL)
        assert w0.wait(timeout=240) == 0, (tmp_path / 'w0.log').read_text()[-3000:]
    finally:
        for proc in (w0, w1, ps):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
    assert _global_step(tmp_path) >= 40


def test_unreachable_ps_is_a_clear_error_after_a_bounded_wait(tmp_path):
    ps_port, worker_port = cluster.free_ports(2)  # nothing listens on ps_port
    start = time.time()
    result = run_script('cifar10/multi_gpu_train.py', '--train_dir=%s' % tmp_path,
                        '--ps_hosts=127.0.0.1:%d' % ps_port,
                        '--worker_hosts=127.0.0.1:%d' % worker_port, '--job_name=worker',
                        '--task_index=0', '--cluster_wait_secs=5', '--max_steps=5', *ARGS,
                        timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: the cluster (127.0.0.1:%d) could not be reached within --cluster_wait_secs=5'
        % ps_port)
    assert time.time() - start < 90


def _flags(**kw):
    values = dict(ps_hosts='', worker_hosts='', job_name=None, task_index=0)
    values.update(kw)
    return SimpleNamespace(**values)


def test_cluster_from_flags_and_tf_config(monkeypatch):
    monkeypatch.delenv('TF_CONFIG', raising=False)
    assert cluster.from_flags(_flags()) is None
    cl = cluster.from_flags(_flags(ps_hosts='a:1', worker_hosts='b:1,c:1', job_name='worker',
                                   task_index=1))
    assert (cl.job_name, cl.task_index, cl.num_workers) == ('worker', 1, 2)
    assert cl.spec.as_dict() == {'ps': ['a:1'], 'worker': ['b:1', 'c:1']}
    with pytest.raises(ValueError, match='task index 2, but only 2 worker'):
        cluster.from_flags(_flags(ps_hosts='a:1', worker_hosts='b:1,c:1', job_name='worker',
                                  task_index=2))
    with pytest.raises(ValueError, match='--job_name=ps|worker is needed'):
        cluster.from_flags(_flags(ps_hosts='a:1', worker_hosts='b:1'))

    monkeypatch.setenv('TF_CONFIG', '{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, '
                                    '"task": {"type": "ps", "index": 0}}')
    cl = cluster.from_flags(_flags())
    assert (cl.job_name, cl.task_index, cl.num_workers) == ('ps', 0, 1)
    monkeypatch.setenv('TF_CONFIG', '{"cluster": {}}')
    with pytest.raises(ValueError, match='TF_CONFIG is not'):
        cluster.from_flags(_flags())
