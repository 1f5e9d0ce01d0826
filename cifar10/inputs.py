"""CIFAR-10 input pipeline, queue style, as the 2016-2018 `cifar10_input.py`.

A filename queue over the binary batches feeds a FixedLengthRecordReader; training images are
distorted (random 24x24 crop, left-right flip, brightness, contrast, per-image standardisation)
and batched by `shuffle_batch`; evaluation images are centre-cropped and standardised.
"""

import tensorflow as tf

from common import data

IMAGE_SIZE = 24
NUM_CLASSES = 10
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = 50000
NUM_EXAMPLES_PER_EPOCH_FOR_EVAL = 10000
NUM_PREPROCESS_THREADS = 16


class CIFAR10Record(object):
    """One record: `label` int32 [1], `uint8image` uint8 [32, 32, 3], plus its shape."""
    height = 32
    width = 32
    depth = 3


def read_cifar10(filename_queue):
    """Reads one record from the CIFAR-10 binary files named by filename_queue.

    Each record is 1 label byte followed by 3,072 image bytes, depth-major (the red, green and
    blue 32x32 planes). Returns a CIFAR10Record with `key`, `label` (int32 [1]) and
    `uint8image` (uint8 [32, 32, 3]).
    """
    result = CIFAR10Record()
    image_bytes = result.height * result.width * result.depth
    record_bytes = 1 + image_bytes
    reader = tf.compat.v1.FixedLengthRecordReader(record_bytes=record_bytes)
    result.key, value = reader.read(filename_queue)
    record = tf.io.decode_raw(value, tf.uint8)
    result.label = tf.cast(tf.strided_slice(record, [0], [1]), tf.int32)
    depth_major = tf.reshape(tf.strided_slice(record, [1], [record_bytes]),
                             [result.depth, result.height, result.width])
    result.uint8image = tf.transpose(depth_major, [1, 2, 0])
    return result


def _generate_image_and_label_batch(image, label, min_queue_examples, batch_size, shuffle,
                                    num_threads):
    """Batches images and labels through a (shuffling) queue; images [B, H, W, 3], labels [B]."""
    if shuffle:
        images, label_batch = tf.compat.v1.train.shuffle_batch(
            [image, label], batch_size=batch_size, num_threads=num_threads,
            capacity=min_queue_examples + 3 * batch_size,
            min_after_dequeue=min_queue_examples)
    else:
        images, label_batch = tf.compat.v1.train.batch(
            [image, label], batch_size=batch_size, num_threads=num_threads,
            capacity=min_queue_examples + 3 * batch_size)
    tf.compat.v1.summary.image('images', images)
    return images, tf.reshape(label_batch, [batch_size])


def _check_files(filenames):
    for f in filenames:
        if not tf.io.gfile.exists(f):
            raise data.DataError('%s: file not found (expected a CIFAR-10 binary batch)' % f)


def distorted_inputs(filenames, batch_size, min_fraction_of_examples_in_queue=0.4,
                     num_threads=NUM_PREPROCESS_THREADS):
    """Distorted training batches read from `filenames` (the data_batch_*.bin files).

    Returns images float32 [batch_size, 24, 24, 3] and labels int32 [batch_size].
    """
    _check_files(filenames)
    with tf.compat.v1.name_scope('data_augmentation'):
        filename_queue = tf.compat.v1.train.string_input_producer(filenames)
        read_input = read_cifar10(filename_queue)
        reshaped_image = tf.cast(read_input.uint8image, tf.float32)

        distorted_image = tf.image.random_crop(reshaped_image, [IMAGE_SIZE, IMAGE_SIZE, 3])
        distorted_image = tf.image.random_flip_left_right(distorted_image)
        distorted_image = tf.image.random_brightness(distorted_image, max_delta=63)
        distorted_image = tf.image.random_contrast(distorted_image, lower=0.2, upper=1.8)
        float_image = tf.image.per_image_standardization(distorted_image)
        float_image.set_shape([IMAGE_SIZE, IMAGE_SIZE, 3])
        read_input.label.set_shape([1])

        min_queue_examples = int(NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN *
                                 min_fraction_of_examples_in_queue)
        print('Filling queue with %d CIFAR images before starting to train. '
              'This will take a few minutes.' % min_queue_examples, flush=True)
        return _generate_image_and_label_batch(float_image, read_input.label, min_queue_examples,
                                               batch_size, shuffle=True, num_threads=num_threads)


def inputs(filenames, batch_size, num_examples_per_epoch=NUM_EXAMPLES_PER_EPOCH_FOR_EVAL):
    """Evaluation batches: centre 24x24 crop and standardisation, in file order.

    One reader thread keeps the records in file order, so the first N examples dequeued are
    exactly the first N records of the first file: the evaluator can count exactly
    `num_examples` of them (the original's 16 threads interleaved epochs at the wrap).
    Returns images float32 [batch_size, 24, 24, 3] and labels int32 [batch_size].
    """
    _check_files(filenames)
    with tf.compat.v1.name_scope('input'):
        filename_queue = tf.compat.v1.train.string_input_producer(filenames, shuffle=False)
        read_input = read_cifar10(filename_queue)
        reshaped_image = tf.cast(read_input.uint8image, tf.float32)
        resized_image = tf.image.resize_with_crop_or_pad(reshaped_image, IMAGE_SIZE, IMAGE_SIZE)
        float_image = tf.image.per_image_standardization(resized_image)
        float_image.set_shape([IMAGE_SIZE, IMAGE_SIZE, 3])
        read_input.label.set_shape([1])
        min_queue_examples = int(num_examples_per_epoch * 0.4)
        return _generate_image_and_label_batch(float_image, read_input.label, min_queue_examples,
                                               batch_size, shuffle=False, num_threads=1)
