"""Finding, downloading and checking the MNIST and CIFAR-10 files.

Where data is looked for (first match wins):
  1. the script's `--data_dir` flag, when given on the command line;
  2. `$TF_CLASSICS_DATA/mnist` or `$TF_CLASSICS_DATA/cifar10`, when that variable is set;
  3. the original tutorial's default path (e.g. /tmp/cifar10_data).

Missing files are downloaded from the official URLs, checked against the published
checksums and moved into place atomically (temporary file, verify, rename); files already
present are never downloaded again, but are checked (size, IDX magic, checksum) so that a
truncated or corrupt file is reported instead of being trained on.
"""

import contextlib
import gzip
import hashlib
import os
import shutil
import struct
import tarfile
import tempfile
import urllib.request

import numpy as np

from common.errors import DataError

DATA_ENV = 'TF_CLASSICS_DATA'

CIFAR10_URL = 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz'
CIFAR10_DIRNAME = 'cifar-10-batches-bin'
CIFAR10_RECORD_BYTES = 1 + 32 * 32 * 3
CIFAR10_RECORDS_PER_FILE = 10000
CIFAR10_SHA256 = {
    'data_batch_1.bin': 'cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5',
    'data_batch_2.bin': 'a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed',
    'data_batch_3.bin': 'bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67',
    'data_batch_4.bin': '014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48',
    'data_batch_5.bin': '755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add',
    'test_batch.bin': '8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b',
}

# The original host (yann.lecun.com) answers 403; the CVDF mirror serves the same bytes.
MNIST_URL = 'https://storage.googleapis.com/cvdf-datasets/mnist/'
MNIST_SHA256 = {
    'train-images-idx3-ubyte.gz': '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
    'train-labels-idx1-ubyte.gz': '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
    't10k-images-idx3-ubyte.gz': '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
    't10k-labels-idx1-ubyte.gz': 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


def data_root():
    """The folder holding mnist/ and cifar10/ for the report, the benchmark and the tests:
    $TF_CLASSICS_DATA, else ../shared/data beside the repository when it exists, else ./data
    in the repository (downloaded there on first use)."""
    root = os.environ.get(DATA_ENV)
    if root:
        return os.path.abspath(root)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    shared = os.path.join(repo, '..', 'shared', 'data')
    if os.path.isdir(shared):
        return os.path.abspath(shared)
    return os.path.join(repo, 'data')


def resolve_data_dir(dataset, flag_value, flag_given):
    """Returns the directory to read `dataset` ('mnist' or 'cifar10') from.

    Args:
      dataset: sub-directory name under $TF_CLASSICS_DATA.
      flag_value: the value of the script's --data_dir flag (its default when not given).
      flag_given: whether --data_dir was given on the command line.
    """
    if flag_given:
        _CHOSEN_BY[os.path.abspath(flag_value)] = '--data_dir=%s' % flag_value
        return flag_value
    root = os.environ.get(DATA_ENV)
    if root:
        _CHOSEN_BY[os.path.abspath(os.path.join(root, dataset))] = '$%s=%s' % (DATA_ENV, root)
        return os.path.join(root, dataset)
    _CHOSEN_BY[os.path.abspath(flag_value)] = 'the default --data_dir=%s' % flag_value
    return flag_value


# How each data folder resolve_data_dir returned was chosen ('--data_dir=DIR', ...): what a
# missing-data error names.
_CHOSEN_BY = {}


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


def _check_sha256(path, expected):
    actual = sha256_of(path)
    if actual != expected:
        raise DataError('%s: checksum mismatch (sha256 %s, expected %s); the file is corrupt: '
                        'delete it to download it again' % (path, actual, expected))


def _download(url, dest, missing):
    """Downloads url to a temporary file beside dest; returns the temporary file's path.
    Nothing is printed or created before the server answers; a failed download leaves no
    folder it made.

    `missing` says what was not found where (for the error when the download fails, which
    also names how the folder was chosen: resolve_data_dir).
    """
    folder = os.path.dirname(dest) or '.'
    where = _CHOSEN_BY.get(os.path.abspath(folder))
    where = '%s: ' % where if where else ''
    try:
        response = urllib.request.urlopen(url, timeout=60)
    except (OSError, ValueError) as e:
        raise DataError('%s%s, and downloading %s failed (%s); put the files there, or point '
                        '--data_dir or $%s at a folder that has them (see README, Data)'
                        % (where, missing, url, getattr(e, 'reason', e), DATA_ENV)) from None
    made = _missing_parents(folder)  # removed again if the download fails
    try:
        with response:
            try:
                os.makedirs(folder, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=folder, suffix='.part')
            except OSError as e:
                raise DataError('%s%s, and cannot download it into %s (%s)'
                                % (where, missing, folder, e)) from None
            print('Downloading %s to %s' % (url, dest), flush=True)
            try:
                with os.fdopen(fd, 'wb') as out:
                    shutil.copyfileobj(response, out, 1 << 20)
            except OSError as e:
                os.unlink(tmp)
                raise DataError('%s%s, and downloading %s failed (%s)'
                                % (where, missing, url, e)) from None
    except DataError:
        for path in made:  # deepest first
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    return tmp


def _missing_parents(folder):
    """folder and its parents that do not exist yet, deepest first."""
    missing = []
    path = os.path.abspath(folder)
    while path and not os.path.exists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return missing


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------

def cifar10_train_files(batches_dir):
    return [os.path.join(batches_dir, 'data_batch_%d.bin' % i) for i in range(1, 6)]


def cifar10_test_files(batches_dir):
    return [os.path.join(batches_dir, 'test_batch.bin')]


def _check_cifar10_file(path, verify_checksum):
    size = os.path.getsize(path)
    expected = CIFAR10_RECORD_BYTES * CIFAR10_RECORDS_PER_FILE
    if size != expected:
        raise DataError('%s: %d bytes, expected %d (%d records of %d bytes); the file is truncated '
                        'or not a CIFAR-10 binary batch' % (path, size, expected,
                                                            CIFAR10_RECORDS_PER_FILE,
                                                            CIFAR10_RECORD_BYTES))
    if verify_checksum:
        _check_sha256(path, CIFAR10_SHA256[os.path.basename(path)])


def maybe_download_and_extract_cifar10(data_dir, verify_checksum=True):
    """Makes sure data_dir/cifar-10-batches-bin holds the six official binary batches.

    Downloads and extracts the official archive when any is missing. Returns the path of
    cifar-10-batches-bin. Raises DataError on a missing (and undownloadable), truncated or
    corrupt file.
    """
    batches_dir = os.path.join(data_dir, CIFAR10_DIRNAME)
    names = sorted(CIFAR10_SHA256)
    if not all(os.path.exists(os.path.join(batches_dir, n)) for n in names):
        tmp = _download(CIFAR10_URL, os.path.join(data_dir, 'cifar-10-binary.tar.gz'),
                        'CIFAR-10 binary batches not found in %s' % batches_dir)
        staging = tempfile.mkdtemp(dir=data_dir, prefix='.extract-')
        try:
            with tarfile.open(tmp, 'r:gz') as tar:
                tar.extractall(staging, filter='data')
            extracted = os.path.join(staging, CIFAR10_DIRNAME)
            for n in names:
                _check_cifar10_file(os.path.join(extracted, n), verify_checksum=True)
            os.makedirs(batches_dir, exist_ok=True)
            for n in os.listdir(extracted):
                target = os.path.join(batches_dir, n)
                if not os.path.exists(target):
                    os.replace(os.path.join(extracted, n), target)
        except (tarfile.TarError, OSError) as e:
            raise DataError('%s: not a valid CIFAR-10 archive (%s)' % (CIFAR10_URL, e)) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            os.unlink(tmp)
    for n in names:
        _check_cifar10_file(os.path.join(batches_dir, n), verify_checksum)
    return batches_dir


def read_cifar10_numpy(filenames):
    """Reads CIFAR-10 binary batches into (images uint8 [N, 32, 32, 3], labels int32 [N])."""
    raw = np.concatenate([np.fromfile(f, dtype=np.uint8) for f in filenames])
    if raw.size % CIFAR10_RECORD_BYTES:
        raise DataError('%s: size is not a multiple of the %d-byte record'
                        % (', '.join(filenames), CIFAR10_RECORD_BYTES))
    records = raw.reshape(-1, CIFAR10_RECORD_BYTES)
    labels = records[:, 0].astype(np.int32)
    # depth-major in the file: [3, 32, 32] -> [32, 32, 3]
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------

def _read_idx(path, magic, item_shape):
    """Reads one gzip'd IDX file; checks its magic and its size against its own header."""
    try:
        with gzip.open(path, 'rb') as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError('%s: not a readable gzip file (%s); expected a gzip\'d IDX file'
                        % (path, e)) from None
    ndim = 1 + len(item_shape)
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError('%s: %d bytes, too short for an IDX header' % (path, len(data)))
    got_magic = struct.unpack('>I', data[:4])[0]
    if got_magic != magic:
        raise DataError('%s: IDX magic %d, expected %d' % (path, got_magic, magic))
    dims = struct.unpack('>%dI' % ndim, data[4:header])
    if tuple(dims[1:]) != tuple(item_shape):
        raise DataError('%s: item shape %s, expected %s' % (path, dims[1:], item_shape))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise DataError('%s: %d bytes after decompression, expected %d for %d items; the file is '
                        'truncated or corrupt' % (path, len(data), expected, dims[0]))
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


class MnistData(object):
    """The four MNIST arrays: images uint8 [N, 28, 28], labels int32 [N]."""

    def __init__(self, train_images, train_labels, test_images, test_labels):
        self.train_images = train_images
        self.train_labels = train_labels
        self.test_images = test_images
        self.test_labels = test_labels


def load_mnist(data_dir, verify_checksum=True):
    """Reads (downloading when missing) the four MNIST IDX files from data_dir."""
    paths = {}
    for name, digest in sorted(MNIST_SHA256.items()):
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            tmp = _download(MNIST_URL + name, path, 'MNIST file %s not found' % path)
            try:
                _check_sha256(tmp, digest)
            except DataError:
                os.unlink(tmp)
                raise
            os.replace(tmp, path)
        elif verify_checksum:
            _check_sha256(path, digest)
        paths[name] = path

    def images(name):
        return _read_idx(paths[name], IDX_IMAGES_MAGIC, (28, 28))

    def labels(name):
        return _read_idx(paths[name], IDX_LABELS_MAGIC, ()).astype(np.int32)

    data = MnistData(images('train-images-idx3-ubyte.gz'), labels('train-labels-idx1-ubyte.gz'),
                     images('t10k-images-idx3-ubyte.gz'), labels('t10k-labels-idx1-ubyte.gz'))
    for split in ('train', 'test'):
        n_img = len(getattr(data, split + '_images'))
        n_lab = len(getattr(data, split + '_labels'))
        if n_img != n_lab:
            raise DataError('%s: %d %s images but %d labels' % (data_dir, n_img, split, n_lab))
    return data
