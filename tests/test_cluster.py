"""Scale-out on TensorFlow's distributed runtime, on loopback: ps + workers, async and sync,
a dying worker, a restarted chief, an unreachable ps. Every process is bounded in time."""

import ipaddress
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import tensorflow as tf

from common import cluster
from tools import cluster as launcher
from helpers import REPO, default_sigint, run_script, shared_data_root, wait_for_line

ARGS = ['--batch_size=16', '--min_fraction_of_examples_in_queue=0.005', '--log_frequency=5',
        '--checkpoint_steps=10']


def _launch(train_dir, *extra, workers=2, timeout=300, script='cifar10/dist_train.py'):
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run(
        [sys.executable, '-m', 'tools.cluster', '--ps', '1', '--workers', str(workers), '--',
         script, '--train_dir=%s' % train_dir] + ARGS + list(extra),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)


def _local_steps(output):
    return {int(w): int(n) for w, n in
            re.findall(r'^\[worker\d\] worker (\d): (\d+) local steps$', output, re.M)}


def _global_step(train_dir):
    return int(tf.train.latest_checkpoint(str(train_dir)).rsplit('-', 1)[1])


def test_async_two_workers_then_eval(tmp_path):
    train_dir = tmp_path / 'train'
    result = _launch(train_dir, '--max_steps=30')
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(r'^\[ps0\] ps task 0 serving at grpc://127\.0\.0\.1:\d+$', result.stdout,
                     re.M)
    steps = _local_steps(result.stdout)
    # Both workers end and say so, and each stepped: a worker runs its train op once before
    # its StopAtStepHook can stop it, so even one that joins after the 30th global step takes
    # a step of its own (whatever the timing: the ps serves until both workers have ended).
    assert sorted(steps) == [0, 1] and all(n >= 1 for n in steps.values()), steps
    # Asynchronous: every worker step is one global step. A worker stops after the first step
    # that it began at global step >= 29 (one each), and when step 29 was reached the other
    # worker may have had one step under way that began earlier: at most 30 + 2 in all. The
    # chief's last checkpoint is written when it stops, perhaps before the other's last step.
    assert 30 <= sum(steps.values()) <= 32, steps
    assert 30 <= _global_step(train_dir) <= sum(steps.values())

    evaluation = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=%s' % train_dir,
                            '--eval_dir=%s' % (tmp_path / 'eval'), '--num_examples=100')
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    assert 'precision @ 1 = ' in evaluation.stdout


def _children(pid):
    """The pids whose parent is pid."""
    found = []
    for stat in os.listdir('/proc'):
        try:
            with open('/proc/%s/stat' % stat) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat))
    return found


def _socket_inodes(pid):
    inodes = set()
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[8:-1])
    return inodes


def _listening(pid, inodes=None):
    """[(address, port)] of the listening TCP sockets in the /proc/net/tcp and tcp6 of process
    pid's network namespace: those of its socket inodes, or all."""
    found = []
    for table, size in (('tcp', 4), ('tcp6', 16)):
        with open('/proc/%d/net/%s' % (pid, table)) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state != '0A' or (inodes is not None and inode not in inodes):  # LISTEN
                    continue
                address, port = local.split(':')
                raw = bytes.fromhex(address)  # host-order 32-bit words
                raw = b''.join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.append((ipaddress.ip_address(raw), int(port, 16)))
    return found


def _interfaces(pid):
    """The network interfaces of process pid's namespace."""
    with open('/proc/%d/net/dev' % pid) as f:
        return sorted(line.split(':')[0].strip() for line in f.readlines()[2:])


def test_the_launchers_tasks_are_reachable_from_loopback_only(tmp_path):
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), TF_CPP_MIN_LOG_LEVEL='2')
    launcher = subprocess.Popen(
        [sys.executable, '-m', 'tools.cluster', '--ps', '1', '--workers', '1', '--',
         'cifar10/dist_train.py', '--train_dir=%s' % tmp_path, '--max_steps=100000'] + ARGS,
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=default_sigint)
    watchdog = threading.Timer(240, launcher.kill)
    watchdog.start()
    seen = []
    try:
        listening = re.compile(r'^\[(ps0|worker0)\] (ps|worker) task 0: listening on port '
                               r'(\d+) of every network interface here \((.*)\), '
                               r'unauthenticated: ')
        said = {}
        for line in launcher.stdout:  # until each task says its server listens
            seen.append(line)
            m = listening.match(line)
            if m:
                said[m.group(1)] = m.group(4)
            if len(said) == 2:
                break
        text = ''.join(seen)
        assert said == {'ps0': 'lo', 'worker0': 'lo'}, text
        own = [line for line in seen if line.startswith('cluster:')]  # the launcher's lines
        assert own == ['cluster: the tasks run in a private network namespace that has only '
                       'loopback: no other host can reach them\n'], text
        tasks = _children(launcher.pid)
        assert len(tasks) == 2, tasks
        for pid in tasks:
            sockets = _listening(pid, _socket_inodes(pid))
            assert sockets, pid  # the task's gRPC server, at least
            for address, port in sockets:
                if not address.is_loopback:  # a wildcard: every interface of its namespace
                    assert address.is_unspecified and _interfaces(pid) == ['lo'], (
                        address, port, _interfaces(pid))
    finally:
        launcher.send_signal(signal.SIGINT)
        try:
            launcher.wait(timeout=60)
        finally:
            watchdog.cancel()
            launcher.kill()
            launcher.stdout.close()


def test_the_launcher_says_so_in_one_line_where_no_private_network_can_be_made(tmp_path):
    script = tmp_path / 'task.py'  # a stand-in trainer: no server, it only says where it ran
    script.write_text('import socket\nprint(sorted(n for _, n in socket.if_nameindex()))\n')
    env = dict(os.environ, PATH=str(tmp_path))  # no unshare
    result = subprocess.run([sys.executable, '-m', 'tools.cluster', '--ps', '1', '--workers',
                             '1', '--', str(script)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    own = [line for line in result.stdout.splitlines() if line.startswith('cluster:')]
    assert own[0] == ("cluster: warning: no private network namespace here (no unshare command "
                      "on PATH (util-linux)): each task's unauthenticated gRPC server listens "
                      "on every interface of this machine while the cluster runs"), own
    assert len(own) == 2 and own[1].startswith('cluster: 1 worker(s) finished in ')
    here = sorted(name for _, name in socket.if_nameindex())
    assert '[worker0] %s' % here in result.stdout  # it ran in this machine's network


def test_sync_replicas_aggregate_both_workers(tmp_path):
    result = _launch(tmp_path, '--max_steps=10', '--sync_replicas')
    assert result.returncode == 0, result.stdout[-3000:]
    assert _global_step(tmp_path) == 10
    steps = _local_steps(result.stdout)
    # Training starts once both workers have joined, and both contribute gradients.
    assert sorted(steps) == [0, 1] and all(n > 0 for n in steps.values()), steps
    # Each update waits for two gradients: at least two worker steps per global step, plus
    # the steps whose gradients arrive stale or after the last update and are dropped (the
    # chief's initial tokens let a worker run a few steps ahead).
    assert 20 <= sum(steps.values()) <= 30, steps


def test_dist_train_without_a_cluster_is_one_line_and_the_tutorials_have_no_cluster_flags(
        tmp_path, monkeypatch):
    monkeypatch.delenv('TF_CONFIG', raising=False)
    result = run_script('cifar10/dist_train.py', '--train_dir=%s' % tmp_path, '--max_steps=5',
                        *ARGS, env={'TF_CONFIG': ''})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        'error: no cluster: give --ps_hosts, --worker_hosts, --job_name and --task_index, or '
        'TF_CONFIG (to train on this machine alone: train.py or multi_gpu_train.py)')
    assert not os.listdir(tmp_path)
    for script in ('cifar10/train.py', 'cifar10/multi_gpu_train.py'):
        result = run_script(script, '--ps_hosts=127.0.0.1:1', '--train_dir=%s' % tmp_path)
        assert result.returncode != 0 and 'Unknown command line flag' in result.stderr, script


class _Cluster(object):
    """A ps and two workers on loopback, started one by one, each logging to its own file."""

    def __init__(self, tmp_path, *extra):
        self.tmp_path = tmp_path
        ports = launcher.free_ports(3)
        self.args = ['--train_dir=%s' % (tmp_path / 'train'), '--ps_hosts=127.0.0.1:%d' % ports[0],
                     '--worker_hosts=127.0.0.1:%d,127.0.0.1:%d' % tuple(ports[1:])] + ARGS + \
            list(extra)
        self.env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), PYTHONUNBUFFERED='1',
                        TF_CPP_MIN_LOG_LEVEL='2')
        self.procs = []

    def start(self, job, index, log_name, *more):
        log = self.tmp_path / log_name
        proc = subprocess.Popen(
            [sys.executable, 'cifar10/dist_train.py', '--job_name=' + job,
             '--task_index=%d' % index] + self.args + list(more), cwd=REPO, env=self.env,
            stdout=open(log, 'w'), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc, log

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)




def test_a_dying_worker_leaves_the_other_training(tmp_path):
    c = _Cluster(tmp_path, '--max_steps=40')
    try:
        c.start('ps', 0, 'ps.log')
        w0, w0_log = c.start('worker', 0, 'w0.log')
        w1, w1_log = c.start('worker', 1, 'w1.log')
        wait_for_line(w1_log, r': step \d+, loss', w1)
        w1.send_signal(signal.SIGKILL)
        assert w0.wait(timeout=240) == 0, w0_log.read_text()[-3000:]
    finally:
        c.close()
    assert _global_step(tmp_path / 'train') >= 40


def test_a_worker_waits_for_a_late_chief_then_the_chief_alone_restarts(tmp_path):
    # Far more steps than the test runs: it stops the cluster itself.
    c = _Cluster(tmp_path, '--max_steps=100000', '--cluster_wait_secs=3')
    try:
        c.start('ps', 0, 'ps.log')
        w1, w1_log = c.start('worker', 1, 'w1.log')
        # No chief yet: the ps answers, so the worker waits past --cluster_wait_secs, saying so.
        wait_for_line(w1_log, r'^worker 1: waiting for the chief \(worker 0\) to initialise or '
                          r'restore the model$', w1)
        time.sleep(5)
        assert w1.poll() is None, w1_log.read_text()[-3000:]
        assert 'could not be reached' not in w1_log.read_text()
        # --tf_logs: TensorFlow's 'Saving checkpoints for N' lines, which tell a save happened
        w0, w0_log = c.start('worker', 0, 'w0.log', '--tf_logs')
        wait_for_line(w0_log, r'Saving checkpoints for [1-9]\d* into', w0)
        wait_for_line(w1_log, r': step \d+, loss', w1)
        w0.send_signal(signal.SIGKILL)  # the chief dies; ps and worker 1 go on
        w0.wait(timeout=30)
        kept = _global_step(tmp_path / 'train')
        logged = len(re.findall(r': step \d+, loss', w1_log.read_text()))
        wait_for_line(w1_log, r': step \d+, loss', w1, count=logged + 2)  # trains on, no chief
        w0, w0_log = c.start('worker', 0, 'w0_again.log', '--tf_logs')
        wait_for_line(w0_log, r'^Resuming from .*model\.ckpt-%d ' % kept, w0)
        wait_for_line(w0_log, r'Saving checkpoints for (\d+) into', w0)
        assert w1.poll() is None  # worker 1 trained on through the chief's restart
        wait_for_line(w0_log, r': step \d+, loss', w0)
    finally:
        c.close()
    assert _global_step(tmp_path / 'train') > kept


def test_unreachable_ps_is_a_clear_error_after_a_bounded_wait(tmp_path):
    ps_port, worker_port = launcher.free_ports(2)  # nothing listens on ps_port
    start = time.time()
    result = run_script('cifar10/dist_train.py', '--train_dir=%s' % tmp_path,
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
    assert cluster.from_settings(_flags()) is None
    cl = cluster.from_settings(_flags(ps_hosts='a:1', worker_hosts='b:1,c:1', job_name='worker',
                                   task_index=1))
    assert (cl.job_name, cl.task_index, cl.num_workers) == ('worker', 1, 2)
    assert cl.spec.as_dict() == {'ps': ['a:1'], 'worker': ['b:1', 'c:1']}
    with pytest.raises(ValueError, match='task index 2, but only 2 worker'):
        cluster.from_settings(_flags(ps_hosts='a:1', worker_hosts='b:1,c:1', job_name='worker',
                                  task_index=2))
    with pytest.raises(ValueError, match=re.escape('--job_name=ps|worker is needed')):
        cluster.from_settings(_flags(ps_hosts='a:1', worker_hosts='b:1'))

    monkeypatch.setenv('TF_CONFIG', '{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, '
                                    '"task": {"type": "ps", "index": 0}}')
    cl = cluster.from_settings(_flags())
    assert (cl.job_name, cl.task_index, cl.num_workers) == ('ps', 0, 1)
    monkeypatch.setenv('TF_CONFIG', '{"cluster": {}}')
    with pytest.raises(ValueError, match='TF_CONFIG is not'):
        cluster.from_settings(_flags())


def test_a_workers_step_line_counts_its_own_steps_and_skips_no_multiple(monkeypatch, capsys):
    from common import training
    clock = [1000.0]
    monkeypatch.setattr(training.time, 'time', lambda: clock[0])
    with tf.Graph().as_default():
        global_step = tf.compat.v1.train.get_or_create_global_step()
        loss = tf.constant(2.5)
        # Each local step moves the global step by 3, as if two other workers stepped too.
        step_op = global_step.assign_add(3)
        hook = training.StepLoggerHook(loss, batch_size=10, num_towers=2, log_frequency=5)
        with tf.compat.v1.train.MonitoredSession(hooks=[hook]) as sess:
            for _ in range(8):
                clock[0] += 0.5  # this worker: 0.5 s a step
                sess.run(step_op)
    lines = re.findall(r': step (\d+), loss = 2\.50 \(([\d.]+) examples/sec; ([\d.]+) sec/batch\)',
                       capsys.readouterr().out)
    # global steps read before each run: 0 3 6 9 12 15 18 21; a line at the first step when it
    # is a multiple of 5 (step 0, as the original), then one per multiple of 5 passed
    assert [int(s) for s, _, _ in lines] == [0, 6, 12, 15, 21]
    # 2 towers x 10 images per 0.5 s of this worker: 40 examples/sec, 0.250 sec/batch (the
    # first line times its own step, which this test's clock does not advance)
    assert {(r, b) for _, r, b in lines[1:]} == {('40.0', '0.250')}
