"""Every graph a script saves is one any TensorFlow process can run: no Python callback op
(PyFunc, EagerPyFunc: `tf.numpy_function`, `tf.py_function`) in a checkpoint's `.meta` or an
event file's graph, and a `.meta` restored in a fresh process with
`tf.compat.v1.train.import_meta_graph` (the TF1 way to continue, inspect or fine-tune a model)
runs its summaries and its train op (the TRAIN_OP collection)."""

import glob
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from helpers import REPO, TINY_CIFAR10, run_script, script_env

CALLBACK_OPS = {'PyFunc', 'PyFuncStateless', 'EagerPyFunc'}

# A few steps of each training script, into the folder given (the {dir} of its flags).
RUNS = {
    'cifar10/train.py': ['--train_dir={dir}', '--max_steps=2', '--summary_steps=1'] + TINY_CIFAR10,
    'cifar10/multi_gpu_train.py': ['--train_dir={dir}', '--max_steps=2', '--summary_steps=1',
                                   '--num_gpus=2'] + TINY_CIFAR10,
    'mnist/mnist_with_summaries.py': ['--log_dir={dir}', '--max_steps=2', '--fake_data'],
    'mnist/deep_cnn.py': ['--log_dir={dir}', '--max_steps=2', '--eval_every=1'],
    'mnist/cnn_mnist.py': ['--model_dir={dir}', '--train_steps=2'],
}  # mnist/mlp.py saves no graph: no checkpoint, and its event files hold scalars only

# In a fresh process: restore a .meta and its checkpoint, start the queue runners the graph
# holds, feed every placeholder (ones; zeros for integers), run the summaries and the train op.
RESTORE = """
import sys
import numpy as np
import tensorflow as tf
tf.compat.v1.disable_eager_execution()
meta, checkpoint = sys.argv[1:3]
with tf.Graph().as_default() as graph:
    saver = tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
    feed = {}
    for op in graph.get_operations():
        if op.type == 'Placeholder':
            t = op.outputs[0]
            shape = [2 if d is None else d for d in t.shape.as_list()] if t.shape.rank else []
            value = np.zeros if t.dtype.is_integer or t.dtype == tf.bool else np.ones
            feed[t] = value(shape, t.dtype.as_numpy_dtype)
    # The trainer's own summary op (a MonitoredTrainingSession's scaffold keeps it in the
    # SUMMARY_OP collection: the multi-GPU trainer's merges the last tower's), else all.
    summaries = (tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARY_OP) or
                 [tf.compat.v1.summary.merge_all()])[0]
    train_ops = tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.TRAIN_OP)
    assert summaries is not None and train_ops, (summaries, train_ops)
    # Soft placement: a multi-tower graph names devices (/cpu:1) inside its cond functions,
    # which clear_devices leaves.
    config = tf.compat.v1.ConfigProto(allow_soft_placement=True)
    with tf.compat.v1.Session(config=config) as sess:
        saver.restore(sess, checkpoint)
        coord = tf.compat.v1.train.Coordinator()
        threads = tf.compat.v1.train.start_queue_runners(sess, coord)
        summary, _ = sess.run([summaries, train_ops], feed_dict=feed)
        coord.request_stop()
        coord.join(threads, stop_grace_period_secs=5)
print('@@ ran', len(tf.compat.v1.Summary.FromString(summary).value), 'summary values')
"""


def _callback_ops(graph_def):
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += list(function.node_def)
    return sorted(n.name for n in nodes if n.op in CALLBACK_OPS)


def _saved_graphs(folder):
    """{path: GraphDef} of every .meta and every event file's graph under folder."""
    graphs = {}
    for meta in glob.glob(os.path.join(folder, '**', '*.meta'), recursive=True):
        meta_graph = tf.compat.v1.MetaGraphDef()
        with open(meta, 'rb') as f:
            meta_graph.ParseFromString(f.read())
        graphs[meta] = meta_graph.graph_def
    for events in glob.glob(os.path.join(folder, '**', 'events.out.tfevents.*'), recursive=True):
        for i, event in enumerate(tf.compat.v1.train.summary_iterator(events)):
            if event.graph_def:
                graph = tf.compat.v1.GraphDef()
                graph.ParseFromString(event.graph_def)
                graphs['%s#%d' % (events, i)] = graph
    return graphs


@pytest.fixture(scope='module', params=sorted(RUNS))
def saved(request, tmp_path_factory):
    script = request.param
    folder = str(tmp_path_factory.mktemp(os.path.basename(script).replace('.py', '')))
    result = run_script(script, *[a.format(dir=folder) for a in RUNS[script]])
    assert result.returncode == 0, result.stderr[-3000:]
    return script, folder


def test_no_python_callback_op_in_any_saved_graph(saved):
    script, folder = saved
    graphs = _saved_graphs(folder)
    assert graphs, 'no graph saved by %s' % script
    found = {path: _callback_ops(g) for path, g in graphs.items() if _callback_ops(g)}
    assert not found, found


def test_a_restored_meta_runs_its_summaries_and_train_op_in_a_fresh_process(saved):
    script, folder = saved
    metas = sorted(glob.glob(os.path.join(folder, '**', '*.meta'), recursive=True))
    assert metas, 'no checkpoint written by %s' % script
    meta = metas[-1]
    result = subprocess.run([sys.executable, '-c', RESTORE, meta, meta[:-len('.meta')]],
                            cwd=REPO, env=script_env({'TF_CPP_MIN_LOG_LEVEL': '2'}),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert '@@ ran' in result.stdout
