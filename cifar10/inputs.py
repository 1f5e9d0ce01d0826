"""CIFAR-10 input pipeline, queue style, as the 2016-2018 `cifar10_input.py`.

A filename queue over the binary batches feeds a FixedLengthRecordReader; training images are
shuffled by `shuffle_batch` and distorted (random 24x24 crop, left-right flip, brightness,
contrast, per-image standardisation: each image its own random draws, computed per batch);
evaluation images are centre-cropped and standardised. `distorted_inputs_dataset` is the tf.data
variant of the training input (--input_pipeline=dataset).
"""

import tensorflow as tf

from common import config as config_lib
from common import data

IMAGE_SIZE = 24
NUM_CLASSES = 10
NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN = 50000
NUM_EXAMPLES_PER_EPOCH_FOR_EVAL = 10000
# The training queue's reader threads (the original's 16 did per-image work, which now runs
# per batch), and the records each of them reads at a time.
NUM_READ_THREADS = 2
READ_RECORDS = 128


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


def random_crop_and_flip(images, size=IMAGE_SIZE):
    """Each image of the batch cropped at its own random offset to size x size, and flipped left
    to right with probability 1/2: the distribution of `tf.image.random_crop` followed by
    `random_flip_left_right` on each image, done for the whole batch in two gathers."""
    n = tf.shape(images)[0]
    height, width = images.shape[1], images.shape[2]
    offset_y = tf.random.uniform([n, 1], 0, height - size + 1, tf.int32)
    offset_x = tf.random.uniform([n, 1], 0, width - size + 1, tf.int32)
    flip = tf.random.uniform([n, 1]) < 0.5
    r = tf.range(size)
    rows = offset_y + r
    cols = tf.where(flip, offset_x + (size - 1) - r, offset_x + r)
    rows_taken = tf.gather(images, rows, axis=1, batch_dims=1)
    return tf.gather(rows_taken, cols, axis=2, batch_dims=1)


def distort_batch(images):
    """The tutorial's training distortions, each image with its own random draws, computed for
    the whole batch at once: random 24x24 crop, left-right flip, brightness (+ U[-63, 63)),
    contrast (factor U[0.2, 1.8) about each channel's mean) and per-image standardisation.
    images uint8 [n, 32, 32, 3]; returns float32 [n, 24, 24, 3]."""
    n = tf.shape(images)[0]
    x = tf.cast(random_crop_and_flip(images), tf.float32)
    x = x + tf.random.uniform([n, 1, 1, 1], -63.0, 63.0)
    mean = tf.reduce_mean(x, axis=[1, 2], keepdims=True)
    x = (x - mean) * tf.random.uniform([n, 1, 1, 1], 0.2, 1.8) + mean
    return tf.image.per_image_standardization(x)


def _check_files(filenames):
    for f in filenames:
        if not tf.io.gfile.exists(f):
            raise data.DataError('%s: file not found (expected a CIFAR-10 binary batch)' % f)


def _min_queue_examples(min_fraction_of_examples_in_queue):
    min_queue_examples = int(NUM_EXAMPLES_PER_EPOCH_FOR_TRAIN * min_fraction_of_examples_in_queue)
    print('Filling queue with %d CIFAR images before starting to train. '
          'This will take a few minutes.' % min_queue_examples, flush=True)
    return min_queue_examples


def distorted_inputs(filenames, batch_size, min_fraction_of_examples_in_queue=0.4,
                     num_threads=NUM_READ_THREADS):
    """Distorted training batches read from `filenames` (the data_batch_*.bin files).

    The original's queues: a filename queue, a FixedLengthRecordReader, a `shuffle_batch`
    holding at least min_fraction_of_examples_in_queue of the 50,000 images. Two things make
    it cheap: the reader threads read READ_RECORDS records per run (`read_up_to`) and the
    queue holds the raw uint8 images; the distortions are drawn per image as before but
    computed per batch after the queue (`distort_batch`), so that no thread does per-image work.
    Returns images float32 [batch_size, 24, 24, 3] and labels int32 [batch_size].
    """
    _check_files(filenames)
    with tf.compat.v1.name_scope('data_augmentation'):
        filename_queue = tf.compat.v1.train.string_input_producer(filenames)
        reader = tf.compat.v1.FixedLengthRecordReader(record_bytes=data.CIFAR10_RECORD_BYTES)
        _, values = reader.read_up_to(filename_queue, READ_RECORDS)
        images, labels = decode_records(values)
        min_queue_examples = _min_queue_examples(min_fraction_of_examples_in_queue)
        raw_images, label_batch = tf.compat.v1.train.shuffle_batch(
            [images, labels], batch_size=batch_size, num_threads=num_threads,
            capacity=min_queue_examples + 3 * batch_size, min_after_dequeue=min_queue_examples,
            enqueue_many=True, shapes=[[32, 32, 3], []])
        images = distort_batch(raw_images)
        tf.compat.v1.summary.image('images', images)
        return images, label_batch


def _decode_and_distort(values):
    images, labels = decode_records(values)
    return distort_batch(images), labels


def distorted_inputs_dataset(filenames, batch_size, min_fraction_of_examples_in_queue=0.4):
    """The same batches from a tf.data pipeline (--input_pipeline=dataset): the files in a
    random order each epoch, a shuffle buffer of the queue's size, the distortions per batch
    in parallel, batches prefetched. Returns images float32 [batch_size, 24, 24, 3] and
    labels int32 [batch_size]."""
    _check_files(filenames)
    with tf.compat.v1.name_scope('data_augmentation'):
        min_queue_examples = _min_queue_examples(min_fraction_of_examples_in_queue)
        files = tf.data.Dataset.from_tensor_slices(filenames).shuffle(len(filenames)).repeat()
        dataset = (files.flat_map(lambda f: tf.data.FixedLengthRecordDataset(
                       f, data.CIFAR10_RECORD_BYTES))
                   .shuffle(min_queue_examples + 3 * batch_size)
                   .batch(batch_size, drop_remainder=True)
                   .map(_decode_and_distort, num_parallel_calls=tf.data.AUTOTUNE)
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
    with tf.compat.v1.name_scope('input'):
        filename_queue = tf.compat.v1.train.string_input_producer(filenames, shuffle=False)
        read_input = read_cifar10(filename_queue)
        float_image = eval_image(read_input.uint8image)
        read_input.label.set_shape([1])
        min_queue_examples = int(num_examples_per_epoch * 0.4)
        images, label_batch = tf.compat.v1.train.batch(
            [float_image, read_input.label], batch_size=batch_size, num_threads=1,
            capacity=min_queue_examples + 3 * batch_size)
        tf.compat.v1.summary.image('images', images)
        return images, tf.reshape(label_batch, [batch_size])
