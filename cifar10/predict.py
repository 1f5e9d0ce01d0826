"""Classify your own images with the CIFAR-10 model you trained; export it for TF Serving.

    python cifar10/predict.py cat.jpg truck.png          # latest checkpoint in /tmp/cifar10_train
    python cifar10/predict.py --checkpoint_dir=/tmp/case2 horse.bmp
    python cifar10/predict.py --checkpoint=/tmp/cifar10_train/model.ckpt-50000 cat.jpg
    python cifar10/predict.py --export_dir=/tmp/cifar10_serving   # -> /tmp/cifar10_serving/<step>/
    saved_model_cli show --all --dir /tmp/cifar10_serving/50000

Each file gets one line: the three most probable classes, most probable first, with their
probabilities (class names from the data set's batches.meta.txt):

    cat.jpg: cat 0.613342, dog 0.201003, frog 0.087512

What is done to an image, so that the model sees it as it saw the test set:
  1. decoded (PNG, JPEG, BMP, GIF or WebP, any size) to 8-bit RGB: grayscale is repeated in
     the three channels, a palette is looked up, an alpha channel is dropped;
  2. the largest centred square is cut out (the aspect ratio is kept: the sides of a wide
     image, the top and bottom of a tall one, are left out) and resized to 32x32 (bilinear,
     antialiased), rounded to 8 bits: an image like a CIFAR-10 record;
  3. then as the evaluator's input (cifar10/inputs.py eval_image): the centre 24x24 crop and
     per-image standardisation.
The model is the checkpoint's moving averages of the weights, as eval.py restores them, built
with the trainer's --conv21 and --use_fp16 (from its saved flags, when not given).
--export_dir writes a SavedModel (TensorFlow Serving's layout: <export_dir>/<global step>/)
whose 'serving_default' signature takes encoded image files (a batch of strings: post a JPEG
as is) and 'predict_images' a uint8 batch [n, height, width, 3]; both return the top 3
`classes`, `class_names`, `probabilities` and `all_probabilities` (see common/serving.py).
A file that is not an image, or cannot be read: one line on stderr naming it, the other files
are still classified, exit status 1 at the end. No checkpoint, or one of another model: one
line, exit status 1.
"""

import dataclasses
import os
import sys

from absl import flags
from absl import logging
import common
common.before_tensorflow()  # oneDNN kernels, TensorFlow's log lines: common/__init__.py
import tensorflow as tf

from cifar10 import inputs
from cifar10 import model
from common import checkpoints
from common import config as config_lib
from common import data
from common import entry
from common import serving

FLAGS = flags.FLAGS

CIFAR10_SIDE = 32  # what a CIFAR-10 record holds: 32x32 RGB
TRAINERS = 'cifar10/train.py or cifar10/multi_gpu_train.py'


@dataclasses.dataclass(frozen=True)
class Config:
    """What to classify with, and what else to do: one field per flag."""
    checkpoint_dir: str = config_lib.flag(
        '/tmp/cifar10_train', 'The trainer\'s --train_dir: its latest checkpoint is used.')
    checkpoint: str = config_lib.flag(None, 'One checkpoint to use instead of the latest, e.g. '
                                            '/tmp/cifar10_train/model.ckpt-50000.')
    export_dir: str = config_lib.flag(None, 'Also write the model as a SavedModel for '
                                            'TensorFlow Serving, in <export_dir>/<global step>/.')
    sample_grid: str = config_lib.flag(
        None, 'Also draw the first 16 test images in a 4x4 grid with their predicted and true '
        'classes (wrong ones in red) into this PNG file (needs matplotlib).')
    data_dir: str = inputs.data_dir_flag()
    model: 'model.ModelFlags' = model.ModelFlags()


def define_flags():
    config_lib.define_flags(Config)


def prepare_images(images):
    """Images of any size as the evaluator prepares the test set (see the module docstring,
    steps 2 and 3). uint8 [n, height, width, 3] -> float32 [n, 24, 24, 3]."""
    record_like = tf.cast(serving.square_resized(images, CIFAR10_SIDE, pad=False), tf.uint8)
    return inputs.eval_image(record_like)


def build_classifier(class_names, use_fp16=False, conv21=False):
    """The classifier graph (common/serving.py) around model.inference. Returns the
    Classifier and the variables to restore: the moving averages, named as eval.py names
    them."""
    classifier = serving.build_classifier(
        prepare_images, lambda images: model.inference(images, use_fp16, conv21), class_names)
    return classifier, model.variables_to_restore()


def class_names_from_data(data_dir):
    """The class names in batches.meta.txt, in the data folder the trainers use (--data_dir,
    $TF_CLASSICS_DATA/cifar10 or the default; downloaded there when missing)."""
    batches_dir = data.maybe_download_and_extract_cifar10(data_dir, verify_checksum=False)
    path = os.path.join(batches_dir, 'batches.meta.txt')
    try:
        names = serving.read_class_names(path)
    except OSError as e:
        raise data.DataError('%s: cannot be read (%s); expected the 10 CIFAR-10 class names, '
                             'one a line' % (path, e.strerror)) from None
    if len(names) != model.NUM_CLASSES:
        raise data.DataError('%s: %d class names, expected %d, one a line'
                             % (path, len(names), model.NUM_CLASSES))
    return names, batches_dir


def sample_grid(sess, classifier, class_names, batches_dir, path, title):
    """Draws the first 16 test images in a 4x4 grid, each titled with its predicted class and
    probability, in green, or, when that is wrong, in red with the true class and a red frame.
    Returns how many were right."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: --sample_grid needs matplotlib: pip install -e '.[plot]'")
    images, labels = data.read_cifar10_numpy(data.cifar10_test_files(batches_dir))
    images, labels = images[:16], labels[:16]
    classes, probabilities = sess.run([classifier.classes, classifier.probabilities],
                                      {classifier.images: images})
    fig, axes = plt.subplots(4, 4, figsize=(6.4, 7))
    right = 0
    for ax, image, label, predicted, p in zip(axes.flat, images, labels, classes[:, 0],
                                              probabilities[:, 0]):
        ok = predicted == label
        right += int(ok)
        ax.imshow(image, interpolation='nearest')
        ax.set_xticks([])
        ax.set_yticks([])
        if ok:
            ax.set_title('%s %.2f' % (class_names[predicted], p), fontsize=9, color='green')
        else:
            ax.set_title('%s %.2f\n(true: %s)' % (class_names[predicted], p, class_names[label]),
                         fontsize=9, color='red')
            for spine in ax.spines.values():
                spine.set_edgecolor('red')
                spine.set_linewidth(3)
    fig.suptitle('%s: %d of 16 right' % (title, right), fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return right


def predict(config, paths, given=()):
    """Classifies the files (one line each), then exports and draws the grid when asked.
    given: the model flags given on the command line (the others are the trainer's).
    Returns how many files failed."""
    logging.set_verbosity(logging.ERROR)  # TensorFlow's INFO and deprecation lines: ours say it
    if config.export_dir:
        checkpoints.check_folder(config.export_dir, 'export_dir')
    ckpt_path = serving.checkpoint_to_use(config.checkpoint, config.checkpoint_dir,
                                          'checkpoint_dir', TRAINERS)
    where = ('--checkpoint=%s' % ckpt_path if config.checkpoint
             else '--checkpoint_dir=%s' % config.checkpoint_dir)
    config = dataclasses.replace(config, model=model.ModelFlags(**checkpoints.take_model_flags(
        os.path.dirname(ckpt_path), config.model.as_dict(), given, where)))
    class_names, batches_dir = class_names_from_data(config.data_dir)
    step = checkpoints.step_of(ckpt_path)
    with tf.Graph().as_default():
        classifier, variables = build_classifier(class_names, config.model.use_fp16,
                                                 config.model.conv21)
        with tf.compat.v1.Session() as sess:
            serving.restore(sess, ckpt_path, variables,
                            'the CIFAR-10 model (--conv21=%s --use_fp16=%s)'
                            % (config.model.conv21, config.model.use_fp16),
                            '; expected a checkpoint of %s' % TRAINERS)
            print('Classifying with %s (global step %d): the moving averages of the weights'
                  % (ckpt_path, step), flush=True)
            refused = None  # an export refused: said after the grid, which is drawn anyway
            try:
                failed = serving.classify_and_export(sess, classifier, paths,
                                                     config.export_dir, step)
            except serving.ExportError as e:
                refused = e
            if config.sample_grid:
                right = sample_grid(sess, classifier, class_names, batches_dir,
                                    config.sample_grid,
                                    'CIFAR-10 test images 1-16, %s'
                                    % os.path.basename(ckpt_path))
                print('Wrote %s (%d of the first 16 test images right)'
                      % (config.sample_grid, right), flush=True)
    if refused:
        raise refused
    return failed


def main(argv):
    paths = argv[1:]
    if not paths and not FLAGS.export_dir and not FLAGS.sample_grid:
        sys.exit('error: nothing to do: give image files to classify, --export_dir or '
                 '--sample_grid (see --help)')
    failed = predict(config_lib.from_flags(Config, FLAGS, 'cifar10'), paths,
                     config_lib.given(FLAGS, model.MODEL_FLAGS))
    return 1 if failed else None


if __name__ == '__main__':
    entry.run(define_flags, main, errors=(serving.ExportError,))
