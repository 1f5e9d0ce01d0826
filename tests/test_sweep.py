"""python -m tools.sweep: tiny real sweeps of mnist_with_summaries (a study killed and
resumed, a trial pruned, a trial diverging, two workers on one study, the HParams data read back
from a live TensorBoard), the table, and each bad input."""

import glob
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from tools import sweep
import postgres
from helpers import REPO, default_sigint, shared_data_root

optuna = pytest.importorskip('optuna')
pytestmark = pytest.mark.filterwarnings('ignore::optuna.exceptions.ExperimentalWarning')
SCRIPT = 'mnist/mnist_with_summaries.py'
STUDY = 'mnist_with_summaries'


def _env():
    path = os.environ.get('PYTHONPATH')
    return dict(os.environ, TF_CLASSICS_DATA=shared_data_root(), PYTHONUNBUFFERED='1',
                PYTHONPATH=REPO + (os.pathsep + path if path else ''))


def _command(*args):
    return [sys.executable, '-m', 'tools.sweep'] + list(args)


def _sweep(*args, timeout=300):
    return subprocess.run(_command(*args), cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _study(sweep_dir):
    return optuna.load_study(study_name=STUDY, storage='sqlite:///%s/study.db' % sweep_dir)


def _flag_files(folder):
    """The flags files of the script's run folder in a trial's (or seed's) folder: logs/, as
    common/scripts.py lays mnist_with_summaries' out."""
    return glob.glob(os.path.join(folder, 'logs', 'flags-*.json'))


# The cases run in order: a good run, one that diverges (learning rate 1e30: the scripts' one-line
# NaN stop), one that cannot learn (learning rate 0) and that the median pruner stops once its
# figures (written every 10 steps, on disk every 100 or so) fall below the good run's after step
# 50. The sweep is killed when it starts the third.
CASES = ['--case=learning_rate=0.001', '--case=learning_rate=1e30', '--case=learning_rate=0']


@pytest.fixture(scope='module')
def killed_and_resumed(tmp_path_factory):
    """A sweep killed (SIGKILL) as its third trial starts, then the same command again."""
    sweep_dir = str(tmp_path_factory.mktemp('sweep') / 'out')
    args = [SCRIPT] + CASES + ['--prune_startup_trials=1', '--prune_warmup_steps=50',
                               '--sweep_dir=' + sweep_dir, '--', '--max_steps=300']
    proc = subprocess.Popen(_command(*args), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    watchdog = threading.Timer(300, proc.kill)
    watchdog.start()
    first = []
    for line in proc.stdout:
        first.append(line)
        if line.startswith('trial 2: started'):
            break
    proc.kill()
    proc.wait()
    watchdog.cancel()
    first = ''.join(first)
    assert 'trial 2: started' in first, first[-3000:]
    # The killed sweep's trial dies with it: nothing goes on writing into its folder.
    trial_2 = os.path.join(sweep_dir, 'trial-0002')
    deadline = time.time() + 30
    while time.time() < deadline and _processes_writing_to(trial_2):
        time.sleep(0.5)
    assert not _processes_writing_to(trial_2)
    before = {'states': [t.state.name for t in _study(sweep_dir).trials]}
    for folder in ('trial-0000', 'trial-0001'):
        path = os.path.join(sweep_dir, folder)
        before[folder] = (open(os.path.join(path, 'log.txt')).read(), _flag_files(path))
    resumed = _sweep(*args)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    return sweep_dir, first, before, resumed.stdout


def _processes_writing_to(folder):
    found = []
    for cmdline in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            with open(cmdline, 'rb') as f:
                if folder.encode() in f.read():
                    found.append(cmdline)
        except OSError:
            pass
    return found


def test_a_killed_sweep_resumes_without_rerunning_finished_trials(killed_and_resumed):
    sweep_dir, first, before, resumed = killed_and_resumed
    assert 'trial 0: done in' in first
    assert before['states'] == ['COMPLETE', 'PRUNED', 'RUNNING']
    assert '(2 of 3 trial(s) done before)' in resumed
    assert 'trial 0: started' not in resumed and 'trial 1: started' not in resumed
    # the finished trials were not run again: their folders are as the killed sweep left them
    for folder in ('trial-0000', 'trial-0001'):
        path = os.path.join(sweep_dir, folder)
        assert (open(os.path.join(path, 'log.txt')).read(), _flag_files(path)) == before[folder]
        assert len(before[folder][1]) == 1
    # the killed trial ran again in its own folder, as a new trial of the same study
    assert re.search(r'^trial 3: started: --learning_rate=0\.0 \(trial-0002, resuming trial '
                     r'2\)$', resumed, re.M)
    trials = _study(sweep_dir).trials
    assert [(t.number, t.state.name) for t in trials] == [
        (0, 'COMPLETE'), (1, 'PRUNED'), (2, 'FAIL'), (3, 'PRUNED')]
    assert [t.params['learning_rate'] for t in trials] == [0.001, 1e30, 0.0, 0.0]
    assert optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trials[3]) == 2
    assert not os.path.exists(os.path.join(sweep_dir, 'trial-0003'))


def test_a_diverging_trial_is_marked_and_the_sweep_goes_on(killed_and_resumed):
    sweep_dir, first, _, _ = killed_and_resumed
    trial = _study(sweep_dir).trials[1]
    assert trial.state.name == 'PRUNED' and trial.user_attrs['outcome'] == 'diverged'
    assert trial.user_attrs['last_line'].startswith('error: Model diverged')
    assert re.search(r'^trial 1: diverged in \d:\d\d:\d\d: error: Model diverged .* at step '
                     r'\d+;', first, re.M)
    assert first.index('trial 1: diverged') < first.index('trial 2: started')  # went on


def test_the_pruner_stops_a_hopeless_trial_from_its_figures(killed_and_resumed):
    sweep_dir, _, _, resumed = killed_and_resumed
    trials = _study(sweep_dir).trials
    good, hopeless = trials[0], trials[3]
    assert max(good.intermediate_values) == 300 and good.value > 0.8
    assert hopeless.user_attrs['outcome'] == 'pruned'
    steps = sorted(hopeless.intermediate_values)
    assert steps[0] == 0 and 50 <= steps[-1] < 300  # stopped from its figures, before the end
    assert hopeless.user_attrs['steps'] < 300
    assert max(hopeless.intermediate_values.values()) < 0.3
    assert re.search(r'^trial 3: pruned in \d:\d\d:\d\d: at step \d+ \(test accuracy 0\.\d{4}\)$',
                     resumed, re.M)
    log = open(os.path.join(sweep_dir, 'trial-0002', 'log.txt')).read()
    assert 'Final test accuracy' not in log


def test_the_table_at_the_end_and_with_summary(killed_and_resumed):
    sweep_dir, _, _, resumed = killed_and_resumed
    good = _study(sweep_dir).trials[0]
    table = resumed[resumed.index('| trial |'):]
    rows = re.findall(r'^\| (\d+) \| (.*?) \| (.*?) \| (.*?) \| \d:\d\d:\d\d \| (.*?) \|$', table,
                      re.M)
    assert [(n, f, s) for n, f, _, _, s in rows] == [
        ('0', '--learning_rate=0.001', 'done'),
        ('3', '--learning_rate=0.0', 'pruned (resumed trial 2)'),
        ('1', '--learning_rate=1e+30', 'diverged')]
    assert rows[0][2] == '%.4f' % good.value and rows[0][3] == '300'
    assert rows[2][2] == '—'
    assert '3 trial(s): 1 done, 1 pruned, 1 diverged.' in table
    best = '    python %s --log_dir=%s/trial-0000-rerun/logs --learning_rate=0.001 ' \
        '--max_steps=300 --seed=0' % (SCRIPT, sweep_dir)
    assert best in table.splitlines()
    again = _sweep('--summary', '--sweep_dir=' + sweep_dir, timeout=60)
    assert again.returncode == 0 and again.stdout == table[:len(again.stdout)]
    assert again.stdout.strip() == table.strip()
    # the sweep's folder moved elsewhere: the same table, its commands in the new place
    moved = sweep_dir + '-moved'
    shutil.copytree(sweep_dir, moved)
    os.rename(sweep_dir, sweep_dir + '-away')
    try:
        there = _sweep('--summary', '--sweep_dir=' + moved, timeout=60)
    finally:
        os.rename(sweep_dir + '-away', sweep_dir)
    assert there.returncode == 0, there.stderr[-2000:]
    assert there.stdout.strip() == table.strip().replace(sweep_dir, moved)


def test_tensorboard_serves_the_sweeps_hparams(killed_and_resumed):
    sweep_dir, _, _, _ = killed_and_resumed
    trials = _study(sweep_dir).trials
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    tensorboard = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
    proc = subprocess.Popen([tensorboard, '--logdir', sweep_dir, '--host', '127.0.0.1',
                             '--port', str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def post(route, body):
        request = urllib.request.Request(
            'http://127.0.0.1:%d/data/plugin/hparams/%s' % (port, route),
            data=json.dumps(body).encode(), headers={'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    try:
        experiment, deadline = {}, time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                experiment = post('experiment', {'experimentName': ''})
                if experiment.get('hparamInfos'):
                    break
            except OSError:
                pass
            time.sleep(1)
        metrics = [m['name'] for m in experiment.get('metricInfos', [])]
        groups = post('session_groups', {
            'experimentName': '', 'startIndex': 0, 'sliceSize': 100,
            'allowedStatuses': ['STATUS_UNKNOWN', 'STATUS_SUCCESS', 'STATUS_FAILURE',
                                'STATUS_RUNNING'],
            'colParams': [{'hparam': 'learning_rate', 'includeInResult': True}] + [
                {'metric': m, 'includeInResult': True} for m in metrics]})['sessionGroups']
        url = ('http://127.0.0.1:%d/data/plugin/scalars/scalars?run=trial-0000/logs/test'
               '&tag=accuracy'
               % port)
        with urllib.request.urlopen(url, timeout=10) as response:
            curve = json.loads(response.read())
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    info, = experiment['hparamInfos']
    assert info['name'] == 'learning_rate' and info['type'] == 'DATA_TYPE_FLOAT64'
    assert sorted(info['domainDiscrete']) == [0.0, 0.001, 1e30]
    assert {'group': '', 'tag': 'test_accuracy'} in metrics
    by_name = {g['name']: g for g in groups}
    assert sorted(by_name) == ['trial-0000', 'trial-0001', 'trial-0002']
    for folder, trial, status in (('trial-0000', trials[0], 'STATUS_SUCCESS'),
                                  ('trial-0001', trials[1], 'STATUS_FAILURE'),
                                  ('trial-0002', trials[3], 'STATUS_FAILURE')):
        group = by_name[folder]
        assert group['hparams'] == {'learning_rate': trial.params['learning_rate']}
        assert group['sessions'][0]['status'] == status
        values = {v['name']['tag']: v['value'] for v in group['metricValues']}
        assert values['steps'] == trial.user_attrs['steps']
        if trial.state.name == 'COMPLETE':
            assert values['test_accuracy'] == pytest.approx(trial.value, abs=1e-6)
    # beside it, the script's own curve of the same run
    assert [p[1] for p in curve][:2] == [0, 10] and curve[-1][1] == 300
    assert curve[-1][2] == pytest.approx(trials[0].value, abs=1e-6)


def test_two_workers_share_one_study_and_run_no_trial_twice(tmp_path):
    sweep_dir = str(tmp_path / 'out')
    args = [SCRIPT, '--grid=learning_rate=0.001,0.002', '--seeds=2', '--pruner=none',
            '--sweep_dir=' + sweep_dir, '--', '--max_steps=5']
    workers = [subprocess.Popen(_command(*args), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:] + err[-3000:]
    started = [re.findall(r'^trial (\d+): started', out, re.M) for out, _ in outputs]
    # Each trial started once, in one worker or the other (which takes which, and whether the
    # later one finds any left, is timing).
    assert sorted(started[0] + started[1]) == ['0', '1'], started
    trials = _study(sweep_dir).trials
    assert [t.state.name for t in trials] == ['COMPLETE', 'COMPLETE']
    assert sorted(t.params['learning_rate'] for t in trials) == [0.001, 0.002]
    for t in trials:
        figures = []
        for seed in (0, 1):  # each seed run once, in its own folder
            run = os.path.join(sweep_dir, t.user_attrs['dir'], 'seed-%d' % seed)
            flag_file, = _flag_files(run)
            assert json.load(open(flag_file))['flags']['seed'] == seed
            last = re.findall(r'^Final test accuracy after 5 steps: ([\d.]+)$',
                              open(os.path.join(run, 'log.txt')).read(), re.M)
            figures.append(float(last[-1]))
        assert t.value == pytest.approx(sum(figures) / 2, abs=1e-4)
    assert re.search(r'^\| \d \| --learning_rate=0\.00[12] \| 0\.\d{4} ± 0\.\d{4} \| 5 \|',
                     outputs[0][0], re.M)


# ---------------------------------------------------------------------------------------------
# A real PostgreSQL server (throwaway, loopback only): several workers, and no password shown
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def postgresql():
    """(server, alice's password): a throwaway PostgreSQL where alice owns database sweeps."""
    if postgres.bin_dir() is None or shutil.which('psql') is None:
        pytest.skip('PostgreSQL is not installed (apt-get install postgresql: .ci/run does)')
    pytest.importorskip('psycopg', reason="no PostgreSQL driver: pip install -e '.[test]'")
    server = postgres.Server()
    try:
        server.start()
        password = 'alice-' + secrets.token_hex(8)
        server.sql("CREATE ROLE alice LOGIN PASSWORD '%s'" % password)
        server.sql('CREATE DATABASE sweeps OWNER alice')
        yield server, password
    finally:
        server.stop()


def _files_holding(folder, secret):
    found = []
    for root, _, names in os.walk(folder):
        for name in names:
            with open(os.path.join(root, name), 'rb') as f:
                if secret.encode() in f.read():
                    found.append(os.path.join(root, name))
    return found


def test_workers_share_a_postgresql_study_and_never_show_its_password(postgresql, tmp_path):
    server, password = postgresql
    where = 'alice%s@127.0.0.1:%d/sweeps'
    url, shown = 'postgresql://' + where % (':' + password, server.port), \
        'postgresql://' + where % (':***', server.port)
    sweep_dir = str(tmp_path / 'out')
    args = [SCRIPT, '--grid=learning_rate=0.001,0.002,0.003', '--pruner=none',
            '--storage=' + url, '--sweep_dir=' + sweep_dir, '--', '--max_steps=5']
    # A first worker, killed with -9 once it has started a trial.
    killed = subprocess.Popen(_command(*args), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(120, killed.kill)
    watchdog.start()
    first = []
    for line in killed.stdout:
        first.append(line)
        if line.startswith('trial 0: started: '):
            break
    killed.kill()
    killed.wait()
    watchdog.cancel()
    first = ''.join(first) + killed.stdout.read()
    assert 'trial 0: started: ' in first, first[-3000:]
    assert 'Study %s in %s (0 of 3 trial(s) done before)' % (STUDY, shown) in first
    killed_flags = re.search(r'^trial 0: started: (\S+) \(trial-0000\)$', first, re.M).group(1)
    # Two workers at once: they find the killed worker's trial and queue it again, and share it
    # and the rest of the grid.
    workers = [subprocess.Popen(_command(*args), cwd=REPO, env=_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    for w, (out, err) in zip(workers, outputs):
        assert w.returncode == 0, out[-3000:] + err[-3000:]
    started = re.findall(r'^trial (\d+): started: (\S+) \((trial-\d+)(, resuming trial 0)?\)$',
                         outputs[0][0] + outputs[1][0], re.M)
    assert sorted(n for n, _, _, _ in started) == ['1', '2', '3'], started  # none twice
    assert sorted(f for _, f, _, _ in started) == [
        '--learning_rate=0.001', '--learning_rate=0.002', '--learning_rate=0.003']
    again, = [(f, folder) for _, f, folder, resuming in started if resuming]
    assert again == (killed_flags, 'trial-0000')  # the killed trial, queued again

    # A third process reads the table, with the password in PGPASSWORD (libpq reads it).
    table = subprocess.run(
        _command('--summary', '--storage=postgresql://' + where % ('', server.port)), cwd=REPO,
        env=dict(_env(), PGPASSWORD=password), capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr[-3000:]
    rows = re.findall(r'^\| (\d+) \| (\S+) \| 0\.\d{4} \| 5 \| \d:\d\d:\d\d \| (.*?) \|$',
                      table.stdout, re.M)
    assert sorted((f, state) for _, f, state in rows) == sorted(
        (f, 'done (resumed trial 0)' if f == killed_flags else 'done')
        for f in ('--learning_rate=0.001', '--learning_rate=0.002', '--learning_rate=0.003'))

    study = optuna.load_study(study_name=STUDY, storage=url)
    assert study.user_attrs['command'].count(shown) == 1
    for text in [first, table.stdout, table.stderr, study.user_attrs['command']] + \
            [part for output in outputs for part in output]:
        assert password not in text
    assert _files_holding(sweep_dir, password) == []


def test_a_postgresql_storage_that_refuses_or_does_not_answer_says_which(postgresql, tmp_path):
    server, password = postgresql
    bob = 'bob-' + secrets.token_hex(8)
    server.sql("CREATE ROLE bob LOGIN PASSWORD '%s'" % bob)
    server.sql('CREATE DATABASE theirs OWNER alice')
    theirs = 'postgresql://alice:%s@127.0.0.1:%d/theirs' % (password, server.port)
    optuna.storages.RDBStorage(theirs)  # its tables, alice's: PostgreSQL 15 lets bob read none
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        silent = s.getsockname()[1]  # nothing listens there once the socket is closed
    base = '%s@127.0.0.1:%d/%s'
    cases = {
        'wrong password': (base % ('alice:wrong-' + password, server.port, 'sweeps'),
                           base % ('alice:***', server.port, 'sweeps')
                           + ': refused (authentication failed): '),
        'no such database': (base % ('alice:' + password, server.port, 'nodb'),
                             base % ('alice:***', server.port, 'nodb')
                             + ': refused (database does not exist): '),
        'tables of another user': (base % ('bob:' + bob, server.port, 'theirs'),
                                   base % ('bob:***', server.port, 'theirs')
                                   + ': refused (permission denied): '),
        'nothing listening': (base % ('alice:' + password, silent, 'sweeps'),
                              base % ('alice:***', silent, 'sweeps')
                              + ': cannot be reached (no answer): '),
    }
    procs = {name: subprocess.Popen(
        _command('mnist/deep_cnn.py', '--grid=max_learning_rate=0.1',
                 '--sweep_dir=%s' % (tmp_path / 'out'), '--storage=postgresql://' + url),
        cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, (url, _) in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2 and out == '', (name, out, err)
        line, = err.strip().splitlines()
        assert line.startswith('error: --storage=postgresql://' + cases[name][1]), (name, line)
        assert password not in err and bob not in err
    assert not os.path.exists(tmp_path / 'out')


def test_storage_urls_are_shown_without_their_password():
    assert sweep.shown_url('postgresql://alice:s3cret@db.example/sweeps') == \
        'postgresql://alice:***@db.example/sweeps'
    assert sweep.shown_url('postgresql://alice@db/sweeps') == 'postgresql://alice@db/sweeps'
    assert sweep.shown_url('sqlite:////tmp/study.db') == 'sqlite:////tmp/study.db'
    assert sweep.shown_url('not a url://bob:pw@x/') == 'not a url://bob:***@x/'
    dns = Exception('connection failed: could not translate host name "db.invalid" to '
                    'address: Name or service not known')
    assert str(sweep.storage_error('postgresql://alice:s3cret@db.invalid/sweeps', dns)) == (
        '--storage=postgresql://alice:***@db.invalid/sweeps: cannot be reached (host name not '
        'found): connection failed: could not translate host name "db.invalid" to address: '
        'Name or service not known')


def test_bad_input_is_one_line_and_exit_2_before_any_trial(tmp_path):
    sweep_dir = str(tmp_path / 'out')
    cases = {
        'no flag': (['mnist/deep_cnn.py', '--grid=learning_rate=0.1,0.2'],
                    'error: --grid learning_rate=0.1,0.2: mnist/deep_cnn.py has no flag '
                    '--learning_rate (did you mean --'),
        'no flag after --': (['mnist/deep_cnn.py', '--grid=max_learning_rate=0.1', '--',
                              '--max_step=5'],
                             'error: --max_step after --: mnist/deep_cnn.py has no flag '
                             '--max_step (did you mean --max_steps?)'),
        'bad value': (['mnist/deep_cnn.py', '--grid=max_learning_rate=0.1,fast'],
                      "error: --grid max_learning_rate=0.1,fast: 'fast' is not a value of "
                      '--max_learning_rate'),
        'range upside down': (['mnist/deep_cnn.py', '--range=max_learning_rate=1e-2:1e-4',
                               '--trials=3'],
                              'error: --range max_learning_rate=1e-2:1e-4: expected '
                              'NAME=LOW:HIGH'),
        'range not numbers': (['mnist/deep_cnn.py', '--range=max_learning_rate=small:big',
                               '--trials=3'],
                              'error: --range max_learning_rate=small:big: expected '
                              'NAME=LOW:HIGH'),
        'sqlite folder missing': (['mnist/deep_cnn.py', '--grid=max_learning_rate=0.1',
                                   '--storage=sqlite:////nonexistent-folder/study.db'],
                                  'error: --storage=sqlite:////nonexistent-folder/study.db: '
                                  'cannot be reached'),
        'postgresql': (['mnist/deep_cnn.py', '--grid=max_learning_rate=0.1',
                        '--storage=postgresql://sweep:pw@127.0.0.1:1/sweeps'],
                       'error: --storage=postgresql://sweep:***@127.0.0.1:1/sweeps: cannot be '
                       'reached (no answer): '),
        'not a script': (['mnist/nope.py', '--grid=x=1'],
                         'error: mnist/nope.py: not a script a sweep runs; expected one of '),
        'script flag before --': (['mnist/deep_cnn.py', '--grid=max_learning_rate=0.1',
                                   '--max_steps=3'],
                                  'error: unknown flag --max_steps; the script\'s own flags go '
                                  'after --'),
    }
    procs = {name: subprocess.Popen(_command('--sweep_dir=' + sweep_dir, *args), cwd=REPO,
                                    env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True)
             for name, (args, _) in cases.items()}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, (name, out, err)
        assert out == '', name
        line, = err.strip().splitlines()
        assert line.startswith(cases[name][1]), (name, line)
    assert not os.path.exists(sweep_dir)


# ---------------------------------------------------------------------------------------------
# The search space, without running anything
# ---------------------------------------------------------------------------------------------

def _fake_reader(flags):
    """A stand-in for script_flags: the flags {name: (type, default)}, values parsed by type."""
    def reader(jobs):
        out = {}
        for module, job in jobs.items():
            convert = {'float': float, 'int': int, 'string': str, 'string enum': str,
                       'bool': bool}
            out[module] = {
                'flags': {n: dict(type=t, default=d, help='') for n, (t, d) in flags.items()},
                'values': {n: [convert[flags[n][0]](v) for v in vs]
                           for n, vs in job['values'].items() if n in flags},
                'errors': [], 'fixed': {}}
        return out
    return reader


DEEP_CNN_FLAGS = {'max_learning_rate': ('float', 0.003), 'decay_speed': ('float', 2000.0),
                  'batch_size': ('int', 100), 'max_steps': ('int', 10000), 'seed': ('int', None),
                  'log_dir': ('string', '/tmp/mnist_deep_cnn')}


def test_ranges_are_log_uniform_for_learning_rates():
    s = sweep.plan('mnist/deep_cnn.py', ['--max_steps=100'],
                   ranges=['max_learning_rate=1e-4:1e-2', 'decay_speed=500:4000',
                           'batch_size=50:200:log'], trials=8,
                   flag_reader=_fake_reader(DEEP_CNN_FLAGS))
    d = s.distributions()
    assert d['max_learning_rate'] == optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    assert d['decay_speed'] == optuna.distributions.FloatDistribution(500, 4000, log=False)
    assert d['batch_size'] == optuna.distributions.IntDistribution(50, 200, log=True)
    assert s.sampler == 'tpe' and s.budget == 8 and s.seeds == [0]
    assert sweep.parse_range('max_learning_rate=1e-4:1e-2:linear').log is False


def test_grid_and_cases_budgets_and_the_commands():
    reader = _fake_reader(DEEP_CNN_FLAGS)
    s = sweep.plan('mnist/deep_cnn.py', [], grid=['max_learning_rate=0.001,0.003',
                                                  'batch_size=50,100,200'],
                   trials=100, seeds=3, flag_reader=reader)
    assert s.sampler == 'grid' and s.budget == 6 and s.seeds == [0, 1, 2]
    assert sweep.commands(s, '/s/trial-0004', {'max_learning_rate': 0.001, 'batch_size': 50}, 2) \
        == [['python', 'mnist/deep_cnn.py', '--log_dir=/s/trial-0004/logs', '--batch_size=50',
             '--max_learning_rate=0.001', '--seed=2']]
    # cases: each flag a case leaves out takes the script's default
    s = sweep.plan('mnist/deep_cnn.py', ['--max_steps=10'],
                   cases=['max_learning_rate=0.01,batch_size=50', 'decay_speed=1000'],
                   flag_reader=reader)
    assert s.sampler == 'cases' and s.budget == 2
    assert s.cases == [{'max_learning_rate': 0.01, 'batch_size': 50, 'decay_speed': 2000.0},
                       {'max_learning_rate': 0.003, 'batch_size': 100, 'decay_speed': 1000.0}]
    with pytest.raises(sweep.SweepError, match='--trials=N is needed'):
        sweep.plan('mnist/deep_cnn.py', [], ranges=['decay_speed=1:2'], flag_reader=reader)
    with pytest.raises(sweep.SweepError, match='--log_dir cannot be swept'):
        sweep.plan('mnist/deep_cnn.py', [], grid=['log_dir=a,b'], flag_reader=reader)
    with pytest.raises(sweep.SweepError, match='--grid and --case together'):
        sweep.plan('mnist/deep_cnn.py', [], grid=['batch_size=1,2'], cases=['decay_speed=3'],
                   flag_reader=reader)


def test_cifar10_trials_run_the_evaluator_on_their_checkpoints():
    reader = _fake_reader({'optimizer': ('string enum', 'sgd'), 'batch_size': ('int', 128),
                           'conv21': ('bool', False), 'max_steps': ('int', 1000000),
                           'seed': ('int', None), 'initial_learning_rate': ('float', 0.1)})
    s = sweep.plan('cifar10/multi_gpu_train.py', ['--max_steps=10000', '--data_dir=/d'],
                   cases=['optimizer=adam,initial_learning_rate=0.1,batch_size=512,conv21=1'],
                   eval_flags=['--num_examples=1000'], flag_reader=reader)
    train, final = sweep.commands(s, '/s/trial-0000', s.cases[0], 0)
    assert train == ['python', 'cifar10/multi_gpu_train.py', '--train_dir=/s/trial-0000/train',
                     '--batch_size=512', '--conv21', '--initial_learning_rate=0.1',
                     '--optimizer=adam', '--max_steps=10000', '--data_dir=/d', '--seed=0']
    assert final == ['python', 'cifar10/eval.py', '--checkpoint_dir=/s/trial-0000/train',
                     '--eval_dir=/s/trial-0000/eval', '--data_dir=/d', '--num_examples=1000',
                     '--run_once']
