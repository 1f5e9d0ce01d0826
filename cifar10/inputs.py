"""CIFAR-10 input pipeline, queue style, as the 2016-2018 `cifar10_input.py`.

A filename queue over the binary batches feeds a FixedLengthRecordReader; each training image
is distorted on its own with TensorFlow's tf.image ops (random 24x24 crop, left-right flip,
brightness, contrast, per-image standardisation) by 16 queue-runner threads, and batched by
`shuffle_batch`; evaluation images are centre-cropped and standardised. `distorted_inputs_dataset`
is the tf.data variant of the training input (--input_pipeline=dataset): the same per-image ops.
"""

import tensorflow as tf

from common import config as config_lib
from common import data

IMAGE_SIZE = 24
NUM_CLASSES = 10
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = 50000
NUM_EXAMPLES_PER_EPOCH_FOR_EVAL = 10000
NUM_PREPROCESS_THREADS = 16  # the original's threads that read, distort and enqueue images


class CIFAR10Record(object):
    """One record: `label` int32 [1], `uint8image` uint8 [32, 32, 3], plus its shape."""
    height = 32
    width = 32
    depth = 3


def data_dir_flag():
    """--data_dir: the trainers', the evaluator's and predict.py's."""
    return config_lib.flag('/tmp/cifar10_data',
                           'Path to the CIFAR-10 data directory (default: '
                           '$TF_CLASSICS_DATA/cifar10 when that is set, else /tmp/cifar10_data).')


def read_cifar10(filename_queue):
    """Reads one record from the CIFAR-10 binary files named by filename_queue.

    Each record is 1 label byte followed by 3,072 image bytes, depth-major (the red, green and
    blue 32x32 planes). Returns a CIFAR10Record with `key`, `label` (int32 [1]) and
    `uint8image` (uint8 [32, 32, 3]).
    """
    result = CIFAR10Record()
    reader = tf.compat.v1.FixedLengthRecordReader(record_bytes=data.CIFAR10_RECORD_BYTES)
    result.key, value = reader.read(filename_queue)
    images, result.label = decode_records(tf.reshape(value, [1]))
    result.uint8image = images[0]
    return result


def decode_records(values):
    """Decodes a batch of CIFAR-10 records (string [n], 3,073 bytes each) into (images uint8
    [n, 32, 32, 3], labels int32 [n])."""
    record = tf.io.decode_raw(values, tf.uint8)
    labels = tf.cast(record[:, 0], tf.int32)
    depth_major = tf.reshape(record[:, 1:], [-1, CIFAR10Record.depth, CIFAR10Record.height,
                                             CIFAR10Record.width])
    return tf.transpose(depth_major, [0, 2, 3, 1]), labels


def distort_image(uint8image):
    """The tutorial's training distortions of one image, with TensorFlow's tf.image ops in the
    original's order: random 24x24 crop, random left-right flip, random brightness
    (max_delta 63), random contrast (0.2 to 1.8), per-image standardisation.
    uint8image: uint8 [32, 32, 3]; returns float32 [24, 24, 3]."""
    reshaped_image = tf.cast(uint8image, tf.float32)
    distorted_image = tf.image.random_crop(reshaped_image, [IMAGE_SIZE, IMAGE_SIZE, 3])
    distorted_image = tf.image.random_flip_left_right(distorted_image)
    distorted_image = tf.image.random_brightness(distorted_image, max_delta=63)
    distorted_image = tf.image.random_contrast(distorted_image, lower=0.2, upper=1.8)
    float_image = tf.image.per_image_standardization(distorted_image)
    float_image.set_shape([IMAGE_SIZE, IMAGE_SIZE, 3])
    return float_image


def _check_files(filenames):
    for f in filenames:
        if not tf.io.gfile.exists(f):
            raise data.DataError('%s: file not found (expected a CIFAR-10 binary batch)' % f)


def _min_queue_examples(min_fraction_of_examples_in_queue):
    min_queue_examples = int(NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN * min_fraction_of_examples_in_queue)
    print('Filling queue with %d CIFAR images before starting to train. '
          'This will take a few minutes.' % min_queue_examples, flush=True)
    return min_queue_examples


def _generate_image_and_label_batch(image, label, min_queue_examples, batch_size, shuffle,
                                    num_threads=NUM_PREPROCESS_THREADS):
    """A queued batch of images and labels: `shuffle_batch` (holding at least
    min_queue_examples) or, without shuffle, `batch`; its threads run the ops before it.
    Adds the batch's image summary. Returns images [batch_size, ...] and labels [batch_size]."""
    if shuffle:
        images, label_batch = tf.compat.v1.train.shuffle_batch(
            [image, label], batch_size=batch_size, num_threads=num_threads,
            capacity=min_queue_examples + 3 * batch_size, min_after_dequeue=min_queue_examples)
    else:
        images, label_batch = tf.compat.v1.train.batch(
            [image, label], batch_size=batch_size, num_threads=num_threads,
            capacity=min_queue_examples + 3 * batch_size)
    tf.compat.v1.summary.image('images', images)
    return images, tf.reshape(label_batch, [batch_size])


def distorted_inputs(filenames, batch_size, min_fraction_of_examples_in_queue=0.4,
                     num_threads=NUM_PREPROCESS_THREADS):
    """Distorted training batches read from `filenames` (the data_batch_*.bin files), as the
    original: a filename queue, a FixedLengthRecordReader, each image distorted on its own
    (distort_image), `shuffle_batch` with num_threads threads holding at least
    min_fraction_of_examples_in_queue of the 50,000 images.
    Returns images float32 [batch_size, 24, 24, 3] and labels int32 [batch_size]."""
    _check_files(filenames)
    filename_queue = tf.compat.v1.train.string_input_producer(filenames)
    read_input = read_cifar10(filename_queue)
    float_image = distort_image(read_input.uint8image)
    read_input.label.set_shape([1])
    min_queue_examples = _min_queue_examples(min_fraction_of_examples_in_queue)
    return _generate_image_and_label_batch(float_image, read_input.label, min_queue_examples,
                                           batch_size, shuffle=True, num_threads=num_threads)


def _decode_and_distort(value):
    images, labels = decode_records(tf.reshape(value, [1]))
    return distort_image(images[0]), labels[0]


def distorted_inputs_dataset(filenames, batch_size, min_fraction_of_examples_in_queue=0.4):
    """The same batches from a tf.data pipeline (--input_pipeline=dataset): the files in a
    random order each epoch, each image distorted on its own (distort_image) in parallel, a
    shuffle buffer of the queue's size, batches prefetched. Returns images float32
    [batch_size, 24, 24, 3] and labels int32 [batch_size]."""
    _check_files(filenames)
    min_queue_examples = _min_queue_examples(min_fraction_of_examples_in_queue)
    files = tf.data.Dataset.from_tensor_slices(filenames).shuffle(len(filenames)).repeat()
    dataset = (files.flat_map(lambda f: tf.data.FixedLengthRecordDataset(
                   f, data.CIFAR10_RECORD_BYTES))
               .map(_decode_and_distort, num_parallel_calls=tf.data.AUTOTUNE)
               .shuffle(min_queue_examples + 3 * batch_size)
               .batch(batch_size, drop_remainder=True)
               .prefetch(tf.data.AUTOTUNE))
    images, labels = tf.compat.v1.data.make_one_shot_iterator(dataset).get_next()
    images.set_shape([batch_size, IMAGE_SIZE, IMAGE_SIZE, 3])
    labels.set_shape([batch_size])
    tf.compat.v1.summary.image('images', images)
    return images, labels


def training_batches(batches_dir, batch_size, min_fraction_of_examples_in_queue=0.4,
                     pipeline='queue'):
    """Distorted training batches of the data_batch_*.bin files in batches_dir, from the
    original's queues (pipeline='queue') or tf.data ('dataset')."""
    files = data.cifar10_train_files(batches_dir)
    if pipeline == 'dataset':
        return distorted_inputs_dataset(files, batch_size, min_fraction_of_examples_in_queue)
    return distorted_inputs(files, batch_size, min_fraction_of_examples_in_queue)


def eval_image(uint8image):
    """What the evaluator makes of a 32x32 image (predict.py too): the centre 24x24 crop,
    per-image standardisation. uint8 [32, 32, 3], or a batch [n, 32, 32, 3]; returns float32
    [24, 24, 3] (or [n, 24, 24, 3])."""
    image = tf.cast(uint8image, tf.float32)
    cropped = tf.image.resize_with_crop_or_pad(image, IMAGE_SIZE, IMAGE_SIZE)
    float_image = tf.image.per_image_standardization(cropped)
    float_image.set_shape(float_image.shape[:-3].concatenate([IMAGE_SIZE, IMAGE_SIZE, 3]))
    return float_image


def inputs(filenames, batch_size, num_examples_per_epoch=NUM_EXAMPLES_PER_EPOCH_FOR_EVAL):
    """Evaluation batches: centre 24x24 crop and standardisation, in file order.

    One reader thread keeps the records in file order, so the first N examples dequeued are
    exactly the first N records of the first file: the evaluator can count exactly
    `num_examples` of them (the original's 16 threads interleaved epochs at the wrap).
    Returns images float32 [batch_size, 24, 24, 3] and labels int32 [batch_size].
    """
    _check_files(filenames)
    filename_queue = tf.compat.v1.train.string_input_producer(filenames, shuffle=False)
    read_input = read_cifar10(filename_queue)
    float_image = eval_image(read_input.uint8image)
    read_input.label.set_shape([1])
    min_queue_examples = int(num_examples_per_epoch * 0.4)
    return _generate_image_and_label_batch(float_image, read_input.label, min_queue_examples,
                                           batch_size, shuffle=False, num_threads=1)
