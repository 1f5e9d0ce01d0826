"""What tests/test_originals.py compares between a CIFAR-10 training graph of ours and the
original's (used on both sides: ours in the test's process, the original's in
tests/originals_side.py): the names in the graph, and the training distortions run on given
images with given random draws. Reads graphs only; imports neither side's code."""

import numpy as np
import tensorflow as tf

RANDOM_OPS = {'RandomUniform', 'RandomUniformInt', 'RandomStandardNormal'}


def names(graph):
    """{'losses': the 'losses' collection's op names in order, 'variables': the trainable
    variables as 'name:shape'}, as numpy arrays (for an .npz)."""
    with graph.as_default():
        losses = [t.op.name for t in tf.compat.v1.get_collection('losses')]
        variables = ['%s:%s' % (v.op.name, v.shape.as_list())
                     for v in tf.compat.v1.trainable_variables()]
    return {'losses': np.array(losses), 'variables': np.array(variables)}


def summary_tags(graph, given=None):
    """The tags of the graph's summary ops (the constant each takes, or given[op name]),
    sorted."""
    given = given or {}
    tags = []
    with graph.as_default():
        for op in tf.compat.v1.get_collection(tf.compat.v1.GraphKeys.SUMMARIES):
            op = op.op if hasattr(op, 'op') else op
            if op.type == 'MergeSummary':
                continue
            if op.name in given:
                tags.append(given[op.name])
                continue
            const = op.inputs[0].op
            assert const.type == 'Const', (op.name, const.type)
            tags.append(tf.make_ndarray(const.get_attr('value')).item().decode())
    return np.array(sorted(tags))


def _training_image(graph):
    """The float image [24, 24, 3] the training queue (shuffle_batch) is fed."""
    for op in graph.get_operations():
        if op.type == 'QueueEnqueueV2' and len(op.inputs) == 3:
            image = op.inputs[1]
            if image.dtype == tf.float32 and image.shape.rank == 3:
                return image
    raise AssertionError('no shuffle_batch enqueue of a float image in the graph')


def _upstream(tensor):
    """The ops tensor depends on, in the order they were created."""
    seen, todo = {}, [tensor.op]
    while todo:
        op = todo.pop()
        if op.name in seen:
            continue
        seen[op.name] = op
        todo.extend(t.op for t in op.inputs)
        todo.extend(op.control_inputs)
    return sorted(seen.values(), key=lambda op: op._id)  # pylint: disable=protected-access


def distortion_ops(graph):
    """(the uint8 image the distortions start from, the random ops they draw from in the
    order they were made, the distorted image)."""
    image = _training_image(graph)
    ops = _upstream(image)
    casts = [op for op in ops if op.type == 'Cast' and op.inputs[0].dtype == tf.uint8
             and op.outputs[0].dtype == tf.float32]
    assert len(casts) == 1, [op.name for op in casts]
    return casts[0].inputs[0], [op for op in ops if op.type in RANDOM_OPS], image


def distort_with_draws(graph, images, draws):
    """The distorted image of each of images (uint8 [n, 32, 32, 3]) when the distortions'
    random ops output the values draws['draws:<k>'] for image k (each op's values in turn, in
    the order the ops were made); the reader is not run. Returns float32 [n, 24, 24, 3]."""
    uint8image, random_ops, image = distortion_ops(graph)
    out = []
    with graph.as_default(), tf.compat.v1.Session() as sess:
        for k, one in enumerate(images):
            values = list(draws['draws:%d' % k])
            feed = {uint8image: one}
            for op in random_ops:
                t = op.outputs[0]
                size = t.shape.num_elements()
                taken, values = values[:size], values[size:]
                assert len(taken) == size, [o.type for o in random_ops]
                feed[t] = np.array(taken, t.dtype.as_numpy_dtype).reshape(t.shape.as_list())
            assert not values, 'more draws than random ops: %s' % [o.type for o in random_ops]
            out.append(sess.run(image, feed_dict=feed))
    return np.array(out)
