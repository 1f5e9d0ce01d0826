"""What the step does around the kernels (docs/performance.md): the checkpoint hook's steps,
the benchmark's CIFAR-10 step, the profile run and the opt-in in-graph loop. No timing is
asserted here."""

import os

import numpy as np
import tensorflow as tf
from tensorflow.python.client import session as session_lib

from common import checkpoints
from common import training


def test_the_checkpoint_hook_saves_every_save_steps_and_at_the_end(tmp_path):
    # TensorFlow's own CheckpointSaverHook (it reads the global step in a Session.run of its
    # own after every step) behind the finite-variables listener
    with tf.Graph().as_default():
        step = tf.compat.v1.train.get_or_create_global_step()
        weight = tf.compat.v1.get_variable('w', [], initializer=tf.compat.v1.ones_initializer())
        train_op = tf.group(weight.assign_add(1.0), step.assign_add(1))
        scaffold = training.scaffold()
        hook = training.checkpoint_saver_hook(str(tmp_path), 4, scaffold)
        assert type(hook) is tf.compat.v1.train.CheckpointSaverHook
        with tf.compat.v1.train.MonitoredTrainingSession(
                checkpoint_dir=str(tmp_path), scaffold=scaffold,
                hooks=[tf.compat.v1.train.StopAtStepHook(last_step=9), hook],
                save_checkpoint_steps=None, save_checkpoint_secs=None,
                save_summaries_steps=None, log_step_count_steps=None) as sess:
            while not sess.should_stop():
                sess.run(train_op)
    state = tf.train.get_checkpoint_state(str(tmp_path))
    assert [checkpoints.step_of(p) for p in state.all_model_checkpoint_paths] == [0, 4, 8, 9]
    assert tf.train.load_checkpoint(str(tmp_path)).get_tensor('w') == 10.0


def test_the_benchmarks_cifar10_step_runs(tmp_path, monkeypatch, data_root):
    # bench/workloads.py's `ours` CIFAR-10 entered train_lib.monitored_session (a context
    # manager since #24) as if it were the session.
    import bench
    from bench import workloads
    from cifar10 import train_lib
    monkeypatch.setenv('TF_CLASSICS_DATA', data_root)
    monkeypatch.setattr(train_lib, 'DEFAULTS', train_lib.Config(
        min_fraction_of_examples_in_queue=0.002))
    with tf.Graph().as_default():
        workload = workloads.build('cifar10', 'ours', str(tmp_path))
        try:
            steps, _ = bench.timed(workload.step, 0.0)
            assert steps == 2
        finally:
            workload.close()


def test_bench_profile_splits_a_step_op_by_op(tmp_path, data_root):
    import json
    import subprocess
    import sys
    from helpers import REPO
    out = tmp_path / 'profile.json'
    result = subprocess.run(
        [sys.executable, '-m', 'bench.profile', '--models=deep_cnn', '--ways=ours_fed,keras',
         '--steps=2', '--warmup_steps=1', '--json=%s' % out], cwd=REPO, capture_output=True,
        text=True, timeout=600, env=dict(os.environ, TF_CLASSICS_DATA=data_root))
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())['models']['deep_cnn']
    for way in ('ours_fed', 'keras'):
        assert figures[way]['step_us'] > 0 and figures[way]['runtime_us'] > 0
        assert any(t.endswith('Conv2DBackpropInput') for t in figures[way]['ops_us'])
    assert figures['ours_fed']['ops_us']['ResourceApplyAdam'] > 0  # Adam in one kernel
    assert 'ours_fed - keras, the largest differences' in result.stdout


# --- the opt-in in-graph loop (--steps_per_run) ---------------------------------------------

class _CountRuns(object):
    """Counts the runtime calls (Session.run's TF_SessionRun) of every v1 session while on."""

    def __enter__(self):
        self.calls = 0
        self._original = session_lib.BaseSession._call_tf_sessionrun
        counter = self

        def counted(sess, *args):
            counter.calls += 1
            return counter._original(sess, *args)
        session_lib.BaseSession._call_tf_sessionrun = counted
        return self

    def __exit__(self, *exc):
        session_lib.BaseSession._call_tf_sessionrun = self._original


def _deep_cnn_losses_and_variables(steps_per_run, batches):
    """deep_cnn trained on `batches` without dropout (its default keep probability, 1.0), with
    the same initial values (graph seed 1): Session.run per step, or steps_per_run steps per
    run through the in-graph loop. Returns the losses and every variable's value by name."""
    from mnist import deep_cnn
    with tf.Graph().as_default():
        tf.compat.v1.set_random_seed(1)
        model = deep_cnn.Model(steps_per_run=steps_per_run)
        with tf.compat.v1.Session() as sess, _CountRuns() as runs:
            sess.run(tf.compat.v1.global_variables_initializer())
            runs.calls = 0
            losses = []
            for start in range(0, len(batches), steps_per_run):
                chunk = batches[start:start + steps_per_run]
                if steps_per_run == 1:  # train_step, with the keep probability left at 1
                    images, labels = chunk[0]
                    losses.append(sess.run([model.train_op, model.loss], {
                        model.images: images, model.labels: labels})[1])
                else:
                    images, labels = zip(*chunk)
                    losses.extend(sess.run(model.run_losses, {
                        model.run_images: images, model.run_labels: labels}))
            calls = runs.calls
            values = {v.op.name: sess.run(v) for v in tf.compat.v1.global_variables()}
    return np.array(losses), values, calls


def test_the_in_graph_loop_computes_what_one_run_per_step_computes():
    # 7 steps as runs of 3, 3 and 1: the same losses, the same Adam slots, beta powers,
    # learning rates (read at each step) and global step as 7 Session.runs, bit for bit.
    rng = np.random.RandomState(0)
    batches = [(rng.rand(8, 784).astype(np.float32), rng.randint(0, 10, 8).astype(np.int32))
               for _ in range(7)]
    losses, values, calls = _deep_cnn_losses_and_variables(1, batches)
    loop_losses, loop_values, loop_calls = _deep_cnn_losses_and_variables(3, batches)
    assert (calls, loop_calls) == (7, 3)
    np.testing.assert_array_equal(loop_losses, losses)
    assert sorted(loop_values) == sorted(values)  # no variable more: checkpoints are alike
    assert len(values) == 1 + 3 * 10 + 2  # step, weights and biases with Adam's m and v, powers
    for name, value in values.items():
        np.testing.assert_array_equal(loop_values[name], value, err_msg=name)
    assert values['global_step'] == 7


def test_a_run_stops_at_the_next_evaluation_checkpoint_or_end():
    from mnist import deep_cnn
    # --steps_per_run=10, evaluations every 25 and checkpoints every 40, to step 50
    starts, step = [], 0
    while step < 50:
        count = deep_cnn.steps_in_run(step, 50, 10, 25, 40)
        starts.append((step, count))
        step += count
    assert starts == [(0, 10), (10, 10), (20, 5), (25, 10), (35, 5), (40, 10)]
    assert deep_cnn.steps_in_run(50, 50, 10, 25, 40) == 0
    assert [deep_cnn.steps_in_run(s, 50, 1, 25, 40) for s in (0, 24, 49)] == [1, 1, 1]
