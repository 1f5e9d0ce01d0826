"""Run folders a user copies, moves, reruns and starts twice (common/checkpoints.py): nothing
outside the folder is touched, nothing inside is lost."""

import concurrent.futures
import hashlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from common import checkpoints
from helpers import REPO, TINY_CIFAR10 as CIFAR, default_sigint, last_line, popen, run_script
from helpers import wait_for_line
from helpers import shared_data_root

FILE_TEXT = 'not a folder\n'


def digest(folder):
    """{relative path: sha256} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as f:
                out[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return out


def make_state_absolute(folder):
    """Rewrites folder's checkpoint state with absolute paths, as the version before relative
    paths wrote it (and as TensorFlow's own Saver does by default)."""
    state = tf.train.get_checkpoint_state(folder)
    absolute = [os.path.join(os.path.abspath(folder), os.path.basename(p))
                for p in state.all_model_checkpoint_paths]
    tf.compat.v1.train.update_checkpoint_state(
        os.path.abspath(folder), absolute[-1], absolute)
    assert open(os.path.join(folder, 'checkpoint')).read().count(os.path.abspath(folder)) >= 2




def relative_state(folder):
    text = open(os.path.join(folder, 'checkpoint')).read()
    return '/' not in text, text


# --- copy, continue; move, use -----------------------------------------------------------------

def test_continuing_a_copied_deep_cnn_folder_leaves_the_original_byte_identical(tmp_path):
    a, b = tmp_path / 'A', tmp_path / 'B'
    first = run_script('mnist/deep_cnn.py', '--max_steps=20', '--checkpoint_steps=5',
                       '--eval_every=20', '--log_dir=%s' % a, '--seed=1')
    assert first.returncode == 0, first.stderr[-3000:]
    make_state_absolute(str(a))  # a folder written by an earlier version
    shutil.copytree(a, b)
    before = digest(a)
    result = run_script('mnist/deep_cnn.py', '--max_steps=30', '--checkpoint_steps=1',
                        '--eval_every=10', '--log_dir=%s' % b, '--seed=1')
    assert result.returncode == 0, result.stderr[-3000:]
    assert 'Resuming from %s ' % (b / 'model.ckpt-20') in result.stdout
    assert digest(a) == before  # B's rotation kept to B
    relative, text = relative_state(str(b))
    assert relative, text
    assert [os.path.basename(p) for p in checkpoints.all_checkpoints(str(b))] == [
        'model.ckpt-%d' % s for s in range(26, 31)]
    assert sorted(f for f in os.listdir(b) if f.endswith('.index')) == [
        'model.ckpt-%d.index' % s for s in range(26, 31)]


@pytest.fixture(scope='module')
def cifar_copy_and_move(tmp_path_factory, data_root):
    """A CIFAR-10 folder A (absolute state), its copy continued to step 10 with a checkpoint
    every step, then moved: (tmp, A's digest before, A's digest after, the continue run)."""
    tmp = tmp_path_factory.mktemp('cifar_folders')
    a, b = tmp / 'A', tmp / 'B'
    first = run_script('cifar10/train.py', '--max_steps=4', '--checkpoint_steps=2',
                       '--train_dir=%s' % a, *CIFAR)
    assert first.returncode == 0, first.stderr[-3000:]
    make_state_absolute(str(a))
    shutil.copytree(a, b)
    before = digest(a)
    cont = run_script('cifar10/train.py', '--max_steps=10', '--checkpoint_steps=1',
                      '--train_dir=%s' % b, *CIFAR)
    assert cont.returncode == 0, cont.stderr[-3000:]
    after = digest(a)
    shutil.move(str(b), str(tmp / 'C'))
    return tmp, before, after, cont


def test_continuing_a_copied_cifar10_folder_leaves_the_original_byte_identical(
        cifar_copy_and_move):
    tmp, before, after, cont = cifar_copy_and_move
    assert 'Resuming from %s ' % (tmp / 'B' / 'model.ckpt-4') in cont.stdout
    assert after == before
    assert checkpoints.latest(str(tmp / 'A')).endswith('A/model.ckpt-4')


def test_a_moved_cifar10_folder_evaluates_predicts_and_resumes(cifar_copy_and_move, tmp_path):
    tmp, _, _, _ = cifar_copy_and_move
    c = tmp / 'C'
    assert relative_state(str(c))[0]
    ev = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=%s' % c,
                    '--eval_dir=%s' % (tmp_path / 'eval'), '--num_examples=64',
                    '--batch_size=64')
    assert ev.returncode == 0, ev.stderr[-3000:]
    assert re.search(r': precision @ 1 = \d\.\d{3}$', ev.stdout, re.M)
    pred = run_script('cifar10/predict.py', '--checkpoint_dir=%s' % c,
                      '--export_dir=%s' % (tmp_path / 'export'))
    assert pred.returncode == 0, pred.stderr[-3000:]
    assert 'Classifying with %s ' % (c / 'model.ckpt-10') in pred.stdout
    assert os.path.isdir(tmp_path / 'export' / '10')
    resumed = run_script('cifar10/train.py', '--max_steps=11', '--train_dir=%s' % c, *CIFAR)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'Resuming from %s ' % (c / 'model.ckpt-10') in resumed.stdout
    assert checkpoints.latest(str(c)) == str(c / 'model.ckpt-11')


def test_a_state_naming_a_checkpoint_not_in_the_folder_is_one_line(tmp_path):
    folder = tmp_path / 'run'
    folder.mkdir()
    tf.compat.v1.train.update_checkpoint_state(str(folder), '/elsewhere/model.ckpt-7')
    with pytest.raises(checkpoints.RunDirError) as e:
        checkpoints.latest(str(folder))
    assert str(e.value) == ('%s names the checkpoint /elsewhere/model.ckpt-7, which is not in '
                            '%s (no %s there)' % (folder / 'checkpoint', folder,
                                                  folder / 'model.ckpt-7.index'))
    result = run_script('cifar10/eval.py', '--run_once', '--checkpoint_dir=%s' % folder,
                        '--eval_dir=%s' % (tmp_path / 'eval'))
    assert result.returncode == 1 and 'Traceback' not in result.stderr
    assert last_line(result.stderr) == 'error: %s' % str(e.value).replace(
        'not in %s ' % folder, 'not in --checkpoint_dir=%s ' % folder)


# --- rerunning a finished run ------------------------------------------------------------------

def test_a_finished_run_rerun_writes_nothing(cifar_copy_and_move):
    tmp, _, _, _ = cifar_copy_and_move
    a = tmp / 'A'
    before = digest(a)
    again = run_script('cifar10/train.py', '--max_steps=4', '--train_dir=%s' % a, *CIFAR)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip() == 'already at step 4 of --max_steps=4: nothing to do'
    assert digest(a) == before
    zero = run_script('cifar10/train.py', '--max_steps=0', '--train_dir=%s' % (tmp / 'Z'),
                      *CIFAR)
    assert zero.returncode == 0, zero.stderr[-3000:]
    assert zero.stdout.strip() == 'already at step 0 of --max_steps=0: nothing to do'
    assert not os.path.exists(tmp / 'Z')


def test_a_finished_mnist_run_rerun_writes_nothing(tmp_path):
    args = ['--max_steps=3', '--eval_every=3', '--log_dir=%s' % tmp_path]
    first = run_script('mnist/deep_cnn.py', *args)
    assert first.returncode == 0, first.stderr[-3000:]
    before = digest(tmp_path)
    again = run_script('mnist/deep_cnn.py', *args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.strip() == 'already at step 3 of --max_steps=3: nothing to do'
    assert digest(tmp_path) == before


# --- one writer per folder ---------------------------------------------------------------------

def test_the_folder_lock_refuses_a_second_writer_and_takes_over_a_dead_ones(tmp_path, capsys):
    held = checkpoints.FolderLock(str(tmp_path), 'train_dir').acquire()
    with pytest.raises(checkpoints.RunDirError,
                       match=r'^--train_dir=%s is in use by another writer: pid %d on host '
                       % (re.escape(str(tmp_path)), os.getpid())):
        checkpoints.FolderLock(str(tmp_path), 'train_dir').acquire()
    held.release()
    assert not os.path.exists(tmp_path / checkpoints.LOCK_FILE)
    # a holder killed with -9 leaves its lock file behind, no longer flock'ed
    (tmp_path / checkpoints.LOCK_FILE).write_text(
        '{"host": "elsewhere", "pid": 4242, "command": "python x.py", "since": "then"}\n')
    lock = checkpoints.FolderLock(str(tmp_path), 'train_dir').acquire()
    assert capsys.readouterr().out == (
        'Taking over the lock of --train_dir=%s from pid 4242 on host elsewhere (python x.py, '
        'since then), which is gone\n' % tmp_path)
    lock.release()




def test_a_second_trainer_is_refused_and_a_killed_ones_folder_taken_over(tmp_path, data_root):
    train_dir = tmp_path / 'train'
    log = tmp_path / 'first.log'
    first = popen('cifar10/train.py', ['--max_steps=100000', '--checkpoint_steps=100000',
                                        '--train_dir=%s' % train_dir] + CIFAR, log)
    try:
        deadline = time.time() + 180
        while not re.search(r': step \d+, loss', log.read_text()):
            assert first.poll() is None and time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        before = sorted(os.listdir(train_dir))
        second = run_script('cifar10/train.py', '--max_steps=3', '--train_dir=%s' % train_dir,
                            *CIFAR)
        assert second.returncode == 1 and 'Traceback' not in second.stderr
        assert re.match(r'error: --train_dir=%s is in use by another writer: pid %d on host '
                        r'\S+ \(python .*cifar10/train.py --max_steps=100000 .*\); one writer '
                        r'per folder' % (re.escape(str(train_dir)), first.pid),
                        last_line(second.stderr)), second.stderr[-2000:]
        assert first.poll() is None  # untouched, still training
        assert sorted(os.listdir(train_dir)) == before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    third = run_script('cifar10/train.py', '--max_steps=2', '--train_dir=%s' % train_dir,
                       *CIFAR)
    assert third.returncode == 0, third.stderr[-3000:]
    assert re.search(r'^Taking over the lock of --train_dir=%s from pid %d on host \S+ .*, '
                     r'which is gone$' % (re.escape(str(train_dir)), first.pid),
                     third.stdout, re.M), third.stdout[-2000:]
    assert 'Resuming from %s ' % (train_dir / 'model.ckpt-0') in third.stdout
    assert checkpoints.latest(str(train_dir)) == str(train_dir / 'model.ckpt-2')
    assert not os.path.exists(train_dir / checkpoints.LOCK_FILE)  # released at exit


# --- folder flags that name a file -------------------------------------------------------------

FOLDER_FLAGS = [
    ('cifar10/train.py', 'train_dir', ['--max_steps=1']),
    ('cifar10/multi_gpu_train.py', 'train_dir', ['--max_steps=1']),
    ('cifar10/eval.py', 'eval_dir', ['--run_once']),
    ('cifar10/eval.py', 'checkpoint_dir', ['--run_once']),
    ('cifar10/predict.py', 'export_dir', []),
    ('mnist/cnn_mnist.py', 'model_dir', ['--train_steps=1']),
    ('mnist/mnist_with_summaries.py', 'log_dir', ['--max_steps=1']),
    ('mnist/deep_cnn.py', 'log_dir', ['--max_steps=1']),
    ('mnist/mlp.py', 'log_dir', ['--num_steps=1']),
    ('mnist/predict.py', 'export_dir', []),
]


def test_every_folder_flag_naming_a_file_is_one_line_and_writes_nothing(tmp_path, data_root):
    path = tmp_path / 'a_file'
    path.write_text(FILE_TEXT)

    def run(case):
        script, flag, args = case
        return case, run_script(script, '--%s=%s' % (flag, path), *args)

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, FOLDER_FLAGS))
    for (script, flag, _), result in results:
        assert result.returncode == 1, (script, flag, result.stderr[-2000:])
        assert 'Traceback' not in result.stderr, (script, result.stderr[-2000:])
        assert last_line(result.stderr) == 'error: --%s=%s is a file, not a folder' % (
            flag, path), (script, result.stderr[-2000:])
    assert path.read_text() == FILE_TEXT
    assert sorted(os.listdir(tmp_path)) == ['a_file']  # no other folder was made
    below = run_script('mnist/deep_cnn.py', '--max_steps=1', '--log_dir=%s' % (path / 'run'))
    assert below.returncode == 1 and 'Traceback' not in below.stderr
    assert last_line(below.stderr) == ('error: --log_dir=%s: cannot create the folder (Not a '
                                       'directory)' % (path / 'run'))


# --- a checkpoint that cannot be written -------------------------------------------------------

def _file_size_limit(limit):
    def preexec():
        default_sigint()
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def _run_limited(script, args, limit):
    env = dict(os.environ, PYTHONUNBUFFERED='1', TF_CLASSICS_DATA=shared_data_root(),
               TF_CPP_MIN_LOG_LEVEL='2')
    return subprocess.run([sys.executable, script] + args, cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=600, preexec_fn=_file_size_limit(limit))


@pytest.mark.parametrize('script,flag,steps_flag,args,limit,refused', [
    # CIFAR-10's checkpoints are 8.5 MB (MonitoredTrainingSession's hook); deep_cnn's are
    # 2.9 MB (a plain Saver): each limit is below one and above the event files. The resumed
    # CIFAR-10 run's first save is TensorFlow's hook writing again the step it resumed from.
    ('cifar10/train.py', 'train_dir', 'max_steps', CIFAR + ['--checkpoint_steps=2'], 4 << 20,
     'model.ckpt-2'),
    ('mnist/deep_cnn.py', 'log_dir', 'max_steps', ['--checkpoint_steps=2', '--eval_every=100'],
     1 << 20, 'model.ckpt-4'),
])
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_the_last_one_is_kept(
        tmp_path, data_root, script, flag, steps_flag, args, limit, refused):
    run_dir = tmp_path / 'run'
    common = ['--%s=%s' % (flag, run_dir)] + args
    first = run_script(script, '--%s=2' % steps_flag, *common)
    assert first.returncode == 0, first.stderr[-3000:]
    kept = digest(run_dir)
    full = _run_limited(script, ['--%s=6' % steps_flag] + common, limit)
    assert full.returncode == 1, full.stderr[-3000:]
    assert 'Traceback' not in full.stderr
    assert last_line(full.stderr) == (
        'error: cannot write checkpoint %s in %s: File too large; the last '
        'checkpoint, model.ckpt-2, is kept' % (refused, run_dir))
    assert {f: d for f, d in digest(run_dir).items() if f.startswith('model.ckpt-2')} == {
        f: d for f, d in kept.items() if f.startswith('model.ckpt-2')}
    assert checkpoints.latest(str(run_dir)) == str(run_dir / 'model.ckpt-2')
    assert not [f for f in os.listdir(run_dir) if f.startswith('model.ckpt-4')]
    assert not os.path.exists(run_dir / checkpoints.LOCK_FILE)
    again = run_script(script, '--%s=6' % steps_flag, *common)
    assert again.returncode == 0, again.stderr[-3000:]
    assert 'Resuming from %s ' % (run_dir / 'model.ckpt-2') in again.stdout
    assert checkpoints.latest(str(run_dir)) == str(run_dir / 'model.ckpt-6')


# --- a refused command leaves the folder as it was ----------------------------------------------

def _png_file(path):
    """A 28x28 PNG of a white stroke on black (any digit will do)."""
    image = np.zeros([28, 28, 1], np.uint8)
    image[4:24, 13:16] = 255
    path.write_bytes(tf.io.encode_png(image).numpy())
    return str(path)


def test_a_refused_mnist_trainer_leaves_the_folder_byte_identical_and_usable(tmp_path):
    run_dir = tmp_path / 'deep'
    first = run_script('mnist/deep_cnn.py', '--max_steps=2', '--log_dir=%s' % run_dir,
                       '--eval_every=100')
    assert first.returncode == 0, first.stderr[-3000:]
    before = digest(run_dir)
    for script, args in [('mnist/cnn_mnist.py', ['--model_dir=%s' % run_dir, '--train_steps=3']),
                         ('mnist/mnist_with_summaries.py',
                          ['--log_dir=%s' % run_dir, '--max_steps=3'])]:
        refused = run_script(script, *args)
        assert refused.returncode == 1 and 'Traceback' not in refused.stderr, refused.stderr
        line = last_line(refused.stderr)
        assert 'does not match this model' in line and 'deep_cnn.py' in line, line
        assert 'Resuming' not in refused.stdout
        assert digest(run_dir) == before, script
    predicted = run_script('mnist/predict.py', '--model_dir=%s' % run_dir,
                           _png_file(tmp_path / 'one.png'))
    assert predicted.returncode == 0, predicted.stderr[-3000:]


def test_a_refused_cifar10_trainer_leaves_the_folder_byte_identical(tmp_path, data_root):
    run_dir = tmp_path / 'one_tower'
    first = run_script('cifar10/train.py', '--max_steps=2', '--train_dir=%s' % run_dir, *CIFAR)
    assert first.returncode == 0, first.stderr[-3000:]
    before = digest(run_dir)
    refused = run_script('cifar10/multi_gpu_train.py', '--max_steps=3',
                         '--train_dir=%s' % run_dir, *CIFAR)
    assert refused.returncode == 1 and 'Traceback' not in refused.stderr, refused.stderr
    line = last_line(refused.stderr)
    assert line.startswith('error: the checkpoint %s does not match this model (' % (
        run_dir / 'model.ckpt-2')), line
    assert 'trained by train.py (flags-' in line, line
    assert 'Resuming' not in refused.stdout
    assert digest(run_dir) == before


# --- Ctrl-C keeps the steps done ----------------------------------------------------------------

@pytest.mark.parametrize('script,flag,args,pattern', [
    ('mnist/deep_cnn.py', 'log_dir', ['--eval_every=5', '--checkpoint_steps=100000'],
     r'^step 15: test accuracy'),
    ('cifar10/train.py', 'train_dir', CIFAR + ['--checkpoint_steps=100000'], r'^\S+ \S+: step 3,'),
])
def test_ctrl_c_saves_a_checkpoint_of_the_steps_done(tmp_path, data_root, script, flag, args,
                                                      pattern):
    run_dir = tmp_path / 'run'
    log = tmp_path / 'log.txt'
    proc = popen(script, ['--max_steps=100000', '--%s=%s' % (flag, run_dir)] + args, log)
    try:
        wait_for_line(log, pattern, proc)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert 'Traceback' not in text
    assert ('Interrupted: the checkpoints in --%s=%s are kept; run the same command again to '
            'resume.' % (flag, run_dir)) in text
    step = checkpoints.step_of(checkpoints.latest(str(run_dir)))
    assert step >= 3, step  # not step 0: the steps done before Ctrl-C
