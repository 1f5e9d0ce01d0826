"""Sweeps: a script's flags searched with Optuna, one run of the script per trial, the trials
compared in TensorBoard's HParams dashboard.

    python -m tools.sweep mnist/deep_cnn.py --range max_learning_rate=1e-4:3e-2 --trials 12 \\
        -- --max_steps=2000
    python -m tools.sweep mnist/mnist_with_summaries.py --grid learning_rate=0.0003,0.001,0.003 \\
        --grid dropout=0.5,0.9 -- --max_steps=1000
    python -m tools.sweep --summary --sweep_dir=sweeps/deep_cnn    # the table again, nothing run
    tensorboard --logdir sweeps/deep_cnn                             # HParams: table, parallel
                                                                     # coordinates, scatter plots

What is searched: `--grid NAME=V1,V2,...` (every combination; Optuna's GridSampler),
`--range NAME=LOW:HIGH` (Optuna's TPE sampler, or `--sampler=random`; log-uniform for learning
rates, `:log` / `:linear` to say so), `--case NAME=V,NAME=V,...` (a list of configurations,
run first and in order: the report's hand-made cases). The flags after `--` are the same for
every trial. `--trials` is the budget of the whole study (a grid: its size).

Each trial runs the script as a user would, in a subprocess: `python <script> --<its folder
flag>=<sweep_dir>/trial-NNNN <the trial's flags> <the flags after --> --seed=0` (`--seeds=K`:
K runs, seeds 0..K-1, in trial-NNNN/seed-S, their mean is the trial's figure). The figure is the
script's own test figure, read back from its event files: MNIST's test accuracy (mlp.py writes
none: its 'Test accuracy' lines), CIFAR-10's precision @ 1 of `eval.py --run_once` on the final
checkpoint. While a trial runs, the figures it writes (CIFAR-10: eval.py polling its checkpoints
beside it) go to Optuna's pruner; a trial the pruner stops is `pruned`, one that ends in the
scripts' one-line NaN stop is `diverged` (pruned, for Optuna), one that crashes `failed` with its
last log line, and the sweep goes on.

The study lives in <sweep_dir>/study.db (SQLite) unless `--storage` names another database
Optuna can use (`postgresql://...`: the same command on several machines works on one study;
give its password in ~/.pgpass or $PGPASSWORD, not in the URL. Where the URL holds one, every
line and file of the sweep shows it as ***).
Run the same command again after a crash or Ctrl-C: finished trials are kept, an interrupted
one is run again in its own folder (the script resumes from its checkpoints). Each run folder
carries its hyperparameters and figures for TensorBoard's HParams plugin. At the end (and with
`--summary`) a table sorted by the figure, and the command that reproduces the best trial.
Bad input (a flag the script does not have, a value or range that cannot be parsed, a storage
that cannot be reached or refuses, saying which): one line, exit status 2, before any trial
starts.
"""

import collections
import contextlib
import datetime
import difflib
import fcntl
import glob
import json
import math
import os
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time

from absl import flags

from common import entry
from common import scripts as script_table

try:
    import optuna
    from optuna.trial import TrialState
except ImportError:  # the 'sweep' extra: never needed to train
    optuna = None

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS

# ---------------------------------------------------------------------------------------------
# The scripts a sweep runs, and where each writes its test figure
# ---------------------------------------------------------------------------------------------

# The scripts a sweep runs, their folder flags and where each writes its test figure:
# common/scripts.py, the table the report and the benchmark read too.
SCRIPTS = script_table.SCRIPTS
MNIST_METRIC, CIFAR_METRIC = 'test_accuracy', 'precision_at_1'
METRIC_NAMES = {MNIST_METRIC: 'test accuracy', CIFAR_METRIC: 'precision @ 1'}


def metric(script):
    """The HParams metric of a script's figure: CIFAR-10's evaluator's, or a test accuracy."""
    return CIFAR_METRIC if script.evaluator else MNIST_METRIC
# Flags a sweep sets itself, or that would make a trial something else than one training run.
NOT_SWEPT = {'fresh': 'a trial resumes its own folder', 'grid': "mlp.py's own grid",
             'plot_samples': 'it draws samples instead of training', 'run_once': None,
             'job_name': 'a cluster task', 'ps_hosts': 'a cluster task',
             'worker_hosts': 'a cluster task', 'task_index': 'a cluster task'}
DIVERGED_LINE = re.compile(r'^error: Model diverged .*? at step (\d+)')

HEARTBEAT_SECS, GRACE_SECS = 30, 120  # another machine's trial is given up after GRACE_SECS
POLL_SECS = 1.0


class SweepError(Exception):
    """Bad input, found before any trial starts: one line, exit status 2."""


def define_flags():
    flags.DEFINE_multi_string('grid', [], 'NAME=V1,V2,...: every combination of the values '
                              '(repeat for more flags).')
    flags.DEFINE_multi_string('range', [], 'NAME=LOW:HIGH[:log|:linear]: sampled by --sampler; '
                              'log-uniform by default for a flag named *learning_rate*.')
    flags.DEFINE_multi_string('case', [], 'NAME=V,NAME=V,...: one configuration, run before '
                              'anything sampled (repeat for a list, as the report\'s cases).')
    flags.DEFINE_integer('trials', None, 'Trials in the whole study, earlier runs included '
                         '(default: the grid\'s size, or the number of cases).', lower_bound=1)
    flags.DEFINE_enum('sampler', None, ['grid', 'tpe', 'random'],
                      'Optuna sampler (default: grid for --grid alone, else tpe).')
    flags.DEFINE_integer('seeds', 1, 'Runs per trial, --seed=0..K-1; the trial\'s figure is '
                         'their mean.', lower_bound=1)
    flags.DEFINE_enum('pruner', 'median', ['median', 'hyperband', 'none'],
                      'Optuna pruner fed with the figures a trial writes while it runs.')
    flags.DEFINE_integer('prune_startup_trials', 3, 'Median pruner: prune nothing before this '
                         'many trials have finished.', lower_bound=0)
    flags.DEFINE_integer('prune_warmup_steps', None, 'Prune no trial before this step (default: '
                         'a quarter of the run\'s steps).', lower_bound=0)
    flags.DEFINE_string('sweep_dir', None, 'The trials\' folders, study.db and the HParams '
                        'experiment (default: sweeps/<script name>).')
    flags.DEFINE_string('storage', None, 'Optuna storage URL (default: '
                        'sqlite:///<sweep_dir>/study.db); postgresql://USER@HOST/DB for several '
                        'machines, the password in ~/.pgpass or $PGPASSWORD.')
    flags.DEFINE_string('study_name', None, 'Optuna study name (default: the script\'s name).')
    flags.DEFINE_multi_string('eval_flag', [], 'CIFAR-10: a flag for cifar10/eval.py '
                              '(e.g. --eval_flag=--num_examples=1000).')
    flags.DEFINE_integer('eval_interval_secs', 60, 'CIFAR-10, with a pruner: how often eval.py '
                         'beside a trial looks for a new checkpoint.', lower_bound=1)
    flags.DEFINE_boolean('summary', False, 'Print the table of the study in --sweep_dir (or '
                         '--storage) and exit; nothing is run.')


# ---------------------------------------------------------------------------------------------
# The script's flags, as absl parses them (read in a subprocess: the scripts import TensorFlow)
# ---------------------------------------------------------------------------------------------

_PROJECT_PACKAGES = ('mnist', 'cifar10', 'common')


def _flags_worker_main():
    """In a subprocess: defines one script's flags, parses the candidate values and the fixed
    arguments with absl's own parsers, prints JSON (see script_flags)."""
    import importlib
    job = json.loads(sys.argv[1])
    module = importlib.import_module(job['module'])
    module.define_flags()
    by_module = FLAGS.flags_by_module_dict()
    mine = {f.name: f for mod, fl in by_module.items()
            if mod == sys.argv[0] or mod.split('.')[0] in _PROJECT_PACKAGES for f in fl}
    out = {'flags': {}, 'values': {}, 'errors': [], 'fixed': {}}
    for name, f in mine.items():
        parser = f.parser
        out['flags'][name] = dict(
            type=f.flag_type(), default=f.default, help=f.help,
            enum=list(getattr(parser, 'enum_values', None) or []) or None,
            lower=getattr(parser, 'lower_bound', None), upper=getattr(parser, 'upper_bound', None))
    for name, values in job['values'].items():
        if name not in mine:
            continue
        parsed = []
        for value in values:
            try:
                parsed.append(mine[name].parser.parse(value))
            except (ValueError, TypeError) as e:
                out['errors'].append([name, value, str(e)])
        out['values'][name] = parsed
    try:
        left = FLAGS(['script'] + job['args'])
        if len(left) > 1:
            out['errors'].append(['', left[1], 'not a flag (expected --name=value)'])
        out['fixed'] = {f.name: f.value for f in mine.values() if f.present}
    except flags.UnrecognizedFlagError as e:
        out['errors'].append(['', '--' + e.flagname, None])
    except flags.Error as e:
        out['errors'].append(['', ' '.join(job['args']), str(e)])
    print('\n' + json.dumps(out))


def script_flags(modules_jobs):
    """{module: job} -> {module: result}: each module's flags (type, default, enum values,
    bounds), the job's 'values' ({name: [strings]}) parsed by absl, the job's 'args' (the
    fixed flags) parsed, and the errors. The modules run in parallel subprocesses."""
    procs = {}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='3',
               PYTHONPATH=os.pathsep.join([REPO] + [p for p in [os.environ.get('PYTHONPATH')]
                                                    if p]))
    for module, job in modules_jobs.items():
        job = dict(job, module=module)
        procs[module] = subprocess.Popen(
            [sys.executable, '-c', 'from tools import sweep; sweep._flags_worker_main()',
             json.dumps(job)], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
    results = {}
    for module, proc in procs.items():
        out, err = proc.communicate()
        if proc.returncode != 0 or not out.strip():
            last = (err.strip().splitlines() or ['exit status %d' % proc.returncode])[-1]
            raise SweepError('cannot read the flags of %s: %s' % (module, last))
        results[module] = json.loads(out.strip().splitlines()[-1])
    return results


# ---------------------------------------------------------------------------------------------
# The search space: --grid, --range, --case
# ---------------------------------------------------------------------------------------------

Param = collections.namedtuple('Param', 'name kind values low high log')  # kind: grid range case

_NAME = r'[A-Za-z_][A-Za-z0-9_]*'


def parse_grid(text):
    """'NAME=V1,V2' -> (name, ['V1', 'V2']); SweepError when it cannot be parsed."""
    m = re.match(r'^(%s)=(.+)$' % _NAME, text)
    values = m and m.group(2).split(',')
    if not m or not all(v.strip() for v in values):
        raise SweepError('--grid %s: expected NAME=V1,V2,... (e.g. --grid learning_rate='
                         '0.001,0.003)' % text)
    values = [v.strip() for v in values]
    if len(set(values)) != len(values):
        raise SweepError('--grid %s: a value is given twice' % text)
    return m.group(1), values


def parse_range(text):
    """'NAME=LOW:HIGH[:log|:linear]' -> Param (log None: not said); SweepError when it cannot
    be parsed (LOW and HIGH numbers, LOW < HIGH, LOW > 0 on a log scale)."""
    m = re.match(r'^(%s)=([^:]+):([^:]+)(?::(log|linear))?$' % _NAME, text)
    expected = ('--range %s: expected NAME=LOW:HIGH or NAME=LOW:HIGH:log, LOW < HIGH (e.g. '
                '--range max_learning_rate=1e-4:1e-2)' % text)
    if not m:
        raise SweepError(expected)
    try:
        low, high = float(m.group(2)), float(m.group(3))
    except ValueError:
        raise SweepError(expected) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise SweepError(expected)
    log = {'log': True, 'linear': False, None: None}[m.group(4)]
    if log and low <= 0:
        raise SweepError('--range %s: a log scale needs LOW > 0' % text)
    return Param(m.group(1), 'range', None, m.group(2), m.group(3), log)


def parse_case(text):
    """'NAME=V,NAME=V' -> {name: 'V'}; SweepError when it cannot be parsed."""
    case = {}
    for item in text.split(','):
        m = re.match(r'^(%s)=(.+)$' % _NAME, item.strip())
        if not m or m.group(1) in case:
            raise SweepError('--case %s: expected NAME=VALUE,NAME=VALUE,... with each flag once '
                             '(e.g. --case optimizer=adam,batch_size=512)' % text)
        case[m.group(1)] = m.group(2)
    return case


def flag_arg(name, value):
    """The command-line form of a flag value: --name=value, --name / --noname for booleans."""
    if isinstance(value, bool):
        return '--%s' % name if value else '--no%s' % name
    return '--%s=%s' % (name, value)


def _show(value):
    return '%.4g' % value if isinstance(value, float) else str(value)


class Sweep(object):
    """Everything a sweep is: the script, the search space, the fixed flags, the seeds, the
    budget, where the study lives. Built by plan(); nothing is written by building it."""

    def __init__(self, script, params, cases, fixed, seeds, budget, sampler, info):
        self.script = script
        self.params = params            # name -> Param, the values parsed (typed)
        self.cases = cases              # [{name: typed value}], every case's flags filled in
        self.fixed = fixed              # the flags after --, as given
        self.seeds = seeds              # [0, 1, ...], or [None] when the flags set --seed
        self.budget = budget
        self.sampler = sampler
        self.info = info                # the script's flags: name -> type, default, ...
        self.steps = None
        self.sweep_dir = self.storage_url = self.study_name = None
        self.eval_args = []

    def definition(self):
        """What must be the same when a study is resumed or shared (JSON-able)."""
        return dict(script=self.script.path, fixed=self.fixed, seeds=self.seeds,
                    eval_args=self.eval_args, cases=self.cases,
                    params={n: [p.kind, p.values, p.low, p.high, p.log]
                            for n, p in sorted(self.params.items())})

    def distributions(self):
        """name -> Optuna distribution."""
        dists = {}
        for name, p in sorted(self.params.items()):
            if p.kind == 'range':
                cls = (optuna.distributions.IntDistribution
                       if self.info[name]['type'] == 'int'
                       else optuna.distributions.FloatDistribution)
                dists[name] = cls(p.low, p.high, log=p.log)
            else:
                dists[name] = optuna.distributions.CategoricalDistribution(p.values)
        return dists

    def args(self, params, seed):
        """The trial's flags after its folder flag: its parameters, the fixed flags, --seed."""
        args = [flag_arg(n, params[n]) for n in sorted(params)] + list(self.fixed)
        if seed is not None:
            args.append('--seed=%d' % seed)
        return args

    def describe(self):
        parts = []
        for name, p in sorted(self.params.items()):
            if p.kind == 'range':
                parts.append('--%s %s in [%s, %s]' % (name, 'log-uniform' if p.log else 'uniform',
                                                      _show(p.low), _show(p.high)))
            elif p.kind == 'grid':
                parts.append('--%s in {%s}' % (name, ', '.join(_show(v) for v in p.values)))
        what = {'grid': 'grid', 'tpe': 'TPE sampler', 'random': 'random sampler',
                'cases': 'the cases'}[self.sampler]
        text = '%d trial(s) of %s: %s' % (self.budget, self.script.path, what)
        if self.cases:
            text += ' (%s)' % '; '.join(' '.join(flag_arg(n, v) for n, v in sorted(c.items()))
                                        for c in self.cases[:self.budget])
            if self.sampler != 'cases':
                text += ' first'
        if parts:
            text += ', ' + '; '.join(parts)
        if self.fixed:
            text += '; fixed: %s' % ' '.join(self.fixed)
        seeds = [s for s in self.seeds if s is not None]
        if seeds:
            text += '; --seed=%s per trial' % ','.join(str(s) for s in seeds)
        return text


def _script(path):
    if path is None:
        raise SweepError('no script: expected one of %s (e.g. python -m tools.sweep '
                         'mnist/deep_cnn.py --grid ...)' % ', '.join(SCRIPTS))
    full = os.path.abspath(path)
    rel = os.path.relpath(full, REPO) if os.path.exists(full) else path
    rel = rel.replace(os.sep, '/')
    if rel not in SCRIPTS:
        raise SweepError('%s: not a script a sweep runs; expected one of %s'
                         % (path, ', '.join(SCRIPTS)))
    return SCRIPTS[rel]


def _unknown_flag(script, name, info, given):
    close = difflib.get_close_matches(name, list(info), n=1)
    return SweepError('%s: %s has no flag --%s%s' % (
        given, script.path, name, ' (did you mean --%s?)' % close[0] if close else ''))


def plan(script_path, fixed, grid=(), ranges=(), cases=(), trials=None, sampler=None, seeds=1,
         eval_flags=(), flag_reader=script_flags):
    """Parses and checks a sweep (SweepError for bad input); returns a Sweep. Nothing is
    written. flag_reader: script_flags, or a stand-in for tests."""
    script = _script(script_path)
    given = {}                                     # name -> how the user gave it (for errors)
    grid_values, range_params, case_values = {}, {}, []
    for text in grid:
        name, values = parse_grid(text)
        if name in given:
            raise SweepError('--grid %s: --%s is already in %s' % (text, name, given[name]))
        given[name], grid_values[name] = '--grid ' + text, values
    for text in ranges:
        p = parse_range(text)
        if p.name in given:
            raise SweepError('--range %s: --%s is already in %s' % (text, p.name, given[p.name]))
        given[p.name], range_params[p.name] = '--range ' + text, p
    for text in cases:
        case = parse_case(text)
        for name in case:
            if name in given and not given[name].startswith('--case'):
                raise SweepError('--case %s: --%s is already in %s' % (text, name, given[name]))
            given.setdefault(name, '--case ' + text)
        case_values.append((text, case))
    if grid_values and case_values:
        raise SweepError('--grid and --case together: give the cases only, or the grid only')
    if sampler == 'grid' and (range_params or case_values):
        raise SweepError('--sampler=grid: a grid needs --grid flags only (no --range, no --case)')
    if sampler is None:
        sampler = ('grid' if grid_values and not range_params else
                   'cases' if not grid_values and not range_params else 'tpe')
    if not (grid_values or range_params or case_values):
        raise SweepError('nothing to search: give --grid NAME=V1,V2,..., --range NAME=LOW:HIGH '
                         'or --case NAME=V,...')

    # What absl makes of every value, in the script's own parsers
    to_parse = collections.defaultdict(list)
    for name, values in grid_values.items():
        to_parse[name] += values
    for name, p in range_params.items():
        to_parse[name] += [p.low, p.high]
    for _, case in case_values:
        for name, value in case.items():
            to_parse[name].append(value)
    jobs = {script.module: dict(values=dict(to_parse), args=list(fixed))}
    if script.evaluator:
        jobs['cifar10.eval'] = dict(values={}, args=list(eval_flags))
    read = flag_reader(jobs)
    result = read[script.module]
    info = result['flags']
    for name in sorted(to_parse):
        if name not in info:
            raise _unknown_flag(script, name, info, given[name])
        if name in NOT_SWEPT or name == script.run_dir_flag:
            why = NOT_SWEPT.get(name) or 'the sweep sets it: each trial has its own folder'
            raise SweepError('%s: --%s cannot be swept (%s)' % (given[name], name, why))
    for name, value, message in result['errors']:
        if name:
            raise SweepError('%s: %r is not a value of --%s (%s)' % (given[name], value, name,
                                                                    message))
        if message is None:  # an unknown flag after --
            raise _unknown_flag(script, value[2:], info, '%s after --' % value)
        raise SweepError('%s after --: %s (the flags of %s)' % (value, message, script.path))
    fixed_values = result['fixed']
    for name in fixed_values:
        if name in given:
            raise SweepError('--%s is both after -- and in %s' % (name, given[name]))
        if name in NOT_SWEPT or name == script.run_dir_flag:
            why = NOT_SWEPT.get(name) or 'the sweep sets it: each trial has its own folder'
            raise SweepError('--%s after --: not in a sweep (%s)' % (name, why))
    if script.evaluator:
        ev = read['cifar10.eval']
        for _, value, message in ev['errors']:
            raise SweepError('--eval_flag %s: %s' % (value, message or '%s has no such flag'
                                                     % script.evaluator))
        for name in ('checkpoint_dir', 'eval_dir', 'run_once', 'eval_interval_secs'):
            if name in ev['fixed']:
                raise SweepError('--eval_flag=--%s: the sweep sets it' % name)

    parsed = result['values']
    params = {}
    for name, values in grid_values.items():
        params[name] = Param(name, 'grid', parsed[name], None, None, None)
    for name, p in range_params.items():
        kind = info[name]['type']
        if kind not in ('float', 'int'):
            raise SweepError('%s: --%s is a %s flag, a range needs a number flag (use --grid '
                             '%s=...)' % (given[name], name, kind, name))
        low, high = parsed[name]
        log = p.log if p.log is not None else ('learning_rate' in name and low > 0)
        params[name] = Param(name, 'range', None, low, high, log)
    typed_cases = []
    if case_values:
        names = sorted({n for _, case in case_values for n in case})
        values_of = {n: iter(parsed[n]) for n in names}
        for _, case in case_values:
            typed = {n: next(values_of[n]) for n in case}
            for n in names:  # a flag a case does not give takes the script's default
                typed.setdefault(n, info[n]['default'])
            typed_cases.append(typed)
        for n in names:
            choices = []
            for case in typed_cases:
                if case[n] not in choices:
                    choices.append(case[n])
            params[n] = Param(n, 'case', choices, None, None, None)

    # Seeds: 0..K-1, or the --seed the flags give
    if 'seed' in params or 'seed' in fixed_values:
        if seeds > 1:
            raise SweepError('--seeds=%d and --seed given: give one of them' % seeds)
        seed_list = [None]
    else:
        seed_list = list(range(seeds))

    # The budget
    grid_size = math.prod(len(p.values) for p in params.values() if p.kind == 'grid')
    if sampler == 'grid':
        budget = min(trials or grid_size, grid_size)
    elif not range_params and not grid_values:
        budget = min(trials or len(typed_cases), len(typed_cases))
    elif trials is None:
        raise SweepError('--trials=N is needed with --range or --sampler=%s' % sampler)
    else:
        budget = trials
    sweep = Sweep(script, params, typed_cases, list(fixed), seed_list, budget, sampler, info)
    steps_values = [v for p in params.values() if p.name == script.steps_flag
                    for v in (p.values or [p.low, p.high])]
    sweep.steps = max(steps_values or [fixed_values.get(script.steps_flag,
                                                        info[script.steps_flag]['default'])])
    sweep.eval_args = list(eval_flags)
    return sweep


# ---------------------------------------------------------------------------------------------
# The study: its storage, and a lock so that workers take trials one at a time
# ---------------------------------------------------------------------------------------------

class StudyLock(object):
    """A lock shared by every worker of a study while it takes a trial (so that two workers
    never take the same grid point) or starts the study: a file lock beside an SQLite
    database, PostgreSQL's advisory lock, MySQL's GET_LOCK; none for other storages."""

    def __init__(self, url, study_name):
        import sqlalchemy
        self._url = sqlalchemy.engine.make_url(url)
        self._key = study_name
        self._file = self._engine = self._conn = None
        self.kind = self._url.get_backend_name()
        if self.kind == 'sqlite':
            database = self._url.database
            self._path = None if not database or database == ':memory:' else (
                os.path.abspath(database) + '.lock')
        elif self.kind in ('postgresql', 'mysql'):
            self._engine = sqlalchemy.create_engine(
                url, poolclass=sqlalchemy.pool.NullPool)

    def __enter__(self):
        import sqlalchemy
        if self.kind == 'sqlite' and self._path:
            self._file = open(self._path, 'a')
            fcntl.flock(self._file, fcntl.LOCK_EX)
        elif self.kind == 'postgresql':
            self._conn = self._engine.connect()
            self._conn.execute(sqlalchemy.text('SELECT pg_advisory_lock(hashtext(:k))'),
                               {'k': 'tf-classics-sweep:' + self._key})
        elif self.kind == 'mysql':
            self._conn = self._engine.connect()
            self._conn.execute(sqlalchemy.text('SELECT GET_LOCK(:k, -1)'),
                               {'k': 'tf-classics-sweep:' + self._key})
        return self

    def __exit__(self, *exc):
        import sqlalchemy
        if self._file:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._conn is not None:
            unlock = ('SELECT pg_advisory_unlock(hashtext(:k))' if self.kind == 'postgresql'
                      else 'SELECT RELEASE_LOCK(:k)')
            self._conn.execute(sqlalchemy.text(unlock), {'k': 'tf-classics-sweep:' + self._key})
            self._conn.close()
            self._conn = None


def shown_url(url):
    """url as every line and file of the sweep shows it: its password, if any, as ***."""
    try:
        import sqlalchemy
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy parses: hide whatever stands between : and @
        return re.sub(r'(://[^/:@]*:)[^/@]*@', r'\1***@', url)


def _hide_password(text, url):
    """text with url's password, wherever it appears, as ***."""
    try:
        import sqlalchemy
        password = sqlalchemy.engine.make_url(url).password
    except Exception:
        m = re.search(r'://[^/:@]*:([^/@]*)@', url)
        password = m and m.group(1)
    return text.replace(password, '***') if password else text


# What a storage's error says -> why it failed. The first group: its server answered and said
# no; the rest: nothing answered.
_REFUSALS = [('authentication failed', r'authentication failed|no password supplied|pg_hba\.conf'
                                       r'|Access denied for user'),
             ('database does not exist', r'database ".*" does not exist|Unknown database'),
             ('permission denied', r'permission denied|readonly database|command denied')]
_NO_ANSWER = [('host name not found', r'could not translate host name|Name or service not known'
                                      r'|name resolution|Unknown (MySQL|MariaDB) server host'),
              ('no answer', r'')]


def storage_error(url, error):
    """The SweepError for a storage that failed: 'refused' (authentication failed, permission
    denied, a database that does not exist, or anything else its server said) or 'cannot be
    reached' (no answer, a host name not found), naming which; no password in it."""
    original = error
    for _ in range(10):  # through Optuna's wrapping, then SQLAlchemy's, to the driver's error
        inner = getattr(original, 'orig', None) or original.__cause__
        if inner is None:
            break
        original = inner
    text = str(original).strip() or type(original).__name__
    first = _hide_password(text.splitlines()[0], url)
    for why, pattern in _REFUSALS:
        if re.search(pattern, text, re.I):
            return SweepError('--storage=%s: refused (%s): %s' % (shown_url(url), why, first))
    if getattr(original, 'sqlstate', None) or 'FATAL:' in text:  # its server answered
        return SweepError('--storage=%s: refused: %s' % (shown_url(url), first))
    why = next(w for w, pattern in _NO_ANSWER if re.search(pattern, text, re.I))
    return SweepError('--storage=%s: cannot be reached (%s): %s' % (shown_url(url), why, first))


def open_storage(url, lock=None):
    """Optuna's RDBStorage at url, with heartbeats (a trial whose worker died on another
    machine is given up after GRACE_SECS and run again), opened under the lock (a new database
    gets its tables once). SweepError when it cannot be reached or refuses."""
    import warnings
    warnings.filterwarnings('ignore', category=optuna.exceptions.ExperimentalWarning)
    # We ask and tell, and record the heartbeats ourselves (work, run_once).
    warnings.filterwarnings('ignore', message='Heartbeat of storage is supposed to be used')
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import sqlalchemy
    parsed = sqlalchemy.engine.make_url(url)  # connect() checked it
    kwargs = {}
    if parsed.get_backend_name() == 'sqlite':
        folder = os.path.dirname(os.path.abspath(parsed.database or '.'))
        if parsed.database and parsed.database != ':memory:' and not os.path.isdir(folder):
            raise SweepError('--storage=%s: cannot be reached (no folder %s)'
                             % (shown_url(url), folder))
        kwargs['engine_kwargs'] = {'connect_args': {'timeout': 120}}
    try:
        with lock or contextlib.nullcontext():
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=HEARTBEAT_SECS, grace_period=GRACE_SECS,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(),
                **kwargs)
    except ImportError as e:
        raise SweepError('--storage=%s: its database driver is not installed (%s)'
                         % (shown_url(url), e)) from None
    except Exception as e:  # sqlalchemy's OperationalError, ArgumentError, ...
        raise storage_error(url, e) from None


def connect(url, study_name):
    """(storage, lock) of a study; SweepError when the storage cannot be reached or refuses."""
    try:
        lock = StudyLock(url, study_name)
    except ImportError as e:
        raise SweepError('--storage=%s: its database driver is not installed (%s)'
                         % (shown_url(url), e)) from None
    except Exception as e:  # sqlalchemy.exc.ArgumentError: not a URL
        raise SweepError('--storage=%s: not a database URL Optuna can use (%s)'
                         % (shown_url(url), _hide_password(str(e), url))) from None
    return open_storage(url, lock), lock


def _process_alive(pid):
    """Whether pid is a live sweep worker on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return b'sweep' in f.read()
    except OSError:
        return True


def _retry(study, frozen):
    """Queues an interrupted trial again (same parameters, same folder)."""
    optuna.storages.RetryHeartbeatStaleTrialCallback()(study, frozen)


def reap_interrupted(study):
    """Gives up the RUNNING trials whose worker on this machine is gone (killed), and queues
    each again; those of other machines come back through the heartbeat (GRACE_SECS).
    Returns the numbers given up."""
    optuna.storages.fail_stale_trials(study)
    host, reaped = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get('pid')
        if t.user_attrs.get('host') != host or pid is None or pid == os.getpid():
            continue
        if _process_alive(pid):
            continue
        try:
            if not study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                continue
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        _retry(study, study._storage.get_trial(t._trial_id))
        reaped.append(t.number)
    return reaped


def outcome(t):
    """A trial's state for the table: done, pruned, diverged, failed, interrupted, running,
    waiting."""
    if t.state == TrialState.COMPLETE:
        return 'done'
    if t.state == TrialState.PRUNED:
        return 'diverged' if t.user_attrs.get('outcome') == 'diverged' else 'pruned'
    if t.state == TrialState.FAIL:
        return 'failed' if t.user_attrs.get('outcome') == 'failed' else 'interrupted'
    return t.state.name.lower()


def counts_in_budget(t):
    """An interrupted trial does not count: it is queued again (WAITING), and that counts."""
    return outcome(t) != 'interrupted'


# ---------------------------------------------------------------------------------------------
# Reading a run's figures
# ---------------------------------------------------------------------------------------------

class EventReader(object):
    """An event file read as it grows, with TensorBoard's own reader for machines without
    TensorFlow (TensorBoard's loaders would import TensorFlow into the sweep's process)."""

    def __init__(self, path):
        from tensorboard.compat.tensorflow_stub import pywrap_tensorflow
        self._reader = pywrap_tensorflow.PyRecordReader_New(path)

    def new_events(self):
        """The events written since the last call (a record still being written waits)."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.compat.tensorflow_stub import errors
        while True:
            try:
                self._reader.GetNext()
            except (errors.OutOfRangeError, errors.DataLossError):
                return
            yield event_pb2.Event.FromString(self._reader.record())


class Figures(object):
    """The figures a run writes, read as they come: (step, value) pairs of the script's test
    figure (a fraction) from its event files, incrementally."""

    def __init__(self, script, run_dir):
        self._script = script
        self._folder = os.path.join(run_dir, script.events)
        self._readers = {}
        self.values = {}  # step -> (wall_time, value): the latest value written at each step

    def read(self):
        """Reads what is new; returns the steps that got a value."""
        new = set()
        from tensorboard.util import tensor_util
        for path in sorted(glob.glob(os.path.join(self._folder, '*tfevents*'))):
            if path not in self._readers:
                self._readers[path] = EventReader(path)
            for event in self._readers[path].new_events():
                for v in event.summary.value:
                    if v.tag != self._script.tag:
                        continue
                    value = (v.simple_value if v.HasField('simple_value')
                             else float(tensor_util.make_ndarray(v.tensor)))
                    if event.wall_time >= self.values.get(event.step, (-1, None))[0]:
                        self.values[event.step] = (event.wall_time,
                                                   float(value) / self._script.unit)
                        new.add(event.step)
        return sorted(new)

    def final(self):
        """(step, value) at the last step, or (None, None)."""
        if not self.values:
            return None, None
        step = max(self.values)
        return step, self.values[step][1]


# ---------------------------------------------------------------------------------------------
# TensorBoard's HParams plugin: the experiment, and one session per run
# ---------------------------------------------------------------------------------------------

EXPERIMENT_FILE = 'events.out.tfevents.sweep-experiment'


_written = collections.Counter()


def write_events(folder, summary, step=0, name=None):
    """Writes an event file holding `summary` at `step` into folder (the TFRecord format, with
    TensorBoard's writer), whole: written beside, then renamed. Returns its path."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter
    now = time.time()
    _written[folder] += 1
    name = name or 'events.out.tfevents.%d.%s.%d.%d.sweep' % (
        now, socket.gethostname(), os.getpid(), _written[folder])
    temp = os.path.join(folder, '.%s.tmp' % name.replace('tfevents', 'tmp'))
    with open(temp, 'wb') as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(wall_time=now, file_version='brain.Event:2')
                     .SerializeToString())
        writer.write(event_pb2.Event(wall_time=now, step=step, summary=summary)
                     .SerializeToString())
    path = os.path.join(folder, name)
    os.replace(temp, path)
    return path


def write_experiment(sweep):
    """<sweep_dir>/events.out.tfevents.sweep-experiment: the hyperparameters (their domains)
    and the metrics of the sweep, for the HParams dashboard (replaced atomically)."""
    from tensorboard.plugins.hparams import summary_v2 as hp
    hparams = []
    for name, p in sorted(sweep.params.items()):
        if p.kind == 'range':
            domain = (hp.IntInterval(int(p.low), int(p.high)) if sweep.info[name]['type'] == 'int'
                      else hp.RealInterval(float(p.low), float(p.high)))
        else:
            domain = hp.Discrete(p.values)
        hparams.append(hp.HParam(name, domain, description=sweep.info[name]['help']))
    name = metric(sweep.script)
    metrics = [hp.Metric(name, display_name=METRIC_NAMES[name],
                         description='the trial\'s %s (at its last step)' % METRIC_NAMES[name]),
               hp.Metric('steps', description='the last step the run reached'),
               hp.Metric('wall_seconds', description='the run\'s wall time')]
    write_events(sweep.sweep_dir, hp.hparams_config_pb(hparams, metrics), name=EXPERIMENT_FILE)


def write_session_start(run_dir, params, group):
    """The run's hyperparameters (a session of the HParams plugin, in group `group`)."""
    from tensorboard.plugins.hparams import summary_v2 as hp
    write_events(run_dir, hp.hparams_pb(params, trial_id=group))


def write_session_end(run_dir, metric, value, step, wall_seconds, state):
    """The run's figures (scalars the HParams plugin shows as its metrics) and its status."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
    values = [summary_pb2.Summary.Value(tag='steps', simple_value=step or 0),
              summary_pb2.Summary.Value(tag='wall_seconds', simple_value=wall_seconds)]
    if value is not None and state in ('done', 'pruned'):  # a diverged run's is from before
        values.append(summary_pb2.Summary.Value(tag=metric, simple_value=value))
    # The plugin's statuses are success, failure, running and unknown: a run that stopped
    # before its last step (pruned, diverged, failed) is a failure there.
    status = api_pb2.STATUS_SUCCESS if state == 'done' else api_pb2.STATUS_FAILURE
    end = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time()))
    summary = summary_pb2.Summary(value=values)
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG,
                      metadata=metadata.create_summary_metadata(end),
                      tensor=metadata.NULL_TENSOR)
    write_events(run_dir, summary, step or 0)


# ---------------------------------------------------------------------------------------------
# Running a trial
# ---------------------------------------------------------------------------------------------

# Starts the script with SIGINT at its default (a shell that backgrounded the sweep leaves it
# ignored) and dying with the sweep (PR_SET_PDEATHSIG): a killed sweep leaves no trial behind
# writing into a folder that the next run of the sweep resumes. Each run is in a session of its
# own (_start): Ctrl-C reaches the sweep alone, which stops the run with exactly one SIGINT (a
# second one during TensorFlow's shutdown can abort it).
_LAUNCHER = r'''
import ctypes, os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    sys.exit('the sweep is gone')
os.execv(sys.argv[2], sys.argv[2:])
'''


def _env():
    path = os.environ.get('PYTHONPATH')
    # TensorFlow's own lines as the scripts decide (common/logs.py), so that a trial's log.txt
    # holds the script's lines and its last line is the script's
    return dict(os.environ, PYTHONUNBUFFERED='1',
                PYTHONPATH=REPO + (os.pathsep + path if path else ''))


def _start(cmd, log):
    log.write('$ %s\n' % ' '.join(cmd))
    log.flush()
    return subprocess.Popen([sys.executable, '-c', _LAUNCHER, str(os.getpid())] + cmd, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, env=_env(),
                            start_new_session=True)


def _interrupt(proc):
    """One SIGINT to a run (Ctrl-C for it), never a second."""
    if proc is not None and proc.poll() is None and not getattr(proc, 'interrupted', False):
        proc.interrupted = True
        proc.send_signal(signal.SIGINT)


def _stop(proc, wait=60):
    """Stops a run as Ctrl-C would (its checkpoints are kept), then harder."""
    if proc is None or proc.poll() is not None:
        return
    _interrupt(proc)
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _last_line(log_path, start=0):
    with open(log_path, errors='replace') as f:
        f.seek(start)
        lines = [line.strip() for line in f.read().splitlines() if line.strip()]
    return lines[-1] if lines else '(no output)'


def commands(sweep, run_dir, params, seed):
    """The commands of one run: the script, and for CIFAR-10 the final eval.py --run_once."""
    script = sweep.script
    py = 'python'
    cmd = [py, script.path]
    cmd.append('--%s=%s' % (script.run_dir_flag, os.path.join(run_dir, script.run_subdir)))
    cmd += sweep.args(params, seed)
    if not script.evaluator:
        return [cmd]
    return [cmd, [py, script.evaluator] + _eval_args(sweep, run_dir) + ['--run_once']]


def _eval_args(sweep, run_dir):
    args = ['--checkpoint_dir=%s' % os.path.join(run_dir, sweep.script.run_subdir),
            '--eval_dir=%s' % os.path.join(run_dir, sweep.script.events)]
    data_dir = [a for a in sweep.fixed if a.startswith('--data_dir=')]
    return args + data_dir + list(sweep.eval_args)


def _python(cmd):
    return [sys.executable] + cmd[1:]


class Stopping(object):
    """Ctrl-C and SIGTERM: the sweep stops its trial (which keeps its checkpoints), queues it
    again and exits; a second one exits at once."""

    def __init__(self):
        self.requested = False
        self.procs = []

    def __call__(self, signum, frame):
        if self.requested:
            for proc in self.procs:
                if proc.poll() is None:
                    proc.kill()
            sys.exit(130)
        self.requested = True
        for proc in self.procs:
            _interrupt(proc)


RunResult = collections.namedtuple('RunResult', 'state value step wall last_line')


def run_once(sweep, trial, run_dir, params, seed, group, report, stopping, heartbeat):
    """One run of the script (one seed) in run_dir. report: whether its figures go to the
    pruner. Returns a RunResult (state: done, pruned, diverged, failed, interrupted)."""
    script = sweep.script
    if stopping.requested:  # Ctrl-C while the trial was being taken
        return RunResult('interrupted', None, None, 0.0, '')
    os.makedirs(run_dir, exist_ok=True)
    write_session_start(run_dir, params, group)
    log_path = os.path.join(run_dir, 'log.txt')
    figures = Figures(script, run_dir)
    cmds = commands(sweep, run_dir, params, seed)
    start = time.time()
    log = open(log_path, 'a')
    log_start = log.tell()
    proc = _start(_python(cmds[0]), log)
    poller = poller_log = None
    if script.evaluator and sweep.pruner != 'none':  # eval.py beside it, as in the report
        poller_log = open(os.path.join(run_dir, 'eval_log.txt'), 'a')
        poller = _start(_python(cmds[1][:-1]) + ['--eval_interval_secs=%d'
                                                 % sweep.eval_interval_secs], poller_log)
    stopping.procs[:] = [p for p in (proc, poller) if p]
    state, reported, last_beat = None, set(), time.time()
    try:
        while proc.poll() is None:
            time.sleep(POLL_SECS)
            if time.time() - last_beat > HEARTBEAT_SECS:
                heartbeat()
                last_beat = time.time()
            if stopping.requested:
                _stop(proc)
                state = 'interrupted'
                break
            if not report:
                continue
            new = [s for s in figures.read() if s not in reported]
            for step in new:
                trial.report(figures.values[step][1], step)
                reported.add(step)
            if new and trial.should_prune():
                _stop(proc)
                state = 'pruned'
    finally:
        _stop(poller, wait=30)
        if poller_log:
            poller_log.close()
    rc = proc.wait()
    if state is None and rc == 0 and script.evaluator and not stopping.requested:
        ev = _start(_python(cmds[1]), log)  # the final checkpoint, whether or not the poller had it
        stopping.procs[:] = [ev]
        rc = ev.wait()
        if stopping.requested:
            state = 'interrupted'
    log.close()
    stopping.procs[:] = []
    wall = time.time() - start
    figures.read()
    step, value = figures.final()
    last = _last_line(log_path, log_start)
    if state is None:
        diverged = DIVERGED_LINE.match(last)
        if rc == 0 and value is not None:
            state = 'done'
        elif diverged:
            state, step = 'diverged', int(diverged.group(1))
        elif rc == 0:
            state, last = 'failed', 'no %s in %s' % (
                METRIC_NAMES[metric(script)], os.path.join(run_dir, script.events))
        elif stopping.requested:
            state = 'interrupted'
        else:
            state = 'failed'
    if state != 'interrupted':
        write_session_end(run_dir, metric(script), value, step, wall, state)
    return RunResult(state, value, step, wall, last)


def run_trial(sweep, study, trial, stopping):
    """Runs a trial's seeds, then tells Optuna. Returns (state, value)."""
    frozen = study._storage.get_trial(trial._trial_id)
    retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
    folder = frozen.user_attrs.get('dir') if retried is not None else None
    if folder is None:
        folder = 'trial-%04d' % trial.number
        path = os.path.join(sweep.sweep_dir, folder)
        if os.path.exists(path):  # another study's, or a study.db deleted: never reuse it
            aside = '%s.old-%s' % (path, datetime.datetime.now().strftime('%Y%m%d-%H%M%S'))
            os.rename(path, aside)
            print('(moved an older %s aside to %s)' % (path, aside), flush=True)
    trial.set_user_attr('dir', folder)
    params = dict(trial.params)
    trial_dir = os.path.join(sweep.sweep_dir, folder)
    flags_text = ' '.join(flag_arg(n, params[n]) for n in sorted(params))
    print('trial %d: started: %s (%s%s)' % (trial.number, flags_text, folder,
                                            ', resuming trial %d' % retried
                                            if retried is not None else ''), flush=True)

    def heartbeat():
        study._storage.record_heartbeat(trial._trial_id)

    results = []
    for k, seed in enumerate(sweep.seeds):
        run_dir = trial_dir if len(sweep.seeds) == 1 else os.path.join(trial_dir, 'seed-%d' % seed)
        result = run_once(sweep, trial, run_dir, params, seed, folder, report=(k == 0),
                          stopping=stopping, heartbeat=heartbeat)
        results.append(result)
        if result.state != 'done':
            break
    state = results[-1].state
    wall = sum(r.wall for r in results)
    steps = max([r.step for r in results if r.step is not None] or [0])
    trial.set_user_attr('wall_seconds', round(wall, 1))
    trial.set_user_attr('steps', steps)
    trial.set_user_attr('seeds', [s for s in sweep.seeds[:len(results)]])
    if state == 'interrupted':
        study.tell(trial, state=TrialState.FAIL)  # no 'outcome': queued again below
        _retry(study, study._storage.get_trial(trial._trial_id))
        print('trial %d: interrupted; it runs again, from its checkpoints in %s, with the same '
              'command' % (trial.number, folder), flush=True)
        return state, None
    values = [r.value for r in results if r.value is not None]
    value = None
    if state == 'done':
        value = statistics.mean(values)
        if len(values) > 1:
            trial.set_user_attr('std', statistics.stdev(values))
        study.tell(trial, value)
    elif state in ('pruned', 'diverged'):
        trial.set_user_attr('outcome', state)
        if state == 'diverged':
            trial.set_user_attr('last_line', results[-1].last_line)
        frozen = study.tell(trial, state=TrialState.PRUNED)
        value = frozen.value
    else:
        trial.set_user_attr('outcome', 'failed')
        trial.set_user_attr('last_line', results[-1].last_line[:500])
        study.tell(trial, state=TrialState.FAIL)
    what = METRIC_NAMES[metric(sweep.script)]
    detail = {'done': '%s %s at step %d' % (what, _fmt(value, trial.user_attrs.get('std')), steps),
              'pruned': 'at step %d (%s %s)' % (steps, what, _fmt(value)),
              'diverged': results[-1].last_line,
              'failed': results[-1].last_line}[state]
    print('trial %d: %s in %s: %s' % (trial.number, state, _clock(wall), detail), flush=True)
    return state, value


def _fmt(value, std=None):
    if value is None:
        return '—'
    return '%.4f' % value if std is None else '%.4f ± %.4f' % (value, std)


def _clock(seconds):
    return str(datetime.timedelta(seconds=int(seconds or 0)))


# ---------------------------------------------------------------------------------------------
# The sweep
# ---------------------------------------------------------------------------------------------

if optuna is not None:
    class _GridSampler(optuna.samplers.GridSampler):
        """Optuna's GridSampler without its study.stop() once the grid is taken, which is for
        study.optimize(): the sweep asks and tells, and counts its budget itself."""

        def after_trial(self, study, trial, state, values):
            pass


def make_pruner(sweep, name, startup_trials, warmup_steps):
    if warmup_steps is None:
        warmup_steps = max(1, sweep.steps // 4)
    if name == 'median':
        return optuna.pruners.MedianPruner(n_startup_trials=startup_trials,
                                           n_warmup_steps=warmup_steps)
    if name == 'hyperband':
        return optuna.pruners.HyperbandPruner(min_resource=max(1, warmup_steps),
                                              max_resource=max(sweep.steps, warmup_steps + 1))
    return optuna.pruners.NopPruner()


def make_sampler(sweep):
    if sweep.sampler == 'grid':
        return _GridSampler({n: p.values for n, p in sweep.params.items()})
    if sweep.sampler in ('random', 'cases'):  # cases: every trial is queued, none sampled
        return optuna.samplers.RandomSampler()
    # TPE starts with random trials: a tenth of the budget, at least 2, at most Optuna's 10
    return optuna.samplers.TPESampler(n_startup_trials=min(10, max(2, sweep.budget // 10)))


def open_study(sweep, storage, lock, pruner):
    """Creates or loads the study (under the lock), checks that it is this sweep, queues the
    cases. SweepError when the study holds another sweep, or when the storage refuses."""
    import sqlalchemy
    try:
        return _open_study(sweep, storage, lock, pruner)
    except sqlalchemy.exc.SQLAlchemyError as e:  # e.g. tables another user owns
        raise storage_error(sweep.storage_url, e) from None


def _open_study(sweep, storage, lock, pruner):
    with lock:
        study = optuna.create_study(storage=storage, study_name=sweep.study_name,
                                    direction='maximize', sampler=make_sampler(sweep),
                                    pruner=pruner, load_if_exists=True)
        definition = json.loads(json.dumps(sweep.definition()))
        stored = study.user_attrs.get('sweep')
        if stored is None:
            study.set_user_attr('sweep', definition)
            study.set_user_attr('command', sweep.command)
        elif stored != definition:
            raise SweepError(
                'the study %s in %s is another sweep (%s); run that command to go on with it, '
                'or give another --sweep_dir or --study_name'
                % (sweep.study_name, shown_url(sweep.storage_url),
                   study.user_attrs.get('command')))
        reap_interrupted(study)
        for case in sweep.cases[:sweep.budget]:
            study.enqueue_trial(case, skip_if_exists=True)
    return study


def work(sweep, study, lock, stopping):
    """Takes trials until the study's budget is spent (this worker's part of it)."""
    distributions = sweep.distributions()
    host = socket.gethostname()
    ran = 0
    while not stopping.requested:
        with lock:
            reaped = reap_interrupted(study)
            if reaped:
                print('trial(s) %s: their worker is gone; queued again'
                      % ', '.join(map(str, reaped)), flush=True)
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            counted = sum(1 for t in trials if counts_in_budget(t))
            if not waiting and counted >= sweep.budget:
                break
            trial = study.ask(distributions)
            trial.set_user_attr('host', host)
            trial.set_user_attr('pid', os.getpid())
            study._storage.record_heartbeat(trial._trial_id)
        run_trial(sweep, study, trial, stopping)
        ran += 1
    return ran


def summary(study, sweep_dir=None):
    """The table of a study, sorted by the figure, and the command of the best trial."""
    definition = study.user_attrs.get('sweep') or {}
    script = SCRIPTS.get(definition.get('script'))
    what = METRIC_NAMES[metric(script)] if script else 'value'
    trials = study.get_trials(deepcopy=False)
    retried = {}
    for t in trials:
        original = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
        if original is not None:
            retried.setdefault(original, []).append(t.number)
    shown = [t for t in trials if not (outcome(t) == 'interrupted' and t.number in retried)]
    order = {'done': 0, 'pruned': 1, 'diverged': 2, 'running': 3, 'waiting': 3}

    def figure(t):  # a pruned trial's: its last one; a diverged trial's would be from before
        return t.value if outcome(t) in ('done', 'pruned') else None

    shown.sort(key=lambda t: (order.get(outcome(t), 4),
                              -(figure(t) if figure(t) is not None else -math.inf), t.number))
    lines = ['| trial | flags | %s | steps | wall time | state |' % what,
             '|---|---|---|---|---|---|']
    for t in shown:
        flags_text = ' '.join(flag_arg(n, t.params[n]) for n in sorted(t.params))
        state = outcome(t)
        original = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(t)
        if original is not None:
            state += ' (%s trial %d)' % ('resumes' if state == 'waiting' else 'resumed', original)
        steps = t.user_attrs.get('steps')
        lines.append('| %d | %s | %s | %s | %s | %s |' % (
            t.number, flags_text, _fmt(figure(t), t.user_attrs.get('std')),
            '—' if steps is None else '{:,}'.format(steps),
            _clock(t.user_attrs.get('wall_seconds')) if 'wall_seconds' in t.user_attrs else '—',
            state))
    tally = collections.Counter(outcome(t) for t in shown)
    notes = ['', '%d trial(s): %s.' % (len(shown), ', '.join(
        '%d %s' % (n, s) for s, n in sorted(tally.items(), key=lambda kv: -kv[1])))]
    for t in shown:
        if outcome(t) == 'failed':
            notes.append('trial %d failed: %s' % (t.number, t.user_attrs.get('last_line')))
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    if done and script:
        best = max(done, key=lambda t: t.value)
        notes.append('Best: trial %d, %s %s. To reproduce it (in a new folder):' % (
            best.number, what, _fmt(best.value, best.user_attrs.get('std'))))
        stub = Sweep(script, {}, [], definition['fixed'], definition['seeds'], 0, None, {})
        stub.eval_args = definition.get('eval_args', [])
        rerun = os.path.join(sweep_dir or study.user_attrs.get('sweep_dir', ''),
                             best.user_attrs.get('dir', 'trial') + '-rerun')
        for seed in best.user_attrs.get('seeds') or [None]:
            for cmd in commands(stub, rerun, best.params, seed):
                notes.append('    ' + ' '.join(cmd))
    return '\n'.join(lines + notes) + '\n'


def _defaults(script, sweep_dir, storage):
    """(the script's stem, the sweep's folder, the storage URL): --sweep_dir and --storage,
    else sweeps/<stem> and the SQLite file in it."""
    stem = os.path.splitext(os.path.basename(script.path))[0] if script else None
    sweep_dir = os.path.abspath(sweep_dir or os.path.join('sweeps', stem or ''))
    storage = storage or 'sqlite:///%s' % os.path.join(sweep_dir, 'study.db')
    return stem, sweep_dir, storage


def summary_main(sweep_dir, storage, study_name):
    """--summary: the table of the study in --sweep_dir (or --storage), nothing run."""
    _, sweep_dir, storage_url = _defaults(None, sweep_dir, storage)
    if not storage and not os.path.exists(os.path.join(sweep_dir, 'study.db')):
        raise SweepError('--sweep_dir=%s: no study.db there (give the sweep\'s --sweep_dir or '
                         '--storage)' % sweep_dir)
    import sqlalchemy
    rdb, _ = connect(storage_url, '')
    try:
        names = optuna.get_all_study_names(rdb)
        name = study_name or (names[0] if len(names) == 1 else None)
        if name not in names:
            raise SweepError('--study_name: expected one of %s in %s' % (
                ', '.join(names) or '(none)', shown_url(storage_url)))
        study = optuna.load_study(study_name=name, storage=rdb)
        # the folder given, not the one the sweep ran in: a moved sweep_dir still reads
        print(summary(study, None if storage else sweep_dir), end='')
    except sqlalchemy.exc.SQLAlchemyError as e:
        raise storage_error(storage_url, e) from None


def run_sweep(sweep, storage, lock, stopping, prune_startup_trials, prune_warmup_steps):
    """Opens the study, writes the HParams experiment, works, prints the table. Returns the
    exit status (130 when interrupted)."""
    pruner = make_pruner(sweep, sweep.pruner, prune_startup_trials, prune_warmup_steps)
    study = open_study(sweep, storage, lock, pruner)
    study.set_user_attr('sweep_dir', sweep.sweep_dir)
    write_experiment(sweep)
    before = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()
              and counts_in_budget(t)]
    print('Sweep: %s' % sweep.describe(), flush=True)
    print('Study %s in %s (%d of %d trial(s) done before); folders in %s; tensorboard --logdir %s'
          % (sweep.study_name, shown_url(sweep.storage_url), len(before), sweep.budget,
             sweep.sweep_dir, sweep.sweep_dir), flush=True)
    if lock.kind not in ('sqlite', 'postgresql', 'mysql'):
        print('(storage %s: no lock between workers; one worker only)' % lock.kind, flush=True)
    work(sweep, study, lock, stopping)
    print('\n' + summary(study), end='', flush=True)
    running = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))]
    if running:
        print('Still running in other workers: trial(s) %s' % ', '.join(map(str, running)))
    if stopping.requested:
        print('Interrupted: run the same command to go on.', file=sys.stderr, flush=True)
        return 130
    return 0


def main(argv):
    if optuna is None:
        print("error: sweeps need Optuna: pip install -e '.[sweep]'", file=sys.stderr)
        return 2
    try:
        if FLAGS.summary:
            summary_main(FLAGS.sweep_dir, FLAGS.storage, FLAGS.study_name)
            return 0
        script_path, fixed = (argv[1], argv[2:]) if len(argv) > 1 else (None, [])
        sweep = plan(script_path, fixed, FLAGS.grid, FLAGS.range, FLAGS.case, FLAGS.trials,
                     FLAGS.sampler, FLAGS.seeds, FLAGS.eval_flag)
        stem, sweep.sweep_dir, sweep.storage_url = _defaults(sweep.script, FLAGS.sweep_dir,
                                                             FLAGS.storage)
        sweep.study_name = FLAGS.study_name or stem
        sweep.pruner, sweep.eval_interval_secs = FLAGS.pruner, FLAGS.eval_interval_secs
        sweep.command = shlex.join(['python', '-m', 'tools.sweep'] + [
            _hide_password(arg, FLAGS.storage) if FLAGS.storage else arg
            for arg in sys.argv[1:]])  # stored in the study
        if FLAGS.storage:  # reachable before anything is written
            storage, lock = connect(sweep.storage_url, sweep.study_name)
            os.makedirs(sweep.sweep_dir, exist_ok=True)
        else:
            os.makedirs(sweep.sweep_dir, exist_ok=True)
            storage, lock = connect(sweep.storage_url, sweep.study_name)
        stopping = Stopping()
        signal.signal(signal.SIGINT, stopping)
        signal.signal(signal.SIGTERM, stopping)
        return run_sweep(sweep, storage, lock, stopping, FLAGS.prune_startup_trials,
                         FLAGS.prune_warmup_steps)
    except SweepError as e:
        print('error: %s' % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before any trial started
        return 130


def _parse_flags(argv):
    """absl's parsing, with a bad sweep flag in one line and exit status 2."""
    try:
        return FLAGS(argv)
    except flags.UnrecognizedFlagError as e:
        print('error: unknown flag --%s; the script\'s own flags go after -- (python -m '
              'tools.sweep SCRIPT --grid ... -- --max_steps=...)' % e.flagname, file=sys.stderr)
    except flags.Error as e:
        print('error: %s' % e, file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
    import common  # pylint: disable=g-import-not-at-top
    common.before_tensorflow()  # the HParams files it writes: TensorFlow's lines hidden
    entry.run(define_flags, main, flags_parser=_parse_flags)
