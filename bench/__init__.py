"""Throughput benchmarks: our scripts' training graphs against the same models in Keras 3 and
PyTorch, the machine's matmul peak, and the CIFAR-10 input pipeline (python -m bench; see
bench/run.py). This file holds what every benchmark process shares, without importing a
framework."""

import collections

import common  # noqa: F401  (before TensorFlow: its CPU defaults, see common/__init__.py)

# What is timed: examples_per_step examples each step() call; flops per step (None where not
# counted); close() frees it.
Workload = collections.namedtuple('Workload', 'examples_per_step step flops close')

MODELS = ['cnn_mnist', 'mnist_with_summaries', 'deep_cnn', 'cifar10', 'mlp']
# The scripts' default batch sizes (mlp: the whole training set).
BATCH = {'cnn_mnist': 100, 'mnist_with_summaries': 100, 'deep_cnn': 100, 'cifar10': 128,
         'mlp': 60000}
# The matmul timed for the machine's fp32 peak: [PEAK_SIZE, PEAK_SIZE] x [PEAK_SIZE, PEAK_SIZE].
PEAK_SIZE = 2048
