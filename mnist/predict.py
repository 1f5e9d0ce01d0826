"""Classify your own digits with a model the MNIST scripts trained; export it for TF Serving.

    python mnist/predict.py digit.png                        # cnn_mnist's /tmp/mnist_convnet_model
    python mnist/predict.py --model_dir=/tmp/mnist_deep_cnn seven.jpg
    python mnist/predict.py --model_dir=/tmp/tensorflow/mnist/logs/mnist_with_summaries two.png
    python mnist/predict.py --noinvert digit.png              # never invert (--invert: always)
    python mnist/predict.py --export_dir=/tmp/mnist_serving   # -> /tmp/mnist_serving/<step>/

--model_dir is cnn_mnist's --model_dir or deep_cnn's and mnist_with_summaries' --log_dir: the
model is the one that script trained, found from the flags it saved there (their 'script'),
else from the checkpoint's variable names. Each file gets one line: the three most probable
digits, most probable first, with their probabilities:

    digit.png: 7 0.981234, 1 0.010021, 9 0.003102

What is done to an image, so that the model sees it as MNIST stores its digits (a white digit
on black, 28x28, 8-bit grayscale):
  1. decoded (PNG, JPEG, BMP, GIF or WebP, any size) to 8-bit RGB (an alpha channel dropped),
     then to grayscale (0.2989 R + 0.587 G + 0.114 B, rounded);
  2. inverted, 255 - value, when its border (the outermost rows and columns) is light, on
     average above 127.5: a dark digit drawn on a light background, as people draw them; a
     line before the file's says so. --invert inverts every image, --noinvert none;
  3. padded with black to a centred square (the aspect ratio is kept and nothing is cut off)
     and resized to 28x28 (bilinear, antialiased), rounded to 8 bits; scaled to [0, 1] as the
     scripts feed MNIST. MNIST's digits fill about the centre 20x20 of the 28x28: a digit that
     fills its whole image looks larger to the model than those it learnt from.
--export_dir writes a SavedModel (TensorFlow Serving's layout: <export_dir>/<global step>/)
whose 'serving_default' signature takes encoded image files (a batch of strings) and
'predict_images' a uint8 batch [n, height, width, 1]; both do the steps above (step 2 as
exported: by each image's border, or --invert / --noinvert when given) and return the top 3
`classes`, `class_names`, `probabilities`, `all_probabilities` and `inverted` (bool [n]: which
images step 2 inverted; see common/serving.py).
A file that is not an image, or cannot be read: one line on stderr naming it, the other files
are still classified, exit status 1 at the end. No checkpoint, or one that is not of the MNIST
scripts' models: one line, exit status 1.
"""

import collections
import dataclasses
import os
import sys

from absl import flags
from absl import logging
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from common import checkpoints
from common import config as config_lib
from common import entry
from common import serving
from mnist import cnn_mnist
from mnist import deep_cnn
from mnist import mnist_with_summaries

FLAGS = flags.FLAGS

MNIST_SIDE = 28
CLASS_NAMES = [str(digit) for digit in range(10)]


def _summaries_logits(images):
    # mnist_with_summaries' two layers; its dropout keeps everything at test time.
    hidden1 = mnist_with_summaries.nn_layer(images, 784, 500, 'layer1')
    return mnist_with_summaries.nn_layer(hidden1, 500, 10, 'layer2', act=tf.identity)


# The scripts that keep checkpoints, by the name save_flags records, and their networks at test
# time: images float32 [n, 784] in [0, 1] -> logits [n, 10].
MODELS = collections.OrderedDict([
    ('cnn_mnist.py', lambda images: cnn_mnist.cnn_model(images, tf.constant(False))),
    ('deep_cnn.py', lambda images: deep_cnn.deep_cnn(images, tf.constant(1.0))),
    ('mnist_with_summaries.py', _summaries_logits),
])


@dataclasses.dataclass(frozen=True)
class Config:
    """What to classify with, and what else to do: the flags."""
    model_dir: str = config_lib.flag(
        cnn_mnist.DEFAULTS.model_dir,
        'The folder of the checkpoints: cnn_mnist\'s --model_dir, or deep_cnn\'s or '
        'mnist_with_summaries\' --log_dir. Its latest checkpoint is used.')
    checkpoint: str = config_lib.flag(
        None, 'One checkpoint to use instead of the latest, e.g. '
        '/tmp/mnist_convnet_model/model.ckpt-20000.')
    invert: bool = config_lib.flag(
        None, 'Invert every image (255 - value), as for a dark digit on a light background '
        '(MNIST stores white digits on black); --noinvert: none. Default: those whose border '
        'is light, one line per file saying so.')
    export_dir: str = config_lib.flag(
        None, 'Also write the model as a SavedModel for TensorFlow Serving, in '
        '<export_dir>/<global step>/.')


DEFAULTS = Config()


def define_flags():
    config_lib.define_flags(Config)


def decode_gray(contents):
    """An encoded image as uint8 grayscale [h, w, 1], whatever its format or colour mode
    (module docstring, step 1)."""
    rgb = serving.decode_rgb(contents)
    gray = tf.image.rgb_to_grayscale(tf.cast(rgb, tf.float32))
    return tf.cast(tf.clip_by_value(tf.round(gray), 0, 255), tf.uint8)


def prepare_digits(images, invert=False):
    """Grayscale images of any size as the scripts feed MNIST (module docstring, step 3;
    with invert, every image inverted first). uint8 [n, height, width, 1] -> float32 [n, 784]
    in [0, 1]."""
    if invert:
        images = 255 - images
    mnist_like = serving.square_resized(images, MNIST_SIDE, pad=True)  # 28x28: unchanged
    return tf.reshape(mnist_like / 255.0, [-1, MNIST_SIDE * MNIST_SIDE])


def light_border(images):
    """Whether each image's border (its outermost rows and columns) is light, on average above
    127.5: a dark digit on a light background. uint8 [n, height, width, 1] -> bool [n]."""
    x = tf.cast(images, tf.float32)
    border = tf.concat([x[:, 0], x[:, -1], x[:, :, 0], x[:, :, -1]], axis=1)
    return tf.reduce_mean(border, axis=[1, 2]) > 127.5


def which_to_invert(invert):
    """The images to invert, for serving.build_classifier: those with a light border (invert
    None), all (True) or none (False)."""
    if invert is None:
        return light_border
    return lambda images: tf.fill(tf.shape(images)[:1], bool(invert))


def build_classifier(script, invert=None):
    """The classifier graph (common/serving.py) around the network `script` trained, inverting
    the images `invert` picks (which_to_invert). Returns the Classifier and its variables by
    name."""
    classifier = serving.build_classifier(prepare_digits, MODELS[script], CLASS_NAMES,
                                          channels=1, decode=decode_gray,
                                          invert=which_to_invert(invert))
    return classifier, {v.op.name: v for v in tf.compat.v1.global_variables()}


def _variable_names(script):
    with tf.Graph().as_default():
        MODELS[script](tf.zeros([1, MNIST_SIDE * MNIST_SIDE]))
        return {v.op.name for v in tf.compat.v1.global_variables()}


def detect_model(ckpt_path):
    """Which script trained the checkpoint: the 'script' of the newest flags file in its folder,
    else the model all of whose variables the checkpoint holds. Returns (script, how it was
    found). Raises checkpoints.CheckpointMismatchError when it is none of MODELS."""
    folder = os.path.dirname(ckpt_path)
    record, path = checkpoints.latest_saved_run(folder)
    if record is not None and record.get('script'):
        if record['script'] not in MODELS:
            raise checkpoints.CheckpointMismatchError(
                'the checkpoints in %s were written by %s (%s); expected those of %s'
                % (folder, record['script'], os.path.basename(path), ', '.join(MODELS)))
        return record['script'], 'from %s' % path
    try:
        names = set(tf.train.load_checkpoint(ckpt_path).get_variable_to_shape_map())
    except (tf.errors.OpError, ValueError) as e:
        raise checkpoints.CheckpointMismatchError(
            'the checkpoint %s cannot be read (its .index file: %s)'
            % (ckpt_path, type(e).__name__)) from None
    for script in MODELS:
        if _variable_names(script) <= names:
            return script, 'from the checkpoint\'s variable names'
    raise checkpoints.CheckpointMismatchError(
        'the checkpoint %s holds none of the models of %s (no flags-*.json beside it, and its '
        'variables are not theirs)' % (ckpt_path, ', '.join(MODELS)))


def predict(config, paths):
    """Classifies the files (one line each), then exports when asked. Returns how many files
    failed."""
    logging.set_verbosity(logging.ERROR)  # TensorFlow's INFO and deprecation lines: ours say it
    if config.export_dir:
        checkpoints.check_folder(config.export_dir, 'export_dir')
    ckpt_path = serving.checkpoint_to_use(config.checkpoint, config.model_dir, 'model_dir',
                                          ', '.join(MODELS))
    script, found = detect_model(ckpt_path)
    step = checkpoints.step_of(ckpt_path)
    with tf.Graph().as_default():
        classifier, variables = build_classifier(script, config.invert)
        with tf.compat.v1.Session() as sess:
            serving.restore(sess, ckpt_path, variables, 'the model of %s' % script)
            print('Classifying with %s (global step %d): the model of %s (%s)%s'
                  % (ckpt_path, step, script, found,
                     {True: ', images inverted', False: ', images never inverted'}.get(
                         config.invert, '')), flush=True)
            note = _inverted_note if config.invert is None else None
            return serving.classify_and_export(sess, classifier, paths, config.export_dir,
                                               step, note)


def _inverted_note(path, result):
    """The line before a file's that says it was inverted (found a dark digit on light)."""
    if result['inverted']:
        return ('%s: a light background: inverted to MNIST\'s white digit on black '
                '(--noinvert: as it is)' % path)
    return None


def main(argv):
    paths = argv[1:]
    config = config_lib.from_flags(Config, FLAGS)
    if not paths and not config.export_dir:
        sys.exit('error: nothing to do: give image files to classify, or --export_dir (see '
                 '--help)')
    return 1 if predict(config, paths) else None


if __name__ == '__main__':
    entry.run(define_flags, main, errors=(serving.ExportError,))
