"""Throughput benchmarks: our scripts' training graphs against the same models in Keras 3 and
PyTorch, the machine's matmul peak, and the CIFAR-10 input pipeline (python -m bench; see
bench/run.py). This file holds what every benchmark process shares, without importing a
framework (batch_size imports the model's script, and TensorFlow)."""

import collections
import time

import common

# Every benchmark process (python -m bench, its workers, bench.profile, bench.gpu) runs
# TensorFlow as the scripts do, Keras included: the same oneDNN kernels, the same log lines.
common.before_tensorflow()

# What is timed: examples_per_step examples each step() call; flops per step (None where not
# counted); close() frees it. window(seconds) -> (steps, elapsed), where given, times a window
# itself instead of calls of step() (Keras' one long fit(): bench/peers.py); variant names what
# was chosen among the ways of running it (the peers' fastest settings), None for ours.
Workload = collections.namedtuple('Workload', 'examples_per_step step flops close window variant',
                                  defaults=(None, None))

MODELS = ['cnn_mnist', 'mnist_with_summaries', 'deep_cnn', 'cifar10', 'mlp']
# The scripts that have --steps_per_run (the opt-in in-graph loop), and the value the bench's
# ours_loop way gives it (Keras' steps_per_execution=10).
LOOP_MODELS = ['deep_cnn']
LOOP_STEPS = 10
# The matmul timed for the machine's fp32 peak: [PEAK_SIZE, PEAK_SIZE] x [PEAK_SIZE, PEAK_SIZE].
PEAK_SIZE = 2048


def check_choices(flag_values, name, choices):
    """Makes the list flag --<name> accept only a non-empty comma-separated list of `choices`
    (python -m bench's and bench.profile's --models and --ways)."""
    flag_values.register_validator(name, lambda v: v and set(v) <= set(choices),
                                   '--%s: expected a comma-separated list of %s'
                                   % (name, ', '.join(choices)))


def batch_size(model):
    """The batch `model`'s script trains on with its defaults, read from the script (which
    imports TensorFlow): its --batch_size default, mnist_with_summaries' fixed batch, the MLP's
    whole training set."""
    if model == 'cifar10':
        from cifar10 import train_lib
        return train_lib.DEFAULTS.batch_size
    from mnist import cnn_mnist, deep_cnn, mlp, mnist_with_summaries
    return {'cnn_mnist': cnn_mnist.DEFAULTS.batch_size,
            'mnist_with_summaries': mnist_with_summaries.BATCH_SIZE,
            'deep_cnn': deep_cnn.DEFAULTS.batch_size, 'mlp': mlp.BATCH_SIZE}[model]


def timed(fn, seconds, min_calls=2):
    """Calls fn() for `seconds` (at least min_calls times); returns (calls, elapsed seconds)."""
    calls = 0
    start = time.perf_counter()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - start
        if calls >= min_calls and elapsed >= seconds:
            return calls, elapsed
