"""common/scripts.py: the one table of per-script facts that the report, the sweeps and the
benchmark read."""

import importlib

import pytest
import tensorflow as tf
from absl import flags

from common import scripts
from helpers import flag_defaults
from tools import report
from tools import sweep


@pytest.mark.parametrize('script', list(scripts.SCRIPTS.values()), ids=lambda s: s.name)
def test_each_scripts_folder_and_steps_flags_exist(script):
    names = [script.run_dir_flag, script.steps_flag]
    defaults = flag_defaults(script.module, names)
    assert set(defaults) == set(names)


@pytest.mark.parametrize('script', list(scripts.SCRIPTS.values()), ids=lambda s: s.name)
def test_the_benchmarks_interface_of_each_script_is_there(script):
    """What bench/workloads.py builds a script's step from is the script's declared interface:
    renaming one of these fails here, not only in the slow benchmark test."""
    module = importlib.import_module(script.module)
    missing = [name for name in script.interface if not hasattr(module, name)]
    assert not missing, '%s lacks %s' % (script.module, missing)


def test_the_report_and_the_sweep_lay_a_run_out_as_the_table_says():
    deep_cnn = scripts.SCRIPTS['mnist/deep_cnn.py']
    exp = [e for e in report.EXPERIMENTS if e.name == 'deep_cnn'][0]
    (train,), _, _ = report._commands(exp, '/r/deep_cnn', quick=True, seed=None)
    assert train[1:3] == ['mnist/deep_cnn.py', '--log_dir=/r/deep_cnn/logs']
    assert report.figure(exp) == ('logs', 'test/accuracy', 1)
    s = sweep.Sweep(deep_cnn, {}, [], [], [0], 1, None, {})
    s.eval_args = []
    assert sweep.commands(s, '/s/trial-0000', {}, None)[0][2] == '--log_dir=/s/trial-0000/logs'


def test_the_sweep_reads_the_mlps_figure_from_its_event_files(tmp_path):
    """The MLP writes its test accuracy in percent (unit 100): the sweep's figure is the
    fraction, read from the event files as for every script (no more from the printed log)."""
    mlp = scripts.SCRIPTS['mnist/mlp.py']
    folder = tmp_path / mlp.events
    with tf.Graph().as_default():
        writer = tf.compat.v1.summary.FileWriter(str(folder))
        for step, value in ((0, 11.5), (100, 80.0), (300, 86.5)):
            writer.add_summary(tf.compat.v1.Summary(value=[tf.compat.v1.Summary.Value(
                tag=mlp.tag, simple_value=value)]), step)
        writer.close()
    figures = sweep.Figures(mlp, str(tmp_path))
    assert figures.read() == [0, 100, 300]
    assert figures.final() == (300, pytest.approx(0.865))
