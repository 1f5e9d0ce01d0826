"""Rerun the whole report: every experiment, its result JSON, RESULTS.md and one chart each.

Run through run_all.sh (which sets up .venv first):

    ./run_all.sh                       # everything, full settings (hours: CIFAR-10 dominates)
    ./run_all.sh --quick               # the same experiments with tiny step counts (minutes)
    ./run_all.sh --only deep_cnn,mlp   # some of them
    ./run_all.sh --list                # names, settings and reported figures
    ./run_all.sh --seeds 3             # each experiment 3 times, mean ± std

Each experiment writes <out>/<name>/ (default out: runs/): flags.json (the commands),
log.txt, TensorBoard event files, checkpoints, and result.json (final accuracy, steps, wall
seconds, hardware, TensorFlow version, git commit); <out>/<name>.png is its chart, and a
CIFAR-10 experiment also gets <out>/<name>_predictions.png (the first 16 test images with the
last checkpoint's predicted and true classes, wrong ones in red). Re-running skips finished experiments
(result.json present) and resumes a killed one from its checkpoint. CIFAR-10 training and its
evaluator run at the same time, as in the report; the figure is the evaluator's precision @ 1
on the last checkpoint. Every figure and chart is read from the experiment's TensorBoard event
files (figure(): common/scripts.py; CURVES), never from its log.
"""

import collections
import datetime
import glob
import json
import logging
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

from common import provenance
from common.scripts import SCRIPTS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Experiment = collections.namedtuple(
    'Experiment', 'name what reported reported_text kind script args quick_args steps quick_steps '
                  'minutes')

CIFAR_REPORT = ['--checkpoint_steps=500', '--min_fraction_of_examples_in_queue=0.2']
CIFAR_QUICK = ['--checkpoint_steps=5', '--summary_steps=2', '--min_fraction_of_examples_in_queue=0.01']

# minutes: full-run wall time on the 2-core CPU machine of the README (for the progress line).
EXPERIMENTS = [
    Experiment('cnn_mnist', 'cnn_mnist, 20,000 steps', 0.9699, '0.9699', 'cnn_mnist',
               'mnist/cnn_mnist.py', ['--train_steps=20000'], ['--train_steps=30'], 20000, 30,
               60),
    Experiment('summaries_1k', 'mnist_with_summaries, 1,000 steps', 0.9683, '0.9683',
               'summaries', 'mnist/mnist_with_summaries.py', ['--max_steps=1000'],
               ['--max_steps=30'], 1000, 30, 2),
    Experiment('summaries_20k', 'mnist_with_summaries, 20,000 steps, test every 100', 0.983,
               '0.983', 'summaries', 'mnist/mnist_with_summaries.py',
               ['--max_steps=20000', '--test_every=100'], ['--max_steps=40', '--test_every=20'],
               20000, 40, 12),
    Experiment('deep_cnn', '3-conv-layer CNN, 10,000 batches', 0.9926, '0.9926', 'deep_cnn',
               'mnist/deep_cnn.py', ['--max_steps=10000'], ['--max_steps=20', '--eval_every=10'],
               10000, 20, 20),
    Experiment('mlp', '784-1024-10 MLP, 301 full-batch steps', 0.864, '0.864', 'mlp',
               'mnist/mlp.py', [], ['--num_steps=2'], 301, 2, 15),
    Experiment('mlp_grid', "the MLP's grid search (the report's 8 configurations)", None,
               'only 1024 / 0.0001 above 0.80', 'mlp_grid', 'mnist/mlp.py', ['--grid=report'],
               ['--grid=report', '--num_steps=1'], 301, 1, 60),
    Experiment('cifar10', 'multi_gpu_train 60,000 steps + eval.py every 27 s', 0.838, '0.838',
               'cifar10', 'cifar10/multi_gpu_train.py', ['--max_steps=60000'] + CIFAR_REPORT,
               ['--max_steps=10'] + CIFAR_QUICK, 60000, 10, 240),
    Experiment('case1', 'Adam, lr 0.1, batch 512, extra conv21, 10,000 steps', None, 'very poor',
               'cifar10', 'cifar10/multi_gpu_train.py',
               ['--max_steps=10000', '--optimizer=adam', '--initial_learning_rate=0.1',
                '--batch_size=512', '--conv21'] + CIFAR_REPORT,
               ['--max_steps=5', '--optimizer=adam', '--initial_learning_rate=0.1',
                '--batch_size=512', '--conv21'] + CIFAR_QUICK, 10000, 5, 160),
    Experiment('case2', 'Adam, lr 0.001, decay factor 0.001, batch 128, 10,000 steps', 0.815,
               '0.815', 'cifar10', 'cifar10/multi_gpu_train.py',
               ['--max_steps=10000', '--optimizer=adam', '--initial_learning_rate=0.001',
                '--learning_rate_decay_factor=0.001'] + CIFAR_REPORT,
               ['--max_steps=10', '--optimizer=adam', '--initial_learning_rate=0.001',
                '--learning_rate_decay_factor=0.001'] + CIFAR_QUICK, 10000, 10, 40),
    Experiment('case3', 'Adam, lr 0.001, decay factor 0.001, batch 512, 10,000 steps', 0.828,
               '0.828', 'cifar10', 'cifar10/multi_gpu_train.py',
               ['--max_steps=10000', '--optimizer=adam', '--initial_learning_rate=0.001',
                '--learning_rate_decay_factor=0.001', '--batch_size=512'] + CIFAR_REPORT,
               ['--max_steps=5', '--optimizer=adam', '--initial_learning_rate=0.001',
                '--learning_rate_decay_factor=0.001', '--batch_size=512'] + CIFAR_QUICK,
               10000, 5, 160),
    Experiment('case4', 'gradient descent, original lr, batch 512, 10,000 steps', 0.843, '0.843',
               'cifar10', 'cifar10/multi_gpu_train.py',
               ['--max_steps=10000', '--batch_size=512'] + CIFAR_REPORT,
               ['--max_steps=5', '--batch_size=512'] + CIFAR_QUICK, 10000, 5, 160),
]
BY_NAME = {e.name: e for e in EXPERIMENTS}

RESULTS_DIR = os.path.join(REPO, 'results')
PROBES_DIR = os.path.join(RESULTS_DIR, 'probes')


def load_reference_curves(probes_dir=PROBES_DIR):
    """{experiment: (label, [(step, precision @ 1)])}: the original code's points drawn beside
    our curve, read from the probes in probes_dir that name the experiment in
    `reference_for` (their curves['precision @ 1'])."""
    curves = {}
    for path in sorted(glob.glob(os.path.join(probes_dir, '*.json'))):
        with open(path) as f:
            probe = json.load(f)
        if probe.get('reference_for'):
            curves[probe['reference_for']] = (
                probe['label'], [tuple(p) for p in probe['curves']['precision @ 1']])
    return curves


REFERENCE_CURVES = load_reference_curves()

class ReportError(Exception):
    """A bad option or missing data: reported in one line before anything runs."""


# ---------------------------------------------------------------------------------------------
# Running one experiment
# ---------------------------------------------------------------------------------------------

def _python():
    return sys.executable


def _default_sigint():
    """The evaluator is stopped with SIGINT (Ctrl-C, a clean stop): don't let it inherit an
    ignored SIGINT from a shell that started run_all.sh in the background."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(proc, timeout=60):
    """Stops a script as Ctrl-C does (it saves what it has and exits), killed after timeout."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(cmd, log, env):
    """Runs cmd, appending its output to the open log file; raises on failure. Stopped
    (Ctrl-C, SIGTERM: KeyboardInterrupt here), it stops the script too."""
    log.write('$ %s\n' % ' '.join(cmd))
    log.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env,
                            preexec_fn=_default_sigint)
    try:
        rc = proc.wait()
    finally:
        _stop(proc)
    if rc != 0:
        raise RuntimeError('%s exited with status %d (see %s)' % (cmd[1], rc, log.name))


def _commands(exp, run_dir, quick, seed):
    """The commands of one experiment run (its script's folder flag as common/scripts.py lays
    the run's folder out); CIFAR-10's evaluator is returned separately."""
    args = list(exp.quick_args if quick else exp.args)
    if seed is not None:
        args.append('--seed=%d' % seed)
    py = _python()
    script = SCRIPTS[exp.script]
    train = [py, exp.script, '--%s=%s' % (script.run_dir_flag,
                                          os.path.join(run_dir, script.run_subdir))] + args
    if not script.evaluator:
        return [train], None, None
    eval_args = [py, script.evaluator,
                 '--checkpoint_dir=' + os.path.join(run_dir, script.run_subdir),
                 '--eval_dir=' + os.path.join(run_dir, script.events)]
    eval_args += [a for a in args if a == '--conv21']  # the evaluator builds the same model
    if quick:
        eval_args.append('--num_examples=500')
    poller = eval_args + ['--eval_interval_secs=%d' % (2 if quick else 27)]
    final = eval_args + ['--run_once']
    return [train], poller, final


def figure(exp):
    """(event folder under the run dir, tag, unit) of an experiment's reproduced figure: its
    script's (common/scripts.py), the tag's value at the highest step divided by unit (a
    fraction). mlp_grid reads one folder per configuration below the folder."""
    script = SCRIPTS[exp.script]
    return script.events, script.tag, script.unit


# Event files hold float32: six decimals are all they tell (0.9926, not 0.9926000237).
DECIMALS = 6
# An MLP grid configuration's folder (mnist/mlp.py's GRID_FOLDER, hidden_%d_lr_%g).
GRID_FOLDER = re.compile(r'^hidden_(\d+)_lr_(\S+)$')


def read_scalars(path, tag):
    """[(step, value)] of a scalar in the event files of the folder path, as TensorBoard
    reads them (a restarted run's points replace those of the run it restarted); [] when the
    folder or the tag is not there."""
    if not os.path.isdir(path):
        return []
    from tensorboard.backend.event_processing import event_accumulator
    logging.getLogger('tensorboard').setLevel(logging.ERROR)  # graph-overwrite warnings
    acc = event_accumulator.EventAccumulator(path, size_guidance={'scalars': 0})
    acc.Reload()
    if tag not in acc.Tags()['scalars']:
        return []
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def final_point(path, tag):
    """(step, value) of the scalar `tag` in the event files of the folder path at the highest
    step (the last written of that step). Raises RuntimeError when there is none."""
    points = read_scalars(path, tag)
    if not points:
        raise RuntimeError('no %r scalar in the event files of %s' % (tag, path))
    return max(enumerate(points), key=lambda ip: (ip[1][0], ip[0]))[1]


def final_value(path, tag):
    """final_point's value."""
    return final_point(path, tag)[1]


def grid_results(run_dir):
    """The MLP grid's configurations in the grid's order (hidden size up, learning rate
    down): [(hidden, learning rate as written, final test accuracy in percent or None where
    the configuration diverged)]."""
    folder, tag = SCRIPTS['mnist/mlp.py'].events, SCRIPTS['mnist/mlp.py'].tag
    root = os.path.join(run_dir, folder)
    rows = []
    for name in os.listdir(root) if os.path.isdir(root) else []:
        match = GRID_FOLDER.match(name)
        if not match:
            continue
        path = os.path.join(root, name)
        diverged = read_scalars(path, 'diverged_at_step')
        accuracy = None if diverged else final_value(path, tag)
        rows.append((int(match.group(1)), match.group(2), accuracy))
    return sorted(rows, key=lambda row: (row[0], -float(row[1])))


def parse_result(exp, run_dir, steps=None):
    """The reproduced figure (a fraction) from the experiment's event files, and extra
    facts. With steps (the run's), a figure at a later step (the folder holds another run's
    event files) raises RuntimeError."""
    folder, tag, unit = figure(exp)
    if exp.kind == 'mlp_grid':
        rows = grid_results(run_dir)
        if not rows:
            raise RuntimeError('no configuration in %s' % os.path.join(run_dir, folder))
        above = ['%d / %s' % (h, lr) for h, lr, acc in rows if acc is not None and acc > 80.0]
        best = max(acc or 0.0 for _, _, acc in rows) / unit
        return round(best, DECIMALS), {'above_80': above, 'configurations': len(rows)}
    path = os.path.join(run_dir, folder)
    last, value = final_point(path, tag)
    value /= unit
    if steps is not None and last > steps:
        raise RuntimeError('the event files in %s go to step %d, past this run\'s %d steps: '
                           'the folder holds another run; give another --out'
                           % (run_dir, last, steps))
    if exp.kind == 'mlp':
        loss = dict(read_scalars(path, 'loss'))
        return round(value, DECIMALS), {'loss_at_step_0': round(loss[0], DECIMALS)}
    return round(value, DECIMALS), {}


def _env():
    # TensorFlow's own lines as the scripts decide (common/logs.py: hidden unless --tf_logs or
    # the user's TF_CPP_MIN_LOG_LEVEL), so that log.txt holds the tutorial's lines
    return dict(os.environ, PYTHONUNBUFFERED='1')


def _read_float(path, default=0.0):
    try:
        with open(path) as f:
            return float(f.read())
    except (OSError, ValueError):
        return default


def record_part(run_dir):
    """Appends this part of a run (a first start, or a resumption of a killed one) to
    <run_dir>/parts.json: its commit, whether the tree was dirty, when it started. Returns
    every part so far: a run resumed across commits says which commit made which part."""
    path = os.path.join(run_dir, 'parts.json')
    parts = []
    if os.path.exists(path):
        with open(path) as f:
            parts = json.load(f)
    parts.append(dict(git_commit=provenance.git_commit(), git_dirty=provenance.git_dirty(),
                      started=datetime.datetime.now().isoformat(timespec='seconds')))
    with open(path, 'w') as f:
        json.dump(parts, f, indent=1)
    return parts


def run_experiment(exp, run_dir, quick, seed, facts):
    """Runs one experiment into run_dir (resuming a killed run) and writes result.json."""
    os.makedirs(run_dir, exist_ok=True)
    commands, poller_cmd, final_eval = _commands(exp, run_dir, quick, seed)
    with open(os.path.join(run_dir, 'flags.json'), 'w') as f:
        json.dump({'commands': commands + [c for c in (poller_cmd, final_eval) if c],
                   'quick': quick, 'seed': seed}, f, indent=2)
    env = _env()
    start = time.time()
    parts = record_part(run_dir)
    log_path = os.path.join(run_dir, 'log.txt')
    wall_path = os.path.join(run_dir, 'wall_seconds')  # the time of earlier, killed runs too
    with open(log_path, 'a') as log:
        poller = None
        if poller_cmd:  # the evaluator beside training, as in the report
            poller_log = open(os.path.join(run_dir, 'eval_log.txt'), 'a')
            poller = subprocess.Popen(poller_cmd, cwd=REPO, stdout=poller_log,
                                      stderr=subprocess.STDOUT, env=env,
                                      preexec_fn=_default_sigint)
        try:
            try:
                for cmd in commands:
                    _run(cmd, log, env)
            finally:
                if poller:  # stopped first: --eval_dir has one writer at a time
                    _stop(poller)
                    poller_log.close()
            if final_eval:  # the last checkpoint, whether or not the poller reached it
                _run(final_eval, log, env)
        finally:
            wall = time.time() - start + _read_float(wall_path)
            with open(wall_path, 'w') as f:
                f.write('%.1f\n' % wall)
    steps = exp.quick_steps if quick else exp.steps
    value, extra = parse_result(exp, run_dir, steps)
    result = dict(name=exp.name, reproduced=value, reported=exp.reported,
                  reported_text=exp.reported_text,
                  steps=steps, wall_seconds=round(wall, 1),
                  quick=quick, seed=seed,
                  commands=commands + [c for c in (poller_cmd, final_eval) if c],
                  parts=parts, **facts, **extra)
    with open(os.path.join(run_dir, 'result.json'), 'w') as f:
        json.dump(result, f, indent=2)
    return result


# ---------------------------------------------------------------------------------------------
# Charts and the results table
# ---------------------------------------------------------------------------------------------

MARKED_BELOW = 30  # a curve with fewer points than this shows each point with a marker

CURVES = {  # kind -> [(event folder under the run dir, tag, label, unit of the values)]
    'cnn_mnist': [('model', 'loss', 'train loss', 1),
                  ('model/eval', 'accuracy', 'test accuracy', 1)],
    'summaries': [('logs/test', 'accuracy', 'test accuracy', 1),
                  ('logs/train', 'cross_entropy', 'train cross entropy', 1)],
    'deep_cnn': [('logs', 'test/accuracy', 'test accuracy', 1),
                 ('logs', 'test/cross_entropy', 'test loss (per 100 images)', 1)],
    'mlp': [('logs', 'test_accuracy', 'test accuracy', 100), ('logs', 'loss', 'train loss', 1)],
    'cifar10': [('eval', 'Precision @ 1', 'precision @ 1', 1),
                ('train', 'total_loss (raw)', 'train loss', 1)],
}


def read_curves(exp, run_dir):
    """[(label, steps, values)] read back from the event files (for the MLP grid: one bar per
    configuration, its final test accuracy, 0 where it diverged)."""
    if exp.kind == 'mlp_grid':
        rows = grid_results(run_dir)
        unit = SCRIPTS['mnist/mlp.py'].unit
        return [('test accuracy by configuration', ['%d/%s' % (h, lr) for h, lr, _ in rows],
                 [(acc or 0.0) / unit for _, _, acc in rows])]
    curves = []
    for folder, tag, label, unit in CURVES[exp.kind]:
        points = read_scalars(os.path.join(run_dir, folder), tag)
        if points:
            curves.append((label, [step for step, _ in points],
                           [value / unit for _, value in points]))
    return curves


def curves_of(exp, result):
    """read_curves' [(label, steps, values)] from a published result's curves."""
    order = [label for _, _, label, _ in CURVES.get(exp.kind, [])]
    saved = result.get('curves', {})
    labels = [l for l in order if l in saved] + sorted(l for l in saved if l not in order)
    return [(label, [p[0] for p in saved[label]], [p[1] for p in saved[label]])
            for label in labels]


def _is_loss(label):
    return 'loss' in label or 'entropy' in label


def _draw_bars(ax, runs, exp):
    """The MLP grid: the mean of the runs' final accuracy per configuration, each run a dot."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    (_, names, _), = runs[0][1]
    values = np.array([curves[0][2] for _, curves in runs], dtype=float)
    label = 'final test accuracy' + (' (mean of %d runs)' % len(runs) if len(runs) > 1 else '')
    ax.bar(range(len(names)), values.mean(axis=0), label=label)
    if len(runs) > 1:
        for row in values:
            ax.plot(range(len(names)), row, 'k.', label='_nolegend_')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=45, ha='right')
    ax.set_xlabel('hidden units / learning rate')
    ax.set_ylabel('test accuracy')
    ax.axhline(0.8, color='gray', linestyle='--', label="0.80, the report's threshold")
    return [ax]


def _draw_curves(ax, runs, exp, steps):
    """Each run's curves (accuracy on the left axis, loss on the right, a colour per curve,
    each run a line of it); the original's reference points up to `steps` and the reported
    figure. Returns the axes and the note on the points left out (or None)."""
    right = None
    colours = {}
    for _, curves in runs:
        for label, xs, values in curves:
            target = ax
            if _is_loss(label):
                right = right or ax.twinx()
                target = right
            first = label not in colours
            colours.setdefault(label, 'C%d' % len(colours))
            shown = label + (' (each of %d runs)' % len(runs) if len(runs) > 1 else '')
            target.plot(xs, values, marker='.' if len(xs) < MARKED_BELOW else None,
                        color=colours[label], alpha=1.0 if len(runs) == 1 else 0.6,
                        linewidth=1.5 if len(runs) == 1 else 1.0,
                        label=shown if first else '_nolegend_',
                        clip_on=False)  # a point at the axis' end drawn whole
            target.set_ylabel(label)
    note = None
    if exp.name in REFERENCE_CURVES:
        label, points = REFERENCE_CURVES[exp.name]
        inside = [p for p in points if p[0] <= steps]
        if inside:  # a few points as triangles; an evaluator's dense curve as a black line
            ax.plot([p[0] for p in inside], [p[1] for p in inside],
                    'k^' if len(inside) < MARKED_BELOW else 'k-', linewidth=1, label=label,
                    clip_on=False)
        if len(inside) < len(points):
            note = 'Left out: %d of the %d points of %s, beyond step %s.' % (
                len(points) - len(inside), len(points), label, '{:,}'.format(steps))
    if exp.reported is not None:
        ax.axhline(exp.reported, color='gray', linestyle='--', linewidth=1,
                   label="the report's figure, %s" % exp.reported_text)
    ax.set_xlabel('step')
    ax.set_xlim(0, steps)
    return [a for a in (ax, right) if a], note


def chart_figure(exp, runs, steps=None):
    """The matplotlib figure of one chart: runs, [(run name, read_curves' curves)], the runs of
    one row; steps, the steps they ran (the title's; the step axis ends there; default: the
    highest step of their curves)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    if exp.kind == 'mlp_grid':
        axes, note = _draw_bars(ax, runs, exp), None
    else:
        if steps is None:
            steps = max(x for _, curves in runs for _, xs, _ in curves for x in xs)
        axes, note = _draw_curves(ax, runs, exp, steps)
    handles = [h for a in axes for h in a.get_legend_handles_labels()[0]]
    axes[-1].legend(handles, [h.get_label() for h in handles], loc='upper center', ncol=2,
                    bbox_to_anchor=(0.5, -0.14 if exp.kind != 'mlp_grid' else -0.36),
                    fontsize='small', frameon=False)
    ran = ', '.join(x for x in (
        '{:,} step{}'.format(steps, '' if steps == 1 else 's') if steps is not None else None,
        '%d runs' % len(runs) if len(runs) > 1 else None) if x)
    ax.set_title('%s%s\nthe report\'s run: %s' % (exp.name, ': ' + ran if ran else '', exp.what),
                 fontsize='medium')
    if note:
        fig.text(0.01, 0.01, note, fontsize='x-small', color='dimgray')
    fig.tight_layout(rect=(0, 0.03 if note else 0, 1, 1))
    return fig


def plot(exp, runs, path, steps=None):
    """chart_figure's chart, written to the PNG path."""
    import matplotlib.pyplot as plt
    fig = chart_figure(exp, runs, steps)
    fig.savefig(path, bbox_inches='tight')  # the legend below the axes, whatever its labels
    plt.close(fig)


def draw_predictions(run_dir, path):
    """A CIFAR-10 experiment's picture beside its chart: the first 16 test images in a 4x4
    grid with the last checkpoint's predicted and true classes, wrong ones marked
    (cifar10/predict.py --sample_grid, logged to the run's log.txt)."""
    with open(os.path.join(run_dir, 'log.txt'), 'a') as log:
        _run([_python(), 'cifar10/predict.py', '--checkpoint_dir=%s/train' % run_dir,
              '--sample_grid=' + path], log, _env())


def _fmt(value):
    return '—' if value is None else '%.4f' % value


TABLE_HEAD = '| experiment | reported | reproduced | difference | steps | wall time | hardware |'


def table_row(results):
    """The table's cells for one experiment's results (one per seed): experiment, reported,
    reproduced (mean ± std over seeds), difference, steps, wall time, hardware."""
    r = results[0]
    values = [x['reproduced'] for x in results]
    mean = statistics.mean(values)
    # "seeds" only when every run had one: an unseeded run beside seeded ones makes them "runs"
    unit = 'seeds' if all(x.get('seed') is not None for x in results) else 'runs'
    shown = _fmt(mean) if len(values) == 1 else '%.4f ± %.4f (%d %s)' % (
        mean, statistics.stdev(values), len(values), unit)
    if r['name'] == 'mlp_grid':
        shown += ' best; above 0.80: %s' % (', '.join(r.get('above_80', [])) or 'none')
    diff = '—' if r['reported'] is None else '%+.4f' % (mean - r['reported'])
    wall = sum(x['wall_seconds'] for x in results) / len(results)
    return [r['name'], r['reported_text'], shown, diff, '{:,}'.format(r['steps']), _clock(wall),
            r['hardware']]


def results_table(rows):
    """RESULTS.md text from a list of per-experiment result lists (one entry per seed)."""
    lines = [TABLE_HEAD, '|---|---|---|---|---|---|---|']
    lines += ['| %s |' % ' | '.join(table_row(results)) for results in rows]
    return '\n'.join(lines) + '\n'


# ---------------------------------------------------------------------------------------------
# Publishing full-length runs into results/ (committed), and results/RESULTS.md from them
# ---------------------------------------------------------------------------------------------

def _run_dirs(out, exp):
    """The run folders of exp under out: <name>, and <name>_seed<k> of a --seeds run."""
    dirs = [os.path.join(out, exp.name)] + sorted(
        glob.glob(os.path.join(out, exp.name + '_seed*')),
        key=lambda d: int(re.sub(r'\D', '', d.rsplit('_seed', 1)[1]) or 0))
    return [d for d in dirs if os.path.isfile(os.path.join(d, 'result.json'))]


# The commit that restored the original's per-image CIFAR-10 training input (tf.image
# distortions before shuffle_batch); CIFAR-10 results made by code before it are marked.
RESTORED_PIPELINE = '2cf411b'


def _includes(commit, ancestor):
    """Whether the checkout's history has `ancestor` in `commit`'s past (or is it); None when
    git cannot tell."""
    try:
        rc = subprocess.run(['git', 'merge-base', '--is-ancestor', ancestor, commit], cwd=REPO,
                            capture_output=True).returncode
    except OSError:
        return None
    return {0: True, 1: False}.get(rc)


def publish(out, results_dir=RESULTS_DIR, experiments=EXPERIMENTS):
    """Copies each finished full-length run under out into results_dir/<run>/: result.json with
    its curves (read from the event files) and commands, and chart.png. The published runs of
    an experiment replace its earlier ones in results_dir (their folders go once the new ones
    are written). A CIFAR-10 run records whether every commit that made it has the restored
    input pipeline (restored_pipeline). Returns the run names published. Quick runs are never
    published."""
    published = []
    for exp in experiments:
        replaced = _run_dirs(results_dir, exp)
        written = []
        for run_dir in _run_dirs(out, exp):
            with open(os.path.join(run_dir, 'result.json')) as f:
                result = json.load(f)
            if result.get('quick'):
                continue
            if 'commands' not in result:  # written by an older run_all.sh
                with open(os.path.join(run_dir, 'flags.json')) as f:
                    result['commands'] = json.load(f)['commands']
            if 'cpu_flags' not in result:  # an older run_all.sh kept only a summary line
                result.update(provenance.hardware_facts())
                result['hardware_recorded'] = 'when published, on the machine that ran it'
            if exp.kind == 'cifar10':
                commits = [p.get('git_commit') for p in result.get('parts', [])] or [
                    result.get('git_commit')]
                result['restored_pipeline'] = all(
                    c and _includes(c, RESTORED_PIPELINE) for c in commits)
            curves = read_curves(exp, run_dir)
            result['curves'] = {label: [[x, round(float(v), 6)] for x, v in zip(steps, values)]
                                for label, steps, values in curves}
            name = os.path.basename(run_dir)
            dest = os.path.join(results_dir, name)
            os.makedirs(dest, exist_ok=True)
            with open(os.path.join(dest, 'result.json'), 'w') as f:
                json.dump(result, f, indent=1, sort_keys=True)
                f.write('\n')
            published.append(name)
            written.append(dest)
        if written:  # the new runs stand for the experiment: the earlier ones go
            for old in replaced:
                if os.path.abspath(old) not in {os.path.abspath(d) for d in written}:
                    shutil.rmtree(old)
    try:
        draw_results_charts(results_dir)
    except ImportError:
        print('(no charts: matplotlib is not installed)', flush=True)
    write_results_md(results_dir)
    return published


def row_chart(results):
    """The chart of one row of RESULTS.md (one experiment's results on one machine), relative
    to results/: its folder's chart.png for one run, charts/<experiment>.png for several."""
    if len(results) == 1:
        return '%s/chart.png' % results[0]['_folder']
    return 'charts/%s.png' % results[0]['name']


def draw_results_charts(results_dir=RESULTS_DIR):
    """Draws every chart of results_dir from the curves in its result.json files: each run's
    folder's chart.png, and each row of several runs' charts/<experiment>.png (all of them)."""
    for exp, results in load_results(results_dir):
        for result in results:
            plot(exp, [(result['_folder'], curves_of(exp, result))],
                 os.path.join(results_dir, result['_folder'], 'chart.png'), result['steps'])
        if len(results) > 1:
            os.makedirs(os.path.join(results_dir, 'charts'), exist_ok=True)
            plot(exp, [(r['_folder'], curves_of(exp, r)) for r in results],
                 os.path.join(results_dir, row_chart(results)),
                 max(r['steps'] for r in results))


def load_results(results_dir=RESULTS_DIR):
    """The published results, grouped as [(experiment, [result, ...])] in the report's order,
    one group per experiment and machine."""
    groups = collections.OrderedDict()
    for path in sorted(glob.glob(os.path.join(results_dir, '*', 'result.json'))):
        with open(path) as f:
            result = json.load(f)
        result['_folder'] = os.path.basename(os.path.dirname(path))
        groups.setdefault((result['name'], result['hardware']), []).append(result)
    order = {e.name: i for i, e in enumerate(EXPERIMENTS)}
    return [(BY_NAME[name], sorted(rows, key=lambda r: r['_folder']))
            for (name, _), rows in sorted(groups.items(), key=lambda kv: (order[kv[0][0]],
                                                                          kv[0][1]))]


def results_markdown(results_dir=RESULTS_DIR):
    """results/RESULTS.md's text, from the result.json files alone (CI checks it is current)."""
    groups = load_results(results_dir)
    lines = ['# Results', '',
             'Generated by `./run_all.sh --publish` from the `result.json` files in this folder '
             '(do not edit). Each row is one full-length run, or the mean ± std over seeds, on '
             'the machine in its row; each folder also has the curves, the exact commands, the '
             'TensorFlow version and the commit that made it, and `chart.png`.', '',
             TABLE_HEAD + ' TensorFlow, commit | chart |', '|---|---|---|---|---|---|---|---|---|']
    for exp, results in groups:
        commits = sorted({x.get('git_commit') or '?' for x in results})
        charts = ', '.join('[%s](%s/chart.png)' % (x['_folder'], x['_folder']) for x in results)
        lines.append('| %s |' % ' | '.join(table_row(results) + [
            '%s, %s' % (results[0].get('tensorflow') or '?', ', '.join(commits)), charts]))
    unseeded = ['%s (%s)' % (exp.name, ', '.join(x['_folder'] for x in results
                                                 if x.get('seed') is None))
                for exp, results in groups if any(x.get('seed') is None for x in results)]
    lines += ['', 'Runs with no seed (no --seed: TensorFlow drew its own random seeds): %s.'
              % ('; '.join(unseeded) or 'none')]
    before = ['%s (%s)' % (exp.name, ', '.join(sorted({x.get('git_commit') or '?'
                                                       for x in results})))
              for exp, results in groups
              if exp.kind == 'cifar10' and not all(x.get('restored_pipeline') for x in results)]
    if before:
        lines += ['', 'Made before the original\'s CIFAR-10 training input was restored (commit '
                  '%s: per-image `tf.image` distortions before `shuffle_batch`), with batched '
                  'distortions after the queue: %s; each is rerun and replaced.'
                  % (RESTORED_PIPELINE, '; '.join(before))]
    missing = [e.name for e in EXPERIMENTS if e.name not in {exp.name for exp, _ in groups}]
    lines += ['', 'Not yet run at full length: %s.' % (', '.join(missing) or 'none')]
    lines += ['', '## Charts', '', 'One per row of the table, drawn from its `result.json` '
              'curves; a row of several runs draws each of them.']
    for exp, results in groups:
        chart = row_chart(results)
        lines += ['', '### %s' % exp.name, '', '![%s](%s)' % (exp.name, chart)]
    return '\n'.join(lines) + '\n'


def write_results_md(results_dir=RESULTS_DIR):
    os.makedirs(results_dir, exist_ok=True)
    with open(os.path.join(results_dir, 'RESULTS.md'), 'w') as f:
        f.write(results_markdown(results_dir))


# ---------------------------------------------------------------------------------------------
# The whole report
# ---------------------------------------------------------------------------------------------

def check_data():
    """Fails early, in one line, when the data is missing or corrupt."""
    from common import data  # pylint: disable=g-import-not-at-top  (numpy: not for --list)
    root = os.environ.setdefault(data.DATA_ENV, data.data_root())
    try:
        data.maybe_download_and_extract_cifar10(os.path.join(root, 'cifar10'))
        data.load_mnist(os.path.join(root, 'mnist'))
    except data.DataError as e:
        raise ReportError(str(e))


def define_flags():
    from absl import flags
    flags.DEFINE_boolean('quick', False, 'Tiny step counts (minutes).')
    flags.DEFINE_string('only', '', 'Comma-separated experiment names.')
    flags.DEFINE_boolean('list', False, 'List the experiments and exit.')
    flags.DEFINE_string('out', os.path.join(REPO, 'runs'), 'Output folder.')
    flags.DEFINE_integer('seeds', 1, 'Runs per experiment (mean ± std).')
    flags.DEFINE_boolean('publish', False, 'Run nothing: copy the finished full-length runs '
                         'under --out (those of --only) into results/ and rebuild '
                         'results/RESULTS.md.')


Options = collections.namedtuple('Options', 'quick experiments list out seeds publish')


def options(quick=False, only='', list_=False, out=os.path.join(REPO, 'runs'), seeds=1,
            publish=False):
    """The report's options, checked: ReportError for an unknown experiment or --seeds < 1."""
    names = [n for n in only.split(',') if n]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ReportError('unknown experiment %s in --only (known: %s)'
                          % (', '.join(unknown), ', '.join(BY_NAME)))
    if seeds < 1:
        raise ReportError('--seeds must be at least 1, got %d' % seeds)
    return Options(quick, [BY_NAME[n] for n in names] if names else list(EXPERIMENTS), list_,
                   out, seeds, publish)


# Where --quick runs go, inside --out.
QUICK_FOLDER = 'quick'


def _terminated(signum, frame):
    """SIGTERM: stop as Ctrl-C does (the running script is stopped, then the report)."""
    raise KeyboardInterrupt


def finished_rows(out, quick):
    """[[result, ...] per experiment], in the report's order: every finished run in out of
    the kind asked (quick or full)."""
    rows = []
    for exp in EXPERIMENTS:
        results = []
        for run_dir in _run_dirs(out, exp):
            with open(os.path.join(run_dir, 'result.json')) as f:
                result = json.load(f)
            if bool(result.get('quick')) == bool(quick):
                results.append(result)
        if results:
            rows.append(results)
    return rows


def print_list():
    for e in EXPERIMENTS:
        print('%-14s %-62s reported %s' % (e.name, e.what, e.reported_text))


def _clock(seconds):
    return str(datetime.timedelta(seconds=int(seconds)))


def main(argv):
    from absl import app
    from absl import flags
    if len(argv) > 1:
        raise app.UsageError('unexpected argument %s' % argv[1])
    flag_values = flags.FLAGS
    try:
        args = options(flag_values.quick, flag_values.only, flag_values.list, flag_values.out,
                       flag_values.seeds, flag_values.publish)
        if args.list:
            print_list()
            return 0
        if args.publish:
            names = publish(args.out, RESULTS_DIR, args.experiments)
            print('Published %s into %s; %s rebuilt' % (
                ', '.join(names) or 'nothing (no finished full-length run in %s)' % args.out,
                RESULTS_DIR, os.path.join(RESULTS_DIR, 'RESULTS.md')))
            return 0
        check_data()
    except ReportError as e:
        print('run_all.sh: error: %s' % e, file=sys.stderr)
        return 2
    # quick runs in a folder of their own: a quick run never continues a full one, nor the
    # reverse, and each RESULTS.md holds its own kind's rows
    out = os.path.join(args.out, QUICK_FOLDER) if args.quick else args.out
    os.makedirs(out, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminated)
    facts = provenance.run_facts(os.environ.get('TF_CLASSICS_DATA'))
    plan = [(e, s) for e in args.experiments for s in range(args.seeds)]

    def estimate(exp):  # seconds: the table's full-run minutes, or ~30 s for a quick run
        return 30 if args.quick else exp.minutes * 60

    left = sum(estimate(e) for e, _ in plan)
    start = time.time()
    failed = []
    for i, (exp, seed_index) in enumerate(plan, 1):
        seed = seed_index if args.seeds > 1 else None
        name = exp.name if args.seeds == 1 else '%s_seed%d' % (exp.name, seed_index)
        run_dir = os.path.join(out, name)
        done = os.path.join(run_dir, 'result.json')
        left -= estimate(exp)
        if os.path.exists(done):
            with open(done) as f:
                result = json.load(f)
            if result.get('quick') == args.quick:
                print('[%d/%d] %s: done before, skipped' % (i, len(plan), name), flush=True)
                continue
            os.unlink(done)  # a quick result does not stand for a full one, nor the reverse
        print('[%d/%d] %s: started (elapsed %s; estimated left after it %s)'
              % (i, len(plan), name, _clock(time.time() - start), _clock(left)), flush=True)
        try:
            result = run_experiment(exp, run_dir, args.quick, seed, facts)
        except (RuntimeError, OSError) as e:
            print('[%d/%d] %s: FAILED: %s' % (i, len(plan), name, e), flush=True)
            failed.append(name)
            continue
        try:
            plot(exp, [(name, read_curves(exp, run_dir))], os.path.join(out, name + '.png'),
                 result['steps'])
        except ImportError:
            print('(no chart: matplotlib is not installed)', flush=True)
        if exp.kind == 'cifar10':
            try:
                draw_predictions(run_dir, os.path.join(out, name + '_predictions.png'))
            except (RuntimeError, OSError) as e:
                print('(no predictions grid for %s: %s)' % (name, e), flush=True)
        print('[%d/%d] %s: finished in %s: %.4f (reported %s)'
              % (i, len(plan), name, _clock(result['wall_seconds']), result['reproduced'],
                 exp.reported_text), flush=True)
    # every finished run of this kind in the folder, not only this command's (--only)
    table = results_table(finished_rows(out, args.quick))
    with open(os.path.join(out, 'RESULTS.md'), 'w') as f:
        f.write('# Results%s\n\nTensorFlow %s, commit %s, %s.\n\n%s' % (
            ' (--quick: tiny step counts, not the report\'s figures)' if args.quick else '',
            facts['tensorflow'], facts['git_commit'], datetime.date.today(), table))
    print('\n' + table)
    print('Written: %s; charts %s/<name>.png (CIFAR-10: also <name>_predictions.png, 16 test '
          'images classified); tensorboard --logdir %s'
          % (os.path.join(out, 'RESULTS.md'), out, out))
    if failed:
        print('run_all.sh: failed: %s' % ', '.join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    if '--list' in sys.argv[1:]:  # run_all.sh --list, before any venv: the standard library
        print_list()
        sys.exit(0)
    import common
    common.before_tensorflow()  # the event files and charts it reads: TensorFlow's lines hidden
    from common import entry
    entry.run(define_flags, main)
