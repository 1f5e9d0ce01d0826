"""Model FLOPs of a training step, counted from the graph, and the fp32 matmul peak.

Only the matrix products count (MatMul, Conv2D and its two gradients), 2 FLOPs per
multiply-add: the usual "model FLOPs". Element-wise ops, pooling, LRN and the optimiser's updates
are left out, so a figure as a fraction of the matmul peak is a lower bound of the machine's use.
"""

import os

import numpy as np
import tensorflow as tf

from bench import PEAK_SIZE



def _dims(shape):
    dims = shape.as_list() if hasattr(shape, 'as_list') else list(shape)
    if any(d is None for d in dims):
        raise ValueError('shape %s is not fully known: count FLOPs on a graph with a fixed batch'
                         % (dims,))
    return dims


def op_flops(op):
    """FLOPs of one op (0 for anything but a matrix product)."""
    if op.type == 'MatMul':
        a = _dims(op.inputs[0].shape)
        out = _dims(op.outputs[0].shape)
        k = a[0] if op.get_attr('transpose_a') else a[1]
        return 2 * out[0] * out[1] * k
    if op.type == 'Conv2D':
        out = _dims(op.outputs[0].shape)
        kh, kw, cin, _ = _dims(op.inputs[1].shape)
        return 2 * int(np.prod(out)) * kh * kw * cin
    if op.type in ('Conv2DBackpropInput', 'Conv2DBackpropFilter'):
        out_backprop = _dims(op.inputs[2].shape)
        if op.type == 'Conv2DBackpropInput':
            kh, kw, cin, _ = _dims(op.inputs[1].shape)
        else:
            kh, kw, cin, _ = _dims(op.outputs[0].shape)
        return 2 * int(np.prod(out_backprop)) * kh * kw * cin
    return 0


def step_flops(fetches):
    """Model FLOPs of one session.run of `fetches` (ops or tensors): the matrix products of
    every op they depend on, through data and control inputs, except the gradients' gates.

    An optimiser's default gate_gradients=GATE_OP groups all gradients of an op with a
    control dependency (a '.../tuple/group_deps' op), which ties the gradient of the first
    layer's input into the train op; nothing uses it, TensorFlow's graph optimiser prunes it
    (it never shows in a step's trace) and the peers skip it, so it is not counted.
    """
    seen = set()
    stack = [f.op if isinstance(f, tf.Tensor) else f for f in tf.nest.flatten(fetches)]
    total = 0
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        total += op_flops(op)
        stack.extend(t.op for t in op.inputs)
        stack.extend(c for c in op.control_inputs if not c.name.endswith('/tuple/group_deps'))
    return total


def matmul_workload(framework, size=PEAK_SIZE):
    """A Workload whose step is one fp32 [size, size] x [size, size] matmul in `framework`
    ('tensorflow': a session running the op, which copies nothing back; 'numpy'; 'pytorch',
    threads = cores), with its FLOPs. The machine's peak is the best of them."""
    import bench
    if framework == 'pytorch':
        import torch
        torch.set_num_threads(os.cpu_count())
        a, b = torch.randn(size, size), torch.randn(size, size)
        return bench.Workload(1, lambda: torch.mm(a, b), 2 * size ** 3, lambda: None)
    if framework == 'numpy':
        rng = np.random.RandomState(0)
        a, b = (rng.standard_normal([size, size]).astype(np.float32) for _ in range(2))
        return bench.Workload(1, lambda: np.dot(a, b), 2 * size ** 3, lambda: None)
    a = tf.compat.v1.get_variable('peak_a', [size, size],
                                  initializer=tf.compat.v1.random_normal_initializer())
    b = tf.compat.v1.get_variable('peak_b', [size, size],
                                  initializer=tf.compat.v1.random_normal_initializer())
    op = tf.matmul(a, b).op
    sess = tf.compat.v1.Session()
    sess.run(tf.compat.v1.global_variables_initializer())
    return bench.Workload(1, lambda: sess.run(op), 2 * size ** 3, sess.close)
