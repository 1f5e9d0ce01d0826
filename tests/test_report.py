"""run_all.sh: a quick run of two cheap experiments, its files, table, charts; TensorBoard."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tools import report
from helpers import REPO, shared_data_root


def _run_all(*args):
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root())
    # run_all.sh minus the venv set-up: the same report module, with this interpreter
    return subprocess.run([sys.executable, '-m', 'tools.report'] + list(args), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('runs')
    result = _run_all('--quick', '--only', 'summaries_1k,deep_cnn', '--out', str(out))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert sorted(os.listdir(out)) == ['quick']  # quick runs apart from full ones
    return out / 'quick', result


def test_quick_run_files_table_and_charts(quick_run):
    matplotlib_image = pytest.importorskip('matplotlib.image')
    out, result = quick_run
    assert re.search(r'^\[1/2\] summaries_1k: started \(elapsed 0:00:0\d; estimated left after',
                     result.stdout, re.M)
    assert re.search(r'^\[2/2\] deep_cnn: finished in \d:\d\d:\d\d: 0\.\d{4} \(reported 0\.9926\)',
                     result.stdout, re.M)
    for name in ('summaries_1k', 'deep_cnn'):
        r = json.load(open(out / name / 'result.json'))
        assert set(r) >= {'reproduced', 'reported', 'steps', 'wall_seconds', 'hardware',
                          'tensorflow', 'git_commit'}
        assert 0 < r['reproduced'] <= 1 and r['quick'] is True
        assert r['tensorflow'].startswith('2.21')
        assert json.load(open(out / name / 'flags.json'))['commands']
        assert os.path.getsize(out / name / 'log.txt') > 0
        image = matplotlib_image.imread(str(out / (name + '.png')))
        assert image.shape[0] > 200 and image.shape[1] > 300
        # the curves are drawn: pixels in matplotlib's first two line colours
        for rgb in ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05)):
            close = np.abs(image[..., :3] - np.array(rgb)).max(axis=-1) < 0.05
            assert close.sum() > 50, (name, rgb)
    table = (out / 'RESULTS.md').read_text()
    assert re.search(r'^\| summaries_1k \| 0\.9683 \| 0\.\d{4} \| [+-]0\.\d{4} \| 30 \| '
                     r'\d:\d\d:\d\d \| .+ \|$', table, re.M)
    assert re.search(r'^\| deep_cnn \| 0\.9926 \| 0\.\d{4} \|', table, re.M)

    again = _run_all('--quick', '--only', 'summaries_1k', '--out', str(out.parent))
    assert again.returncode == 0
    assert '[1/1] summaries_1k: done before, skipped' in again.stdout
    assert (out / 'RESULTS.md').read_text().split('\n', 3)[3] == table.split('\n', 3)[3], \
        'the table of --only keeps the other finished rows'


def test_a_folder_holding_a_longer_run_is_not_reported_as_this_one(quick_run, tmp_path):
    import shutil
    out, _ = quick_run
    runs = tmp_path / 'runs'
    shutil.copytree(out / 'deep_cnn', runs / 'quick' / 'deep_cnn')
    os.remove(runs / 'quick' / 'deep_cnn' / 'result.json')
    longer = subprocess.run([sys.executable, 'mnist/deep_cnn.py', '--max_steps=40',
                             '--eval_every=10', '--log_dir=%s' % (runs / 'quick' / 'deep_cnn' /
                                                                   'logs')],
                            cwd=REPO, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TF_CLASSICS_DATA=shared_data_root()))
    assert longer.returncode == 0, longer.stderr[-2000:]
    result = _run_all('--quick', '--only', 'deep_cnn', '--out', str(runs))
    assert result.returncode == 1
    assert re.search(r'deep_cnn: FAILED: the event files in .* go to step 40, past this '
                     r'run\'s 20 steps', result.stdout), result.stdout
    assert not (runs / 'quick' / 'deep_cnn' / 'result.json').exists()


def test_sigterm_stops_the_report_and_the_run_it_started(tmp_path):
    import signal
    out = tmp_path / 'runs'
    env = dict(os.environ, TF_CLASSICS_DATA=shared_data_root())
    proc = subprocess.Popen([sys.executable, '-m', 'tools.report', '--quick', '--only',
                             'cifar10', '--out', str(out)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = out / 'quick' / 'cifar10' / 'log.txt'
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not (log.exists() and 'step 0,' in log.read_text()):
            time.sleep(0.5)
        assert 'step 0,' in log.read_text()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert 'Traceback' not in err
    left = []
    for pid in os.listdir('/proc'):
        try:
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                if str(out).encode() in f.read():
                    left.append(pid)
        except OSError:
            pass
    assert left == [], 'processes left running in %s' % out


def test_tensorboard_serves_a_quick_runs_scalars(quick_run):
    out, _ = quick_run
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    tensorboard = os.path.join(os.path.dirname(sys.executable), 'tensorboard')
    proc = subprocess.Popen([tensorboard, '--logdir', str(out), '--host', '127.0.0.1',
                             '--port', str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = ('http://127.0.0.1:%d/data/plugin/scalars/scalars?run=summaries_1k/logs/test'
           '&tag=accuracy' % port)
    try:
        points, deadline = None, time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    points = json.loads(response.read())
                if points:
                    break
            except OSError:
                pass
            time.sleep(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert points, 'no scalars from tensorboard'
    steps = [p[1] for p in points]
    assert steps[0] == 0 and 30 in steps
    assert all(0 <= p[2] <= 1 for p in points)


def test_bad_options_fail_before_anything_runs(tmp_path):
    result = _run_all('--only', 'cifar10,nope', '--out', str(tmp_path / 'o'))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(
        'run_all.sh: error: unknown experiment nope in --only')
    assert not (tmp_path / 'o').exists()
    result = _run_all('--seeds', '0', '--out', str(tmp_path / 'o'))
    assert result.returncode == 2 and '--seeds must be at least 1' in result.stderr


def test_every_experiment_of_the_report_is_there():
    assert [e.name for e in report.EXPERIMENTS] == [
        'cnn_mnist', 'summaries_1k', 'summaries_20k', 'deep_cnn', 'mlp', 'mlp_grid', 'cifar10',
        'case1', 'case2', 'case3', 'case4']
    cifar = report.BY_NAME['cifar10']
    assert cifar.args == ['--max_steps=60000', '--checkpoint_steps=500',
                          '--min_fraction_of_examples_in_queue=0.2']
    commands, poller, final = report._commands(report.BY_NAME['case1'], '/r', False, None)
    assert '--conv21' in commands[0] and '--conv21' in final and '--batch_size=512' in commands[0]
    assert '--eval_interval_secs=27' in poller


def test_publish_copies_finished_full_runs_with_curves_and_rebuilds_results_md(quick_run,
                                                                                tmp_path):
    import shutil
    out, _ = quick_run
    runs = tmp_path / 'runs'
    shutil.copytree(out / 'deep_cnn', runs / 'deep_cnn')
    shutil.copytree(out / 'summaries_1k', runs / 'summaries_1k')
    # summaries_1k stays a quick run (never published); deep_cnn stands for a finished full one.
    result = json.load(open(runs / 'deep_cnn' / 'result.json'))
    result['quick'] = False
    json.dump(result, open(runs / 'deep_cnn' / 'result.json', 'w'))
    results = tmp_path / 'results'
    shutil.copytree(runs / 'deep_cnn', results / 'deep_cnn_seed3')  # an earlier publish's run
    assert report.publish(str(runs), str(results)) == ['deep_cnn']
    # the new run replaces the experiment's earlier ones, once it is written
    assert sorted(os.listdir(results)) == ['RESULTS.md', 'deep_cnn']
    published = json.load(open(results / 'deep_cnn' / 'result.json'))
    assert published['reproduced'] == result['reproduced']
    assert published['commands'][0][1:3] == ['mnist/deep_cnn.py', '--log_dir=%s/logs'
                                             % (out / 'deep_cnn')]
    assert set(published) >= {'cpu', 'cpu_flags', 'cores', 'gpus', 'tensorflow', 'git_commit',
                              'seed', 'wall_seconds', 'steps'}
    steps, values = zip(*published['curves']['test accuracy'])
    assert steps == (0, 10, 20) and values[-1] == pytest.approx(result['reproduced'], abs=1e-4)
    assert os.path.getsize(results / 'deep_cnn' / 'chart.png') > 10000
    table = (results / 'RESULTS.md').read_text()
    assert table == report.results_markdown(str(results))
    assert re.search(r'^\| deep_cnn \| 0\.9926 \| 0\.\d{4} \| [+-]0\.\d{4} \| 20 \| \d:\d\d:\d\d \| '
                     r'.+ \| 2\.21\.\d, \w+ \| \[deep_cnn\]\(deep_cnn/chart\.png\) \|$', table, re.M)
    assert 'Not yet run at full length: cnn_mnist, summaries_1k, summaries_20k, mlp,' in table


def test_a_row_says_seeds_only_when_every_run_had_one():
    """mean ± std over seeded runs says "seeds"; with an unseeded run among them, "runs"."""
    def result(value, seed):
        return dict(name='case2', reported=0.815, reported_text='0.815', reproduced=value,
                    steps=10000, wall_seconds=60.0, hardware='h', seed=seed)
    seeded = [result(0.79, 0), result(0.80, 1)]
    assert report.table_row(seeded)[2] == '0.7950 ± 0.0071 (2 seeds)'
    assert report.table_row([result(0.80, None)] + seeded)[2] == '0.7967 ± 0.0058 (3 runs)'
    assert report.table_row([result(0.80, None)])[2] == '0.8000'


def test_results_md_marks_cifar10_rows_made_before_the_restored_input(tmp_path):
    assert report._includes('b36b5c7', report.RESTORED_PIPELINE) is True
    assert report._includes('bed152d', report.RESTORED_PIPELINE) is False

    def publish(name, commit, restored):
        os.makedirs(tmp_path / name)
        with open(tmp_path / name / 'result.json', 'w') as f:
            json.dump(dict(name=name.split('_seed')[0], reproduced=0.8, reported=0.8,
                           reported_text='0.8', steps=10000, wall_seconds=60.0, quick=False,
                           seed=None, git_commit=commit, tensorflow='2.21.0', hardware='h',
                           curves={}, restored_pipeline=restored), f)
    publish('case2', 'b36b5c7', True)
    publish('case3', 'bed152d', False)
    text = report.results_markdown(str(tmp_path))
    line, = [l for l in text.splitlines() if l.startswith('Made before')]
    assert line.endswith('after the queue: case3 (bed152d); each is rerun and replaced.')


def test_the_committed_results_md_is_what_run_all_generates():
    path = os.path.join(REPO, 'results', 'RESULTS.md')
    assert open(path).read() == report.results_markdown(), (
        'results/RESULTS.md is stale: ./run_all.sh --publish rebuilds it')


def test_each_committed_figure_is_the_last_point_of_its_own_curve():
    """A committed result's figure is what its event files say at the highest step, the
    curve it carries, not a rounder copy of it (a printed line's three decimals)."""
    checked = 0
    for exp, results in report.load_results():
        if exp.kind == 'mlp_grid':  # its figure is a best over configurations, not a curve
            continue
        folder, tag, unit = report.figure(exp)
        (label,) = [l for f, t, l, _ in report.CURVES[exp.kind] if (f, t) == (folder, tag)]
        for result in results:
            step, value = max(result['curves'][label])
            assert result['steps'] - 1 <= step <= result['steps'], (result['_folder'], step)
            assert result['reproduced'] == round(value, report.DECIMALS), (
                result['_folder'], result['reproduced'], value)
            checked += 1
    assert checked >= 15


# --- the figures come from the event files: what the scripts printed last --------------------

def test_the_figures_are_the_last_printed_ones(quick_run):
    """result.json's figure, read from the event files, is the final figure the script printed
    (what the report read from its log before)."""
    out, _ = quick_run
    printed_last = {'summaries_1k': r'^Final test accuracy after \d+ steps: ([\d.]+)$',
                    'deep_cnn': r'^Final test accuracy after \d+ batches: ([\d.]+)$'}
    for name, pattern in printed_last.items():
        printed = re.findall(pattern, (out / name / 'log.txt').read_text(), re.M)[-1]
        assert json.load(open(out / name / 'result.json'))['reproduced'] == float(printed)


def test_cnn_mnists_figure_is_its_printed_accuracy(tmp_path):
    run_dir = tmp_path / 'cnn_mnist'
    (command,), _, _ = report._commands(report.BY_NAME['cnn_mnist'], str(run_dir), True, 0)
    result = subprocess.run(command + ['--train_steps=2'], cwd=REPO, capture_output=True,
                            text=True, timeout=600,
                            env=dict(os.environ, TF_CLASSICS_DATA=shared_data_root()))
    assert result.returncode == 0, result.stderr[-3000:]
    printed = re.search(r"^\{'accuracy': ([\d.]+),", result.stdout, re.M).group(1)
    assert report.parse_result(report.BY_NAME['cnn_mnist'], str(run_dir)) == (float(printed), {})


def _tiny_mnist(n=64):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (n, 784)).astype(np.float32)
    labels = rng.randint(0, 10, n)
    return images, labels, images[:n // 2], labels[:n // 2]


def test_mlp_prints_a_progress_line_between_its_report_lines(monkeypatch):
    from mnist import mlp
    monkeypatch.setattr(mlp, 'PROGRESS_SECS', 0)  # every step, here
    lines = []
    mlp.run(*_tiny_mnist(), 16, 0.0001, 4, seed=0, log=lines.append)
    progress = [re.match(r'^\(step (\d) of 4 done, \d+ s\)$', l) for l in lines
                if l.startswith('(step')]
    assert [int(m.group(1)) for m in progress] == [1, 2, 3]  # not after the last step
    assert lines[:3] == [l for l in lines if not l.startswith('(step')]  # step 0's, as before


def test_mlp_log_dir_holds_what_it_prints(tmp_path, capsys):
    from mnist import mlp
    run_dir = tmp_path / 'mlp'
    mlp.run(*_tiny_mnist(), 16, 0.0001, 101, seed=0, log_dir=str(run_dir / 'logs'))
    printed = capsys.readouterr().out
    value, extra = report.parse_result(report.BY_NAME['mlp'], str(run_dir))
    test_accuracies = re.findall(r'^Test accuracy: ([\d.]+)%$', printed, re.M)
    assert len(test_accuracies) == 2  # steps 0 and 100, the last
    assert '%.1f' % (100 * value) == test_accuracies[-1]
    assert extra['loss_at_step_0'] == float(
        re.search(r'^Loss at step 0: ([\d.]+)$', printed, re.M).group(1))
    curves = {label: (steps, values) for label, steps, values in
              report.read_curves(report.BY_NAME['mlp'], str(run_dir))}
    assert curves['test accuracy'][0] == [0, 100] and curves['train loss'][0] == [0, 100]
    assert curves['test accuracy'][1][-1] == pytest.approx(value, abs=1e-6)
    assert set(report.read_scalars(str(run_dir / 'logs'), 'train_accuracy')) and not \
        report.read_scalars(str(run_dir / 'logs'), 'diverged_at_step')


def test_mlp_grid_folders_mark_a_diverged_configuration(tmp_path, capsys, monkeypatch):
    import dataclasses
    from mnist import mlp
    monkeypatch.setattr(mlp, 'REPORT_GRID', [(8, 1e30), (16, 0.0001), (4, 0.0001)])
    run_dir = tmp_path / 'mlp_grid'
    config = dataclasses.replace(mlp.DEFAULTS, grid='report', num_steps=3, seed=0,
                                 log_dir=str(run_dir / 'logs'))
    print(mlp.grid_table(mlp.grid_search(config, _tiny_mnist())))
    printed = capsys.readouterr().out
    assert sorted(os.listdir(run_dir / 'logs')) == ['hidden_16_lr_0.0001', 'hidden_4_lr_0.0001',
                                                    'hidden_8_lr_1e+30']
    step = int(re.search(r'^\| 8 \| 1e\+30 \| diverged@(\d+) \|', printed, re.M).group(1))
    assert report.read_scalars(str(run_dir / 'logs' / 'hidden_8_lr_1e+30'),
                               'diverged_at_step') == [(step, step)]
    # what the report read from the table before: the same configurations, figures, order
    rows = re.findall(r'^\| (\d+) \| ([\d.e+-]+) \| \S+ \| \S+ \| ([\d.]+|nan)%? \|$', printed,
                      re.M)
    best, extra = report.parse_result(report.BY_NAME['mlp_grid'], str(run_dir))
    assert extra['configurations'] == len(rows) == 3
    assert '%.1f' % (100 * best) == max((a for _, _, a in rows if a != 'nan'), key=float)
    (label, names, values), = report.read_curves(report.BY_NAME['mlp_grid'], str(run_dir))
    assert names == ['4/0.0001', '8/1e+30', '16/0.0001']
    assert values[1] == 0.0 and ['%.1f' % (100 * v) for v in (values[0], values[2])] == [
        a for _, _, a in sorted(rows, key=lambda r: int(r[0])) if a != 'nan']


def test_the_figure_is_the_value_at_the_highest_step(tmp_path):
    """CIFAR-10: the evaluator's precision @ 1 of the last checkpoint, whichever evaluator
    (the poller or the final one) wrote it."""
    import tensorflow as tf
    from common import summaries
    # Two values at step 10: the final evaluator's, written last, is the figure (not the
    # first written, not the higher). The suffixes keep the files in the order written when
    # both are made in the same second (the file name's time, then its suffix, sort them).
    for name, points in [('1poller', [(5, 0.5), (10, 0.6234)]), ('2final', [(10, 0.6111)])]:
        with tf.Graph().as_default():
            writer = tf.compat.v1.summary.FileWriter(str(tmp_path / 'eval'),
                                                     filename_suffix='.' + name)
            for step, value in points:
                writer.add_summary(summaries.scalar_values({'Precision @ 1': value}), step)
            writer.close()
    assert report.parse_result(report.BY_NAME['cifar10'], str(tmp_path)) == (0.6111, {})


# --- the charts: the run that was made, every run of a row -----------------------------------

def _cifar10_curves(last_step, shift=0.0):
    steps = list(range(0, last_step + 1, 2))
    return [('precision @ 1', steps, [0.1 + shift + 0.01 * s for s in steps]),
            ('train loss', steps, [4.6 - shift - 0.01 * s for s in steps])]


def _drawn(axis):
    """The lines of an axis with data, by colour: {colour: [max x of each line]}."""
    import matplotlib.colors
    lines = {}
    for line in axis.get_lines():
        if len(line.get_xdata()) and line.get_label() != '_child0':
            lines.setdefault(matplotlib.colors.to_hex(line.get_color()), []).append(
                max(line.get_xdata()))
    return lines


def test_a_quick_chart_fits_the_steps_run():
    pytest.importorskip('matplotlib')
    exp = report.BY_NAME['cifar10']
    fig = report.chart_figure(exp, [('cifar10', _cifar10_curves(10))], steps=10)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0, 10)
    assert ax.get_title().splitlines()[0] == 'cifar10: 10 steps'
    # the reference points (to step 60,000) are left out, and the chart says so
    assert all(x <= 10 for xs in _drawn(ax).values() for x in xs)
    notes = [t.get_text() for t in fig.texts]
    label, points = report.REFERENCE_CURVES['cifar10']
    beyond = len([p for p in points if p[0] > 10])
    assert beyond and notes == ['Left out: %d of the %d points of %s, beyond step 10.'
                                % (beyond, len(points), label)]
    assert label.startswith('the ') and ' the the ' not in notes[0]
    # a point at the axis' end is drawn whole, not cut at the edge
    assert all(line.get_clip_on() is False for line in ax.get_lines()
               if line.get_label() in ('precision @ 1', label))
    one = report.chart_figure(exp, [('cifar10', _cifar10_curves(1))], steps=1)
    assert one.axes[0].get_title().splitlines()[0] == 'cifar10: 1 step'
    # the original's evaluations up to step 10 (its first, at step 1) are drawn as triangles
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert legend == ['precision @ 1', label, "the report's figure, 0.838", 'train loss']
    drawn, = [l for l in ax.get_lines() if l.get_label() == label]
    assert drawn.get_marker() == '^' and len(drawn.get_xdata()) == len(points) - beyond


def test_a_full_chart_draws_the_reference_points_in_the_legend():
    pytest.importorskip('matplotlib')
    exp = report.BY_NAME['cifar10']
    fig = report.chart_figure(exp, [('cifar10', _cifar10_curves(60000))], steps=60000)
    assert fig.texts == []
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert report.REFERENCE_CURVES['cifar10'][0] in legend
    assert fig.axes[0].get_title().splitlines()[0] == 'cifar10: 60,000 steps'


def test_reference_points_are_triangles_and_a_dense_curve_a_line(monkeypatch):
    pytest.importorskip('matplotlib')
    exp = report.BY_NAME['cifar10']
    for n, marker, linestyle in [(5, '^', 'None'), (200, 'None', '-')]:
        points = [(300 * (i + 1), 0.5 + 0.001 * i) for i in range(n)]
        monkeypatch.setitem(report.REFERENCE_CURVES, 'cifar10', ('the original', points))
        fig = report.chart_figure(exp, [('cifar10', _cifar10_curves(60000))], steps=60000)
        line, = [l for l in fig.axes[0].get_lines() if l.get_label() == 'the original']
        assert (line.get_marker(), line.get_linestyle()) == (marker, linestyle)
        assert len(line.get_xdata()) == n


def test_a_row_of_several_runs_draws_each_of_them():
    pytest.importorskip('matplotlib')
    exp = report.BY_NAME['case2']
    runs = [('case2%s' % s, _cifar10_curves(100, shift=0.01 * i))
            for i, s in enumerate(['', '_seed0', '_seed1', '_seed2'])]
    fig = report.chart_figure(exp, runs, steps=100)
    left, right = fig.axes[0], fig.axes[1]
    assert [len(xs) for xs in _drawn(left).values() if max(xs) == 100] == [4]
    assert [len(xs) for xs in _drawn(right).values()] == [4]
    assert fig.axes[0].get_title().splitlines()[0] == 'case2: 100 steps, 4 runs'
    legend = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    # and the original code's points up to step 100 (results/probes/orig2016_case2.json)
    assert legend == ['precision @ 1 (each of 4 runs)', 'the original code (tensorflow==0.12.1)',
                      "the report's figure, 0.815", 'train loss (each of 4 runs)']


def test_results_md_shows_each_rows_chart_of_all_its_runs():
    text = report.results_markdown()
    for exp, results in report.load_results():
        chart = report.row_chart(results)
        assert '![%s](%s)' % (exp.name, chart) in text
        assert os.path.isfile(os.path.join(REPO, 'results', chart)), chart
    (case2,) = [results for exp, results in report.load_results() if exp.name == 'case2']
    assert len(case2) == 2 and report.row_chart(case2) == 'charts/case2.png'


def test_list_needs_no_venv(tmp_path):
    """run_all.sh --list prints the names with python3 alone: a copy of the repository without
    .venv, a python3 without site-packages that refuses to build a venv."""
    import shutil
    import stat
    repo = tmp_path / 'repo'
    repo.mkdir()
    for name in ('run_all.sh', 'setup.py'):
        shutil.copy(os.path.join(REPO, name), str(repo))
    for package in ('common', 'tools'):
        shutil.copytree(os.path.join(REPO, package), str(repo / package),
                        ignore=shutil.ignore_patterns('__pycache__'))
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    stub = bin_dir / 'python3'
    stub.write_text('#!/bin/sh\ncase "$*" in *venv*) echo "a venv was asked for" >&2; exit 1;; '
                    'esac\nexec %s -S "$@"\n' % sys.executable)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, PATH='%s:%s' % (bin_dir, os.environ['PATH']))
    result = subprocess.run(['bash', str(repo / 'run_all.sh'), '--list'], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        e.name for e in report.EXPERIMENTS]
    assert not (repo / '.venv').exists()


def test_results_md_names_the_runs_with_no_seed():
    text = report.results_markdown()
    line, = [l for l in text.splitlines() if l.startswith('Runs with no seed')]
    assert 'case4 (case4).' in line and 'cifar10 (cifar10)' in line and 'case2' not in line
    assert 'summaries_1k' not in line and 'deep_cnn' not in line  # seeded rows


def test_reference_curves_are_read_from_the_probes(tmp_path):
    (tmp_path / 'orig_x.json').write_text(json.dumps({
        'reference_for': 'cifar10', 'label': 'the original',
        'curves': {'precision @ 1': [[10, 0.5], [20, 0.6]]}}))
    (tmp_path / 'other.json').write_text(json.dumps({'curves': {}}))  # no reference_for
    assert report.load_reference_curves(str(tmp_path)) == {
        'cifar10': ('the original', [(10, 0.5), (20, 0.6)])}
    assert report.REFERENCE_CURVES['cifar10'][1][-1] == (60000, 0.8571)  # results/probes/


def test_run_facts_and_parts(tmp_path, monkeypatch):
    from common import provenance
    facts = provenance.run_facts(str(tmp_path), environ={'TF_ENABLE_ONEDNN_OPTS': '0',
                                                         'OMP_NUM_THREADS': '2'})
    assert facts['data_root'] == str(tmp_path)
    assert facts['env']['TF_ENABLE_ONEDNN_OPTS'] == '0' and facts['env']['OMP_NUM_THREADS'] == '2'
    assert facts['env']['TF_DETERMINISTIC_OPS'] is None
    assert facts['git_dirty'] in (True, False) and facts['git_commit']
    monkeypatch.setattr(provenance, 'git_commit', lambda: 'aaaaaaa')
    report.record_part(str(tmp_path))
    monkeypatch.setattr(provenance, 'git_commit', lambda: 'bbbbbbb')
    parts = report.record_part(str(tmp_path))  # a run resumed under another commit
    assert [p['git_commit'] for p in parts] == ['aaaaaaa', 'bbbbbbb']
    assert json.load(open(tmp_path / 'parts.json')) == parts


def test_git_dirty_sees_a_changed_tracked_file(tmp_path, monkeypatch):
    from common import provenance
    subprocess.run(['git', 'init', '-q', str(tmp_path)], check=True)
    (tmp_path / 'f').write_text('a')
    git = ['git', '-C', str(tmp_path), '-c', 'user.name=t', '-c', 'user.email=t@t']
    subprocess.run(git + ['add', 'f'], check=True)
    subprocess.run(git + ['commit', '-q', '-m', 'f'], check=True)
    monkeypatch.setattr(provenance, 'REPO', str(tmp_path))
    assert provenance.git_dirty() is False
    (tmp_path / 'f').write_text('b')
    assert provenance.git_dirty() is True
