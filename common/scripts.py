"""The facts about each training script, in one table (pure data), read by the report
(tools/report.py), the sweeps (tools/sweep.py) and the benchmark (bench/).

A run of a script lives in one folder, the run's folder (a report row, a sweep's trial), laid
out the same way by the report and the sweeps: the script's folder flag (run_dir_flag) names
<run's folder>/<run_subdir>, the tool's own files (log.txt, the HParams session) sit beside
it, and the figure is the scalar `tag` of the event files in <run's folder>/<events>, divided
by `unit` (a fraction). CIFAR-10's figure is written by its evaluator (`evaluator`, with
--checkpoint_dir=<run_subdir> and --eval_dir=<events>); the others write their own.

`interface` names what python -m bench builds the script's training step from
(bench/workloads.py): the script's declared interface beyond its command line, checked by
tests/test_bench.py. Renaming one of them means changing the benchmark too.
"""

import collections

Script = collections.namedtuple(
    'Script', 'name path module run_dir_flag run_subdir steps_flag events tag unit evaluator '
              'interface')

MNIST_INTERFACE = ('DEFAULTS', 'VALIDATION_SIZE', 'Model', 'train_step')

SCRIPTS = collections.OrderedDict((s.path, s) for s in [
    Script('cnn_mnist', 'mnist/cnn_mnist.py', 'mnist.cnn_mnist', 'model_dir', 'model',
           'train_steps', 'model/eval', 'accuracy', 1, None,
           MNIST_INTERFACE + ('training_session', 'train_input')),
    Script('mnist_with_summaries', 'mnist/mnist_with_summaries.py', 'mnist.mnist_with_summaries',
           'log_dir', 'logs', 'max_steps', 'logs/test', 'accuracy', 1, None,
           MNIST_INTERFACE + ('BATCH_SIZE',)),
    Script('deep_cnn', 'mnist/deep_cnn.py', 'mnist.deep_cnn', 'log_dir', 'logs', 'max_steps',
           'logs', 'test/accuracy', 1, None, MNIST_INTERFACE + ('train_steps',)),
    # percent; with --grid one folder per configuration below it (mlp.GRID_FOLDER)
    Script('mlp', 'mnist/mlp.py', 'mnist.mlp', 'log_dir', 'logs', 'num_steps', 'logs',
           'test_accuracy', 100, None, ('DEFAULTS', 'VALIDATION_SIZE', 'BATCH_SIZE', 'Graph')),
    Script('train', 'cifar10/train.py', 'cifar10.train', 'train_dir', 'train', 'max_steps',
           'eval', 'Precision @ 1', 1, 'cifar10/eval.py', ()),
    Script('multi_gpu_train', 'cifar10/multi_gpu_train.py', 'cifar10.multi_gpu_train',
           'train_dir', 'train', 'max_steps', 'eval', 'Precision @ 1', 1, 'cifar10/eval.py',
           ('training_graph', 'training_graph_from_files')),
])


def by_name(name):
    """The Script of that name (cnn_mnist, ..., multi_gpu_train)."""
    for script in SCRIPTS.values():
        if script.name == name:
            return script
    raise KeyError(name)
