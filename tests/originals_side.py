"""The original's side of tests/test_originals.py, run in its own process (the originals define
absl flags at import and their cifar10.py would shadow our cifar10 package):

    python tests/originals_side.py CONVERTED_DIR IN.npz OUT.npz

IN.npz: `var:<name>` variable values, `images` [B, 24, 24, 3], `labels` [B], `tower<k>:<name>`
tower gradients, `data_file` (a CIFAR-10 binary batch), `records` (how many to read),
`eval_dir` (a folder holding test_batch.bin), `batches_dir` (the training batches),
`draw_images` and `draws:<k>` (an image each, the values of the training distortions' random
ops for it). OUT.npz: `logits`, `loss`, `grad:<name>`, `avg:<name>`, `keys`, `record_labels`,
`uint8images`, `eval_images`, `eval_labels`, `distorted` (the training graph's image for each
draw), and the training graph's `losses` (the 'losses' collection's op names), `summary_tags`
(the tags TensorFlow 0.12's summary ops had: the names given), `variables` (trainable
variables, 'name:shape').
"""

import graph_facts

import os
import sys

import numpy as np
import tensorflow as tf


def main(code_dir, in_path, out_path):
    sys.path.insert(0, code_dir)
    import cifar10  # the converted original  pylint: disable=g-import-not-at-top
    import cifar10_input
    import cifar10_multi_gpu_train
    inp = np.load(in_path)
    batch = inp['images'].shape[0]
    tf.compat.v1.app.flags.FLAGS(['originals_side', '--batch_size=%d' % batch])
    out = {}

    with tf.Graph().as_default():
        images = tf.constant(inp['images'])
        logits = cifar10.inference(images)
        loss = cifar10.loss(logits, tf.constant(inp['labels']))
        variables = tf.compat.v1.trainable_variables()
        grads = tf.gradients(loss, variables)
        with tf.compat.v1.Session() as sess:
            for v in variables:
                v.load(inp['var:' + v.op.name], sess)
            values = sess.run([logits, loss] + grads)
        out['logits'], out['loss'] = values[0], values[1]
        for v, g in zip(variables, values[2:]):
            out['grad:' + v.op.name] = g

    with tf.Graph().as_default():
        names = sorted(k.split(':', 1)[1] for k in inp.files if k.startswith('tower0:'))
        towers = sorted({k.split(':', 1)[0] for k in inp.files if k.startswith('tower')})
        variables = {n: tf.Variable(np.zeros_like(inp['tower0:' + n]), name=n) for n in names}
        tower_grads = [[(tf.constant(inp['%s:%s' % (t, n)]), variables[n]) for n in names]
                       for t in towers]
        averaged = cifar10_multi_gpu_train.average_gradients(tower_grads)
        with tf.compat.v1.Session() as sess:
            for n, (g, _) in zip(names, averaged):
                out['avg:' + n] = sess.run(g)

    with tf.Graph().as_default():
        queue = tf.queue.FIFOQueue(9, [tf.string], shapes=())
        record = cifar10_input.read_cifar10(queue)
        with tf.compat.v1.Session() as sess:
            sess.run(queue.enqueue([str(inp['data_file'])]))
            sess.run(queue.close())
            rows = [sess.run([record.key, record.label, record.uint8image])
                    for _ in range(int(inp['records']))]
        out['keys'] = np.array([r[0] for r in rows])
        out['record_labels'] = np.array([r[1] for r in rows])
        out['uint8images'] = np.array([r[2] for r in rows])

    with tf.Graph().as_default():
        n = int(inp['records'])
        images, labels = cifar10_input.inputs(eval_data=True, data_dir=str(inp['eval_dir']),
                                              batch_size=n)
        with tf.compat.v1.Session() as sess:
            coord = tf.train.Coordinator()
            threads = tf.compat.v1.train.start_queue_runners(sess=sess, coord=coord)
            out['eval_images'], out['eval_labels'] = sess.run([images, labels])
            coord.request_stop()
            coord.join(threads, stop_grace_period_secs=5)

    # The single-device trainer's graph (cifar10_train.train up to its train op), with the
    # names given to the summary functions recorded: TensorFlow 0.12's tf.scalar_summary and
    # tf.histogram_summary used them as the tags (1.0's tf.summary derives tags from scopes).
    tags = {}  # the summary op's name: the name the original gave it
    for name in ('scalar', 'histogram', 'image'):
        real = getattr(tf.compat.v1.summary, name)

        def recording(tag, *args, _real=real, **kwargs):
            op = _real(tag, *args, **kwargs)
            tags[op.op.name] = tag
            return op
        setattr(tf.compat.v1.summary, name, recording)
    with tf.Graph().as_default() as graph:
        global_step = tf.compat.v1.Variable(0, trainable=False)
        images, labels = cifar10_input.distorted_inputs(str(inp['batches_dir']), batch)
        logits = cifar10.inference(images)
        loss = cifar10.loss(logits, labels)
        cifar10.train(loss, global_step)
        out.update(graph_facts.names(graph))
        out['summary_tags'] = graph_facts.summary_tags(graph, tags)
        out['distorted'] = graph_facts.distort_with_draws(graph, inp['draw_images'], inp)

    np.savez(out_path, **out)


if __name__ == '__main__':
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    main(*sys.argv[1:4])
