"""Using a trained model: classifying image files, exporting a SavedModel for TensorFlow
Serving. What cifar10/predict.py and mnist/predict.py share.

    classifier = build_classifier(prepare, logits_fn, class_names, channels)
    ... restore the checkpoint into a Session ...
    for path, result, error in classify_files(sess, classifier, paths): ...
    export_saved_model(sess, classifier, export_dir, global_step)   # export_dir/<step>/

The classifier graph has two entry points, both batches: `image_bytes` (string [n], encoded
PNG / JPEG / BMP / GIF / WebP files, decoded in the graph, so that a client can post a file as
is) and `images` (uint8 [n, height, width, channels]). Each defaults to an empty batch, and the
model runs once on the two batches one after the other: a request through either signature
runs the model on its own images only, with one copy of the weights. Both give the same
outputs: `classes` (int32 [n, k], the top k class ids, most probable first), `class_names`
(string [n, k]), `probabilities` (float32 [n, k], theirs) and `all_probabilities` (float32
[n, number of classes], in class-id order). A classifier built with `invert` (MNIST's) also
inverts the images it picks (255 - value) before preparing them, and says which in a fifth
output, `inverted` (bool [n]).
"""

import collections
import os
import shutil
import sys
import tempfile

import tensorflow as tf

from common import checkpoints
from common import errors

TOP_K = 3
IMAGE_FORMATS = 'a PNG, JPEG, BMP, GIF or WebP image'

# The SavedModel's signatures: TensorFlow Serving answers 'serving_default' when a request
# names none.
SIGNATURE_BYTES = 'serving_default'
SIGNATURE_IMAGES = 'predict_images'

Classifier = collections.namedtuple(
    'Classifier',
    'image_bytes images classes class_names probabilities all_probabilities inverted')


def decode_rgb(contents):
    """An encoded image (string []) as uint8 RGB [h, w, 3]: grayscale replicated, palette
    looked up, an alpha channel dropped (as PIL's convert('RGB')), 16-bit scaled to 8; a GIF's
    first frame. Not an image: tf.errors.InvalidArgumentError when run."""
    return tf.io.decode_image(contents, channels=3, dtype=tf.uint8, expand_animations=False)


def inverted_where(images, invert):
    """The images (uint8 [n, h, w, c]) with those that invert picks (images -> bool [n]; None:
    none) inverted, 255 - value; and which were (bool [n])."""
    if invert is None:
        return images, tf.zeros(tf.shape(images)[:1], tf.bool)
    inverted = invert(images)
    return tf.where(inverted[:, tf.newaxis, tf.newaxis, tf.newaxis], 255 - images,
                    images), inverted


def decode_and_prepare(image_bytes, decode, prepare, invert=None):
    """Each encoded image of image_bytes (string [n]) decoded (decode: string [] -> uint8
    [h, w, channels]), inverted when invert picks it (see inverted_where) and passed through
    prepare (uint8 [1, h, w, channels] -> float32 [1, ...]), one at a time since their sizes
    differ. Returns float32 [n, ...] and which were inverted, bool [n]."""
    def one(contents):
        images, inverted = inverted_where(decode(contents)[tf.newaxis], invert)
        return prepare(images)[0], inverted[0]
    return tf.map_fn(one, image_bytes, fn_output_signature=(tf.float32, tf.bool))


def build_classifier(prepare, logits_fn, class_names, channels=3, decode=decode_rgb,
                     top_k=TOP_K, invert=None):
    """Builds the classifier graph in the default graph (see the module docstring).

    prepare: uint8 [n, h, w, channels] -> the model's input batch, float32 [n, ...].
    logits_fn: the model, input batch -> logits [n, len(class_names)]; it creates the model's
      variables, to be restored from a checkpoint.
    decode: an encoded image (string []) -> uint8 [h, w, channels].
    invert: None, or uint8 [n, h, w, channels] -> bool [n], the images to invert (255 - value)
      before prepare; the Classifier's `inverted` says which were (None without invert).
    Returns a Classifier of tensors.
    """
    image_bytes = tf.compat.v1.placeholder_with_default(
        tf.zeros([0], tf.string), [None], name='image_bytes')
    images = tf.compat.v1.placeholder_with_default(
        tf.zeros([0, 1, 1, channels], tf.uint8), [None, None, None, channels], name='images')
    from_bytes, bytes_inverted = decode_and_prepare(image_bytes, decode, prepare, invert)
    flipped, images_inverted = inverted_where(images, invert)
    prepared = tf.concat([from_bytes, prepare(flipped)], axis=0)
    logits = logits_fn(prepared)
    all_probabilities = tf.nn.softmax(logits, name='all_probabilities')
    top_k = min(top_k, len(class_names))
    probabilities, classes = tf.math.top_k(all_probabilities, top_k)
    names = tf.gather(tf.constant(list(class_names)), classes)
    inverted = None
    if invert is not None:
        inverted = tf.concat([bytes_inverted, images_inverted], axis=0, name='inverted')
    return Classifier(image_bytes, images, tf.identity(classes, name='classes'),
                      tf.identity(names, name='class_names'),
                      tf.identity(probabilities, name='probabilities'), all_probabilities,
                      inverted)


def square_resized(images, side, pad):
    """Images of any size, uint8 [n, h, w, c], made square with their aspect ratio kept and
    resized to side x side (bilinear, antialiased), rounded to 8-bit values (float32 in
    0..255). Made square: with pad, black added on both sides of the shorter dimension (nothing
    is cut off); without, the largest centred square cut out. An image already side x side
    comes out unchanged (the resize is then exact)."""
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    if pad:
        square_side = tf.maximum(height, width)
        square = tf.image.pad_to_bounding_box(images, (square_side - height) // 2,
                                              (square_side - width) // 2, square_side,
                                              square_side)
    else:
        square_side = tf.minimum(height, width)
        square = tf.image.crop_to_bounding_box(images, (height - square_side) // 2,
                                               (width - square_side) // 2, square_side,
                                               square_side)
    resized = tf.image.resize(square, [side, side], antialias=True)
    return tf.clip_by_value(tf.round(resized), 0, 255)


def read_class_names(path):
    """The class names of a text file, one a line (CIFAR-10's batches.meta.txt); blank lines
    are left out."""
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _outputs(classifier):
    """The classifier's outputs by name (the SavedModel's, and what classify_files fetches)."""
    outputs = {'classes': classifier.classes, 'class_names': classifier.class_names,
               'probabilities': classifier.probabilities,
               'all_probabilities': classifier.all_probabilities}
    if classifier.inverted is not None:
        outputs['inverted'] = classifier.inverted
    return outputs


def classify_files(sess, classifier, paths):
    """Classifies each file on its own, so that a bad file fails alone.

    Yields (path, result, error) per file: result a dict of numpy arrays (classes,
    class_names, probabilities of the top k; all_probabilities; inverted, when the
    classifier has it) and error None, or result None and error one line saying what is wrong
    with the file and what was expected.
    """
    fetches = _outputs(classifier)
    for path in paths:
        try:
            with open(path, 'rb') as f:
                contents = f.read()
        except OSError as e:
            yield path, None, '%s: cannot be read (%s); expected %s' % (
                path, e.strerror or e, IMAGE_FORMATS)
            continue
        try:
            out = sess.run(fetches, {classifier.image_bytes: [contents]})
        except tf.errors.OpError as e:
            yield path, None, '%s: not an image TensorFlow can decode (%s); expected %s' % (
                path, _decode_error(e), IMAGE_FORMATS)
            continue
        yield path, {k: v[0] for k, v in out.items()}, None


def _decode_error(error):
    """The decoder's own words from a TensorFlow error (display only)."""
    return errors.tensorflow_words(error).rstrip('. ')


def format_result(path, result, digits=6):
    """One line: the file, then the top k classes with their probabilities, most probable
    first: 'cat.png: cat 0.612345, dog 0.201234, frog 0.087012'."""
    return '%s: %s' % (path, ', '.join(
        '%s %.*f' % (name.decode() if isinstance(name, bytes) else name, digits, p)
        for name, p in zip(result['class_names'], result['probabilities'])))


class ExportError(Exception):
    """The export folder cannot take this version: reported in one line."""


def export_saved_model(sess, classifier, export_dir, version):
    """Writes the graph and the variables' values in sess as a SavedModel in TensorFlow
    Serving's layout, export_dir/<version>/ (saved_model.pb, variables/), tag 'serve', with
    two signatures: 'serving_default' (image_bytes) and 'predict_images' (images).

    The version is written in a temporary folder beside it and renamed into place, so that a
    model server watching export_dir never loads half a model. An existing version is never
    overwritten (ExportError). Returns the version's path.
    """
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise ExportError('%s already exists (TensorFlow Serving never reloads a version: '
                          'remove it, or give another --export_dir)' % final)
    outputs = _outputs(classifier)
    signatures = {
        SIGNATURE_BYTES: tf.compat.v1.saved_model.predict_signature_def(
            {'image_bytes': classifier.image_bytes}, outputs),
        SIGNATURE_IMAGES: tf.compat.v1.saved_model.predict_signature_def(
            {'images': classifier.images}, outputs),
    }
    try:
        os.makedirs(export_dir, exist_ok=True)
        staging = tempfile.mkdtemp(dir=export_dir, prefix='.tmp-%s-' % version)
    except OSError as e:
        raise ExportError('cannot write in --export_dir=%s (%s)' % (export_dir, e)) from None
    try:
        builder = tf.compat.v1.saved_model.Builder(os.path.join(staging, 'model'))
        builder.add_meta_graph_and_variables(
            sess, [tf.saved_model.SERVING], signature_def_map=signatures, clear_devices=True,
            strip_default_attrs=True)
        builder.save()
        os.rename(os.path.join(staging, 'model'), final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


# ---------------------------------------------------------------------------------------------
# The checkpoint, and the report of the files
# ---------------------------------------------------------------------------------------------

def checkpoint_to_use(checkpoint, checkpoint_dir, dir_flag, expected):
    """The checkpoint to restore: `checkpoint` (the --checkpoint flag) when given, else the
    latest in checkpoint_dir (named --<dir_flag> in errors). expected: what the folder should
    hold, for the error. Raises checkpoints.CheckpointMismatchError when there is none."""
    if checkpoint:
        if not tf.io.gfile.exists(checkpoint + '.index'):
            raise checkpoints.CheckpointMismatchError(
                '--checkpoint=%s: no such checkpoint (expected the path of a checkpoint without '
                'its .index or .data suffix, e.g. %s/model.ckpt-1000)'
                % (checkpoint, checkpoint_dir.rstrip('/')))
        return checkpoint
    checkpoints.check_folder(checkpoint_dir, dir_flag)
    latest = checkpoints.latest(checkpoint_dir, where='--%s=%s' % (dir_flag, checkpoint_dir))
    if latest is None:
        raise checkpoints.CheckpointMismatchError(
            'no checkpoint in --%s=%s (expected the model.ckpt-N files of %s)'
            % (dir_flag, checkpoint_dir, expected))
    return latest


def restore(sess, ckpt_path, variables, model_name, hint=''):
    """Restores variables (a dict: name in the checkpoint -> variable) from ckpt_path. Raises
    checkpoints.CheckpointMismatchError, in one line, for a checkpoint of another model or one
    that cannot be read."""
    checkpoints.check_checkpoint(ckpt_path, variables, model_name, hint)
    try:
        tf.compat.v1.train.Saver(variables).restore(sess, ckpt_path)
    except (tf.errors.OpError, ValueError) as e:
        problem = checkpoints.restore_problem(ckpt_path, variables) or type(e).__name__
        raise checkpoints.CheckpointMismatchError(
            'the checkpoint %s cannot be restored into %s (%s)%s'
            % (ckpt_path, model_name, problem, hint)) from None


def classify_and_export(sess, classifier, paths, export_dir, version, note=None):
    """Classifies the files (a line each, see report), then, when export_dir is given, exports
    the classifier as export_dir/<version> (export_saved_model) and says so. Returns how many
    files failed. note: see report."""
    failed = report(classify_files(sess, classifier, paths), note)
    if export_dir:
        exported = export_saved_model(sess, classifier, export_dir, version)
        print('Exported a SavedModel to %s (signatures %s, %s)'
              % (exported, SIGNATURE_BYTES, SIGNATURE_IMAGES), flush=True)
    return failed


def report(results, note=None):
    """Prints each file's line (errors on stderr, 'error: ...'), after the line note(path,
    result) gives it, if any; returns how many failed."""
    failed = 0
    for path, result, error in results:
        if error:
            print('error: %s' % error, file=sys.stderr, flush=True)
            failed += 1
            continue
        said = note(path, result) if note else None
        if said:
            print(said, flush=True)
        print(format_result(path, result), flush=True)
    return failed

