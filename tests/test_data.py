"""The data layer: where data is looked for, the readers, checksums, downloads, clear errors."""

import gzip
import os
import shutil
import struct

import numpy as np
import pytest

from common import data


def test_data_dir_precedence(monkeypatch):
    monkeypatch.setenv(data.DATA_ENV, '/somewhere')
    assert data.resolve_data_dir('cifar10', '/flag', True) == '/flag'
    assert data.resolve_data_dir('cifar10', '/default', False) == '/somewhere/cifar10'
    monkeypatch.delenv(data.DATA_ENV)
    assert data.resolve_data_dir('mnist', '/default', False) == '/default'


# --- CIFAR-10 -----------------------------------------------------------------------------------

def test_cifar10_real_files(data_root):
    batches = data.maybe_download_and_extract_cifar10(os.path.join(data_root, 'cifar10'))
    _, train_labels = data.read_cifar10_numpy(data.cifar10_train_files(batches))
    test_images, test_labels = data.read_cifar10_numpy(data.cifar10_test_files(batches))
    assert np.bincount(train_labels).tolist() == [5000] * 10
    assert np.bincount(test_labels).tolist() == [1000] * 10
    assert train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert test_labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert test_images.shape == (10000, 32, 32, 3)


def _copy_of_cifar10(data_root, tmp_path):
    """A CIFAR-10 folder in tmp_path: symlinks to the real files, to be replaced one by one."""
    src = os.path.join(data_root, 'cifar10', data.CIFAR10_DIRNAME)
    dst = tmp_path / 'cifar10' / data.CIFAR10_DIRNAME
    dst.mkdir(parents=True)
    for name in os.listdir(src):
        os.symlink(os.path.join(src, name), dst / name)
    return tmp_path / 'cifar10', dst


def test_cifar10_truncated_file(data_root, tmp_path):
    data_dir, batches = _copy_of_cifar10(data_root, tmp_path)
    real = os.path.realpath(batches / 'data_batch_3.bin')
    os.unlink(batches / 'data_batch_3.bin')
    with open(real, 'rb') as f:
        (batches / 'data_batch_3.bin').write_bytes(f.read(3073 * 10 + 100))
    with pytest.raises(data.DataError, match=r'data_batch_3\.bin: 30830 bytes, expected 30730000'):
        data.maybe_download_and_extract_cifar10(str(data_dir))


def test_cifar10_checksum_mismatch(data_root, tmp_path):
    data_dir, batches = _copy_of_cifar10(data_root, tmp_path)
    real = os.path.realpath(batches / 'test_batch.bin')
    os.unlink(batches / 'test_batch.bin')
    raw = bytearray(open(real, 'rb').read())
    raw[5000] ^= 0xFF
    (batches / 'test_batch.bin').write_bytes(bytes(raw))
    with pytest.raises(data.DataError, match=r'test_batch\.bin: checksum mismatch'):
        data.maybe_download_and_extract_cifar10(str(data_dir))


def test_cifar10_missing_and_offline(tmp_path, monkeypatch):
    monkeypatch.setattr(data, 'CIFAR10_URL', 'file:///nonexistent/cifar-10-binary.tar.gz')
    with pytest.raises(data.DataError) as err:
        data.maybe_download_and_extract_cifar10(str(tmp_path / 'nowhere'))
    message = str(err.value)
    for part in ('not found in', 'cifar-10-binary.tar.gz', '--data_dir', 'TF_CLASSICS_DATA'):
        assert part in message
    assert not (tmp_path / 'nowhere').exists()  # no folder made, no .part file left behind


# --- MNIST -------------------------------------------------------------------------------------

def test_mnist_real_files(data_root):
    mnist = data.load_mnist(os.path.join(data_root, 'mnist'))
    assert mnist.train_images.shape == (60000, 28, 28)
    assert mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_labels[0] == 5 and mnist.test_labels[0] == 7
    assert np.bincount(mnist.test_labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958,
                                                       1028, 974, 1009]
    assert abs(mnist.train_images.mean() - 33.32) < 0.01


def _write_idx(path, magic, dims, payload):
    with gzip.open(path, 'wb') as f:
        f.write(struct.pack('>I', magic) + struct.pack('>%dI' % len(dims), *dims) + payload)


def test_mnist_bad_idx(tmp_path):
    path = str(tmp_path / 'x.gz')
    _write_idx(path, 2049, [2, 28, 28], bytes(2 * 784))
    with pytest.raises(data.DataError, match='IDX magic 2049, expected 2051'):
        data._read_idx(path, data.IDX_IMAGES_MAGIC, (28, 28))
    _write_idx(path, 2051, [3, 28, 28], bytes(2 * 784))
    with pytest.raises(data.DataError, match='truncated or corrupt'):
        data._read_idx(path, data.IDX_IMAGES_MAGIC, (28, 28))
    (tmp_path / 'y.gz').write_bytes(b'not gzip at all')
    with pytest.raises(data.DataError, match='not a readable gzip file'):
        data._read_idx(str(tmp_path / 'y.gz'), data.IDX_LABELS_MAGIC, ())


def test_mnist_corrupt_file_in_data_dir(data_root, tmp_path):
    for name in data.MNIST_SHA256:
        os.symlink(os.path.join(data_root, 'mnist', name), tmp_path / name)
    os.unlink(tmp_path / 't10k-labels-idx1-ubyte.gz')
    _write_idx(str(tmp_path / 't10k-labels-idx1-ubyte.gz'), 2049, [10000], bytes(10000))
    with pytest.raises(data.DataError, match=r't10k-labels-idx1-ubyte\.gz: checksum mismatch'):
        data.load_mnist(str(tmp_path))


def test_mnist_download_is_checked_and_atomic(data_root, tmp_path, monkeypatch):
    """Downloads from a file:// 'mirror': good files land, a corrupt one is refused."""
    mirror = tmp_path / 'mirror'
    shutil.copytree(os.path.join(data_root, 'mnist'), mirror)
    monkeypatch.setattr(data, 'MNIST_URL', mirror.as_uri() + '/')
    target = tmp_path / 'mnist'
    mnist = data.load_mnist(str(target))
    assert mnist.train_labels[0] == 5
    assert sorted(os.listdir(target)) == sorted(data.MNIST_SHA256)

    (mirror / 'train-labels-idx1-ubyte.gz').write_bytes(b'garbage')
    os.unlink(target / 'train-labels-idx1-ubyte.gz')
    with pytest.raises(data.DataError, match='checksum mismatch'):
        data.load_mnist(str(target))
    assert not (target / 'train-labels-idx1-ubyte.gz').exists()
    assert not [p for p in os.listdir(target) if p.endswith('.part')]
