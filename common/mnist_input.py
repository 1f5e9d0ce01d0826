"""MNIST batches for the MNIST scripts, as the old `tensorflow.examples.tutorials.mnist.input_data`.

    mnist = read_data_sets(data_dir)
    images, labels = mnist.train.next_batch(100)   # float32 [100, 784] in [0, 1], int32 [100]

`next_batch` walks a shuffled permutation of the set, reshuffling at each epoch, as the original
DataSet did. `fake_data=True` gives the original's fake set (every image all ones, label 1).
"""

import sys

import numpy as np

from common import data

NUM_CLASSES = 10
IMAGE_PIXELS = 28 * 28


class DataSet(object):
    """Images float32 [N, 784] scaled to [0, 1] (or the raw uint8 [N, 28, 28] with
    scale=False and reshape=False), labels int32 [N]."""

    def __init__(self, images, labels, seed=None, fake_data=False, scale=True, reshape=True):
        self.fake_data = fake_data
        if fake_data:
            self.num_examples = 10000
        else:
            if reshape:
                images = images.reshape(images.shape[0], -1)
            if scale:
                images = images.astype(np.float32) / 255.0
            self.images = images
            self.labels = labels
            self.num_examples = len(images)
        self._rng = np.random.RandomState(seed)
        self._perm = None
        self._index = 0
        self.epochs_completed = 0

    def next_batch(self, batch_size, shuffle=True):
        """The next batch_size examples: (images, labels)."""
        if self.fake_data:
            return (np.ones([batch_size, IMAGE_PIXELS], np.float32),
                    np.ones([batch_size], np.int32))
        parts = []
        while batch_size > 0:
            if self._perm is None or self._index >= self.num_examples:
                if self._perm is not None:
                    self.epochs_completed += 1
                self._perm = (self._rng.permutation(self.num_examples) if shuffle
                              else np.arange(self.num_examples))
                self._index = 0
            take = min(batch_size, self.num_examples - self._index)
            parts.append(self._perm[self._index:self._index + take])
            self._index += take
            batch_size -= take
        idx = np.concatenate(parts)
        return self.images[idx], self.labels[idx]


class DataSets(object):
    def __init__(self, train, test):
        self.train = train
        self.test = test


def read_data_sets(data_dir, fake_data=False, seed=None, scale=True, reshape=True):
    """The MNIST train and test sets from data_dir (downloaded when missing).

    Raises data.DataError for missing (offline), truncated or corrupt files.
    """
    if fake_data:
        return DataSets(DataSet(None, None, fake_data=True), DataSet(None, None, fake_data=True))
    mnist = data.load_mnist(data_dir)
    return DataSets(DataSet(mnist.train_images, mnist.train_labels, seed, scale=scale,
                            reshape=reshape),
                    DataSet(mnist.test_images, mnist.test_labels, seed, scale=scale,
                            reshape=reshape))


def read_data_sets_for(flag_values, **kwargs):
    """read_data_sets from the script's --data_dir (or $TF_CLASSICS_DATA/mnist, or the
    default); exits with the one-line error on missing or corrupt data."""
    data_dir = data.resolve_data_dir('mnist', flag_values.data_dir,
                                     flag_values['data_dir'].present)
    try:
        return read_data_sets(data_dir, **kwargs)
    except data.DataError as e:
        sys.exit('error: %s' % e)


def evaluate(sess, correct, loss, images, labels, dataset, batch_size=1000):
    """Accuracy and mean loss over a whole DataSet, in batches.

    Args:
      correct: tensor, number of right predictions in the batch fed.
      loss: tensor, mean loss of the batch fed.
      images, labels: the placeholders to feed.
    Returns (accuracy, mean loss).
    """
    total_correct, total_loss, n = 0.0, 0.0, dataset.num_examples
    for start in range(0, n, batch_size):
        feed = {images: dataset.images[start:start + batch_size],
                labels: dataset.labels[start:start + batch_size]}
        c, l = sess.run([correct, loss], feed)
        total_correct += c
        total_loss += l * len(feed[labels])
    return total_correct / n, total_loss / n
