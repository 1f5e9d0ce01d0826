"""Images per second of an exported classifier (cifar10/predict.py or mnist/predict.py
--export_dir), at batch 1 and batch 128.

    python cifar10/predict.py --export_dir=/tmp/cifar10_serving
    python -m bench.serving /tmp/cifar10_serving          # its newest version
    python -m bench.serving /tmp/cifar10_serving/50000 --seconds=2 --rounds=5

The SavedModel is loaded into a v1 Session, as TensorFlow Serving runs it (without the RPC), and
each signature is timed on the data set's first test images: 'serving_default' on the images
PNG-encoded (decoding in the graph included) and 'predict_images' on the uint8 batch. Batch 1
is one image per request, one request after the other. Each case is warmed up, then timed for
--rounds windows of --seconds, the cases taking turns; the median is printed.
"""

import os
import statistics
import sys
import time

from absl import app
from absl import flags
import numpy as np
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from common import data
from common import entry
from common import provenance
from common import serving

FLAGS = flags.FLAGS
BATCHES = (1, 128)


def define_flags():
    flags.DEFINE_float('seconds', 2.0, 'Length of one timed window.', lower_bound=0.0)
    flags.DEFINE_integer('rounds', 5, 'Timed windows per case (the median is kept).',
                         lower_bound=1)
    flags.DEFINE_float('warmup_seconds', 1.0, 'Untimed requests before the first window.',
                       lower_bound=0.0)
    flags.DEFINE_string('data_dir', None,
                        'Folder holding cifar10/ and mnist/ (default: $TF_CLASSICS_DATA, else '
                        '../shared/data beside the repository, else ./data in it).')


def version_dir(path):
    """path itself when it holds saved_model.pb, else its newest numbered version."""
    if os.path.exists(os.path.join(path, 'saved_model.pb')):
        return path
    versions = [int(v) for v in os.listdir(path) if v.isdigit()] if os.path.isdir(path) else []
    if not versions:
        sys.exit('error: %s holds no SavedModel (expected saved_model.pb, or versions '
                 '<export_dir>/<number>/ as predict.py --export_dir writes them)' % path)
    return os.path.join(path, str(max(versions)))


def test_images(channels, count, root):
    """The first `count` test images of the data set a model with `channels` channels was
    trained on: CIFAR-10 (3) or MNIST (1), from the folder `root` holding cifar10/ and mnist/;
    uint8 [count, h, w, channels]."""
    if channels == 3:
        batches = data.maybe_download_and_extract_cifar10(os.path.join(root, 'cifar10'),
                                                          verify_checksum=False)
        images, _ = data.read_cifar10_numpy(data.cifar10_test_files(batches))
        return images[:count]
    return data.load_mnist(os.path.join(root, 'mnist'),
                           verify_checksum=False).test_images[:count, :, :, np.newaxis]


def timed(run, seconds):
    """Calls run() for at least `seconds` (and at least twice); returns calls per second."""
    run()
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and calls >= 2:
            return calls / elapsed


def serving_signatures(path):
    """The signature defs of the SavedModel at path, tag 'serve'."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, 'saved_model.pb'), 'rb') as f:
        saved_model.ParseFromString(f.read())
    for meta_graph in saved_model.meta_graphs:
        if tf.saved_model.SERVING in meta_graph.meta_info_def.tags:
            return meta_graph.signature_def
    sys.exit('error: %s has no graph tagged serve' % path)


def measure(path, root, rounds, seconds, warmup_seconds, log=print):
    """Times both signatures of the SavedModel at path at each of BATCHES. Returns rows
    (signature, input, batch, images per second), in the order printed."""
    path = version_dir(path)
    signatures = serving_signatures(path)
    images_input = signatures[serving.SIGNATURE_IMAGES].inputs['images']
    bytes_input = signatures[serving.SIGNATURE_BYTES].inputs['image_bytes']
    output = signatures[serving.SIGNATURE_BYTES].outputs['all_probabilities']
    channels = images_input.tensor_shape.dim[-1].size
    images = test_images(channels, max(BATCHES), root)
    encoded = np.array([tf.io.encode_png(image).numpy() for image in images], dtype=object)
    cases = []
    for batch in BATCHES:
        cases.append(('serving_default', 'PNG bytes', batch, {bytes_input.name: encoded[:batch]}))
        cases.append(('predict_images', 'uint8', batch, {images_input.name: images[:batch]}))
    log('%s: %d-channel %dx%d test images' % (path, channels, images.shape[1], images.shape[2]))
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as sess:
        tf.compat.v1.saved_model.loader.load(sess, [tf.saved_model.SERVING], path)

        def runner(feed):
            return lambda: sess.run(output.name, feed)
        for _, _, _, feed in cases:
            timed(runner(feed), warmup_seconds)
        rates = [[] for _ in cases]
        for _ in range(rounds):
            for i, (_, _, batch, feed) in enumerate(cases):
                rates[i].append(batch * timed(runner(feed), seconds))
    return [(name, kind, batch, statistics.median(r))
            for (name, kind, batch, _), r in zip(cases, rates)]


def table(rows):
    lines = ['| signature | input | batch | images/s | ms per request |', '|---|---|---|---|---|']
    for name, kind, batch, rate in rows:
        lines.append('| %s | %s | %d | %s | %.2f |' % (name, kind, batch,
                                                        '{:,.0f}'.format(rate),
                                                        1000.0 * batch / rate))
    return '\n'.join(lines)


def main(argv):
    if len(argv) != 2:
        raise app.UsageError('give one SavedModel folder (or the --export_dir of predict.py)')
    rows = measure(argv[1], os.path.abspath(FLAGS.data_dir) if FLAGS.data_dir else data.data_root(),
                   FLAGS.rounds, FLAGS.seconds, FLAGS.warmup_seconds)
    facts = provenance.hardware_facts()
    print('%s; TensorFlow %s; median of %d windows of %g s' % (
        facts['hardware'], tf.__version__, FLAGS.rounds, FLAGS.seconds))
    print(table(rows))


if __name__ == '__main__':
    entry.run(define_flags, main)
