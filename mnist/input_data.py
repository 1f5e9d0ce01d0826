"""MNIST batches for the MNIST scripts: the old `tensorflow.examples.tutorials.mnist.input_data`.

    mnist = read_data_sets(data_dir)               # validation_size=5000, as the original
    mnist.train.num_examples                       # 55,000 (mnist.validation: 5,000, test: 10,000)
    images, labels = mnist.train.next_batch(100)   # float32 [100, 784] in [0, 1], int32 [100]

As the original, `read_data_sets` keeps the first `validation_size` training images (5,000 by
default) aside as `mnist.validation` and trains on the rest; `validation_size=0` keeps all 60,000
in `mnist.train`. `fake_data=True` gives the original's fake sets (every image all ones, label 0: the
original's fake label is 0, one-hot [1, 0, ..., 0]).

`next_batch` walks shuffled epochs as the original DataSet did: a new permutation each epoch, and
a batch that crosses the end of an epoch takes the rest of it and the start of the next. Here the
permutation of epoch e is drawn from (seed, e), so the stream of batches depends only on the seed
and on how many examples were handed out (`position`): mnist/train_lib.py's `InputState` keeps
both in a checkpoint, and a resumed run continues the killed run's epochs where it stopped.
The trainers' shared code (run start, evaluation, checkpoints) is in mnist/train_lib.py.
"""


import numpy as np
import tensorflow as tf

from common import data
from common import config as config_lib

NUM_CLASSES = 10
IMAGE_PIXELS = 28 * 28
VALIDATION_SIZE = 5000
TRAIN_IMAGES = 60000  # in the training files, validation set included


def data_dir_flag():
    """The scripts' --data_dir (a Config field; mnist_with_summaries keeps the tutorial's)."""
    return config_lib.flag('/tmp/mnist_data',
                           'MNIST folder (default: $TF_CLASSICS_DATA/mnist when that is set).')


class DataSet(object):
    """Images float32 [N, 784] scaled to [0, 1] (or the raw uint8 [N, 28, 28] with
    scale=False and reshape=False), labels int32 [N]."""

    def __init__(self, images, labels, seed=None, fake_data=False, scale=True, reshape=True):
        self.fake_data = fake_data
        if fake_data:
            self.num_examples = 10000
        else:
            if reshape:
                images = images.reshape(images.shape[0], images.shape[1] * images.shape[2])
            if scale:
                images = images.astype(np.float32) / 255.0
            self.images = images
            self.labels = labels
            self.num_examples = len(images)
        # the seed of the epochs' permutations: a non-negative int64, kept in checkpoints
        if seed is None:
            seed = np.random.SeedSequence().entropy
        self.seed = int(seed) % (1 << 63)
        self.position = 0  # examples handed out so far
        self._epoch, self._order = None, None

    @property
    def epochs_completed(self):
        """Epochs finished, counted as the original did: once a batch reaches past one."""
        return max(self.position - 1, 0) // self.num_examples

    def seek(self, position, seed=None):
        """Continues the stream of batches (of `seed`, when given) after `position` examples."""
        if seed is not None:
            self.seed = int(seed)
            self._epoch, self._order = None, None
        self.position = int(position)

    def _epoch_order(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.num_examples)
        return self._order

    def next_batch(self, batch_size, shuffle=True):
        """The next batch_size examples: (images, labels)."""
        start = self.position
        self.position += batch_size
        if self.fake_data:
            return (np.ones([batch_size, IMAGE_PIXELS], np.float32),
                    np.zeros([batch_size], np.int32))
        parts = []
        while batch_size > 0:
            epoch, offset = divmod(start, self.num_examples)
            take = min(batch_size, self.num_examples - offset)
            order = (self._epoch_order(epoch) if shuffle
                     else np.arange(self.num_examples))
            parts.append(order[offset:offset + take])
            start += take
            batch_size -= take
        idx = np.concatenate(parts)
        return self.images[idx], self.labels[idx]


class DataSets(object):
    def __init__(self, train, validation, test):
        self.train = train
        self.validation = validation
        self.test = test


def read_data_sets(data_dir, fake_data=False, seed=None, scale=True, reshape=True,
                   validation_size=VALIDATION_SIZE):
    """The MNIST train, validation and test sets from data_dir (downloaded when missing).

    The first validation_size training images are the validation set, the rest the training
    set (the original's split: 55,000 / 5,000 / 10,000 by default).
    Raises data.DataError for missing (offline), truncated or corrupt files, ValueError for a
    validation_size outside 0..60,000.
    """
    if fake_data:
        def fake():
            return DataSet(None, None, seed, fake_data=True)
        return DataSets(fake(), fake(), fake())
    mnist = data.load_mnist(data_dir)
    if not 0 <= validation_size <= len(mnist.train_images):
        raise ValueError('Validation size should be between 0 and %d. Received: %d.'
                         % (len(mnist.train_images), validation_size))

    def dataset(images, labels):
        return DataSet(images, labels, seed, scale=scale, reshape=reshape)
    return DataSets(
        dataset(mnist.train_images[validation_size:], mnist.train_labels[validation_size:]),
        dataset(mnist.train_images[:validation_size], mnist.train_labels[:validation_size]),
        dataset(mnist.test_images, mnist.test_labels))
