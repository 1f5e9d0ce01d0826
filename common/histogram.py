"""TensorFlow's HistogramSummary, bit for bit, without a binary search per value.

TensorFlow's kernel (tensorflow/core/kernels/summary_op.cc, lib/histogram/histogram.cc) casts
each value to double and finds its bucket with std::upper_bound over 1,551 bucket limits, one
value after the other on one thread: about 40 ns a value, 15-20 ms for the 392,000 weights of
mnist_with_summaries' first layer, several times the training step itself.

The limits are a geometric series: 1e-12 multiplied by 1.1 (in double, one multiplication after
the other) while below 1e20, then DBL_MAX, mirrored for the negatives around 0.0. Two limits are
at least 9 % apart, while all the floats that share their sign, exponent and first 4 mantissa
bits lie within 6.25 % of each other. So the bucket of a value is, exactly:

    cell = the value's top bits (float32: 1 + 8 + 4 bits, float64: 1 + 11 + 4 bits)
    bucket = first[cell] + (value >= split[cell])

where first[cell] is the bucket of the cell's smallest value and split[cell] the one limit that
may fall inside the cell (rounded up to the input's precision, which keeps the comparison exact;
+inf when none does). Both tables are built from the limits, and every cell is checked to hold
at most one limit, when this module is imported. That is a few passes of NumPy over the values
instead of a branchy binary search each.

The rest is TensorFlow's arithmetic, in TensorFlow's order: num, min and max (the first of equal
extremes, which matters for the sign of a zero), and sum and sum_squares accumulated in double
one value after the other from 0.0 (np.sum adds pairwise, which can differ in the last bits;
np.subtract.reduce is a plain loop, and s - (-x) is s + x). TensorFlow's threads run with the
CPU's flush-to-zero modes, so subnormal values count as zeros of their sign, and subnormal
squares and partial sums become zeros: done here explicitly, whatever the calling thread's
modes. The values go by chunks that stay in the cache. The HistogramProto is collapsed as
EncodeToProto(preserve_zero_buckets=false) does (a run of empty buckets becomes one, at the
run's last limit) and serialized by hand in field order, as protobuf's C++ serializer writes it
(a double field equal to +0.0 is left out, -0.0 is kept).

A float64 equal to DBL_MAX is the one input TensorFlow gets wrong: its kernel counts it one past
the end of its bucket vector (undefined behaviour; here, a corrupted heap and a crash). Here it
is counted in num, sum and sum_squares, and in no bucket.
"""

import struct
import sys

import numpy as np

DBL_MAX = sys.float_info.max


def default_bucket_limits():
    """TensorFlow's default bucket limits (InitDefaultBucketsInner), built the same way: the
    positive ones by repeated multiplication by 1.1 in double, not as 1.1 ** k."""
    positive = []
    v = 1.0e-12
    while v < 1.0e20:
        positive.append(v)
        v *= 1.1
    positive.append(DBL_MAX)
    negative = [-p for p in reversed(positive)]
    return np.array(negative + [0.0] + positive, dtype=np.float64)


LIMITS = default_bucket_limits()
NUM_BUCKETS = len(LIMITS)  # 1,551
ZERO_BUCKET = int(np.searchsorted(LIMITS, 0.0, side='right'))  # [0.0, 1e-12), and -0.0
# Indices past the buckets, counted apart: a float64 equal to DBL_MAX (one past TensorFlow's
# buckets), a zero or a subnormal value (ZERO_BUCKET, once flushed), a NaN or an Inf.
_PAST_END = NUM_BUCKETS
_ZERO_LIKE = NUM_BUCKETS + 1
_NON_FINITE = NUM_BUCKETS + 2
_NUM_INDICES = NUM_BUCKETS + 3
_MANTISSA_BITS = 4  # of each cell: 6.25 % wide at most, while limits are >= 9 % apart
CHUNK = 65536  # values at a time: the arrays of a chunk stay in the cache (3x faster here)


class _Format(object):
    """What histogram() needs of one floating-point format (float32 or float64): the cell
    tables, and TensorFlow's treatment of subnormal numbers.

    TensorFlow runs its kernels with the CPU's flush-to-zero and denormals-are-zero modes
    (port::ScopedFlushDenormal): a subnormal value is a zero of its sign to every comparison
    and addition, and a subnormal result is flushed to zero. Here that is done explicitly, so
    that the result is the same whether or not the calling thread has those modes on (a
    tf.numpy_function runs in one of TensorFlow's threads, which has).
    """

    def __init__(self, float_type, uint_type, exponent_bits, fraction_bits):
        self.float_type = float_type
        self.uint_type = uint_type
        self.tiny = float(np.finfo(float_type).tiny)  # the smallest normal number
        self.double = float_type == np.float64
        total_bits = 1 + exponent_bits + fraction_bits
        self.shift = total_bits - (1 + exponent_bits + _MANTISSA_BITS)
        self.exponent_mask = uint_type(((1 << exponent_bits) - 1) << fraction_bits)
        cells = np.arange(1 << (total_bits - self.shift), dtype=uint_type)
        low = cells << uint_type(self.shift)
        high = low | uint_type((1 << self.shift) - 1)
        negative = (cells >> uint_type(total_bits - self.shift - 1)) == 1
        exponent = low & self.exponent_mask
        finite = exponent != self.exponent_mask
        normal = finite & (exponent != 0)
        with np.errstate(invalid='ignore'):
            smallest = np.where(negative, high, low).view(float_type).astype(np.float64)
            largest = np.where(negative, low, high).view(float_type).astype(np.float64)
            first = np.searchsorted(LIMITS, smallest, side='right')
            last = np.searchsorted(LIMITS, largest, side='right')
        if np.any(last[normal] - first[normal] > 1):
            raise AssertionError('a %s cell holds two bucket limits' % float_type.__name__)
        split = np.full(len(cells), np.inf, dtype=float_type)
        has_split = normal & (last > first)
        split[has_split] = _round_up(LIMITS[first[has_split]], float_type)
        first[~normal & finite] = _ZERO_LIKE  # zeros and subnormals: never split
        first[~finite] = _NON_FINITE  # never split either: a NaN compares false
        split[~finite] = np.nan
        self.first = first.astype(np.intp)  # what np.bincount counts, without a copy
        self.split = split

    def bucket_indices(self, values):
        """The bucket of each value (a 1-D array of float_type), upper_bound over the limits;
        _PAST_END, _ZERO_LIKE or _NON_FINITE for the values counted apart."""
        cells = np.right_shift(values.view(self.uint_type), self.shift).astype(np.intp)
        index = np.take(self.first, cells)
        index += values >= np.take(self.split, cells)
        return index

    def flushed(self, values, zero_like):
        """values with every subnormal replaced by a zero of its sign (a copy if any);
        zero_like: how many values are zeros or subnormals."""
        if np.count_nonzero(values == 0) == zero_like:  # where DAZ is on, 1e-45 == 0 too
            return values
        bits = values.view(self.uint_type)
        subnormal = ((bits & self.exponent_mask) == 0) & ((bits << self.uint_type(1)) != 0)
        values = values.copy()
        values[subnormal] *= 0
        return values

    def sums(self, values, total, chunk_counts, buffer):
        """The sums of values and of their squares, in double, one addition at a time in
        input order as TensorFlow's, continuing from total (sum + 1j * sum_squares).
        chunk_counts: the values' bucket counts; buffer: float64, at least as long.

        np.subtract.reduce is a plain loop (np.add.reduce and np.sum add pairwise: other last
        bits), and s - (-x) is s + x, bit for bit. Where a float64 smaller than 1e-12 may make
        a subnormal square or partial sum, which TensorFlow flushes to zero, accumulate_tiny.
        """
        if self.double and (chunk_counts[ZERO_BUCKET - 1] or chunk_counts[ZERO_BUCKET]):
            return self.accumulate_tiny(values, total)
        negative = np.negative(values, out=buffer[:len(values)], dtype=np.float64)
        s = np.subtract.reduce(negative, initial=total.real)
        q = np.subtract.reduce(np.multiply(negative, values, out=negative),  # -(x * x)
                               initial=total.imag)
        return complex(s, q)

    def accumulate_tiny(self, values, total):
        """sums() of float64s, flushing each subnormal square and partial sum to zero."""
        pair = np.empty(len(values), dtype=np.complex128)
        pair.real = values
        np.multiply(pair.real, pair.real, out=pair.imag)
        squares = pair.imag
        squares[squares < self.tiny] = 0.0
        pair[0] += total  # the next step of the sequential sums
        np.add.accumulate(pair, out=pair)  # the real and imaginary parts: two sums in order
        partial = pair.real
        if np.any((np.abs(partial) < self.tiny) & (partial != 0)):
            return _accumulate_flushing(values, total, self.tiny)
        return pair[-1]

    def stored_extreme(self, values, extreme):
        """What TensorFlow's min_ (max_) holds for the values whose min (max) is `extreme`:
        its first equal, which matters for zeros (and subnormals, equal to zeros there)."""
        if abs(extreme) >= self.tiny:
            return float(extreme)
        first = values[np.argmax(np.abs(values) < self.tiny)]
        # A float32 subnormal was flushed to a zero when cast to double; a double one is
        # stored as it is (it only compares as a zero).
        return float(first) if self.double else float(first * 0)


def _accumulate_flushing(values, total, tiny):
    """accumulate_tiny() one addition at a time in Python, flushing each subnormal result to
    zero (when a partial sum is subnormal: rare)."""
    s, q = total.real, total.imag
    for v in values.tolist():
        s += v
        if s != 0 and abs(s) < tiny:
            s *= 0.0
        square = v * v
        q += square if square >= tiny else 0.0
    return complex(s, q)


def _round_up(limits, float_type):
    """The smallest float_type >= each limit (+inf above the type's range): for a value x of
    that type, x >= limit exactly when x >= the rounded-up limit."""
    with np.errstate(over='ignore'):
        rounded = limits.astype(float_type)
    below = rounded.astype(np.float64) < limits
    rounded[below] = np.nextafter(rounded[below], float_type(np.inf))
    return rounded


_FLOAT32 = _Format(np.float32, np.uint32, 8, 23)
_FLOAT64 = _Format(np.float64, np.uint64, 11, 52)


def _as_table_input(values):
    """values, flat, as float32 when that is exact (float32, float16, bfloat16, 8- and 16-bit
    integers), else as float64 (TensorFlow's static_cast<double>); and its _Format."""
    values = np.asarray(values).reshape(-1)
    dtype = values.dtype
    if dtype == np.float32:
        return values, _FLOAT32
    if dtype == np.float64:
        return values, _FLOAT64
    if dtype.kind == 'f' and dtype.itemsize <= 2 or dtype.kind in 'iu' and dtype.itemsize <= 2 \
            or dtype.name == 'bfloat16':
        return values.astype(np.float32), _FLOAT32
    if dtype.kind in 'iuf':
        return values.astype(np.float64), _FLOAT64
    raise TypeError('histogram of %s values: expected a real number type' % dtype)


class Histogram(object):
    """What TensorFlow's Histogram holds after Add()ing every value: min, max, num, sum,
    sum_squares and the count in each of the NUM_BUCKETS buckets. first_non_finite is None,
    or the first NaN or Inf in the values (TensorFlow's kernel stops there with an error)."""

    def __init__(self, min, max, num, sum, sum_squares, counts, first_non_finite=None):
        self.min, self.max, self.num = min, max, num
        self.sum, self.sum_squares = sum, sum_squares
        self.counts = counts
        self.first_non_finite = first_non_finite


def histogram(values):
    """The Histogram of values (any shape, any real dtype), as TensorFlow's kernel computes
    it."""
    x, fmt = _as_table_input(values)
    n = x.size
    counts = np.zeros(_NUM_INDICES, dtype=np.intp)
    total = 0j  # sum + 1j * sum_squares
    buffer = np.empty(min(n, CHUNK), dtype=np.float64)
    with np.errstate(over='ignore', invalid='ignore'):  # to Inf as in TensorFlow
        for start in range(0, n, CHUNK):
            chunk = x[start:start + CHUNK]
            chunk_counts = np.bincount(fmt.bucket_indices(chunk), minlength=_NUM_INDICES)
            counts += chunk_counts
            if chunk_counts[_NON_FINITE]:
                return Histogram(0.0, 0.0, 0, 0.0, 0.0, None,
                                 float(x[np.argmax(~np.isfinite(x))]))
            if chunk_counts[_ZERO_LIKE]:
                chunk = fmt.flushed(chunk, chunk_counts[_ZERO_LIKE])
            total = fmt.sums(chunk, total, chunk_counts, buffer)
    # _PAST_END: a float64 of exactly DBL_MAX, one past TensorFlow's buckets (its kernel
    # writes past the end of its vector there): in no bucket, though in num, sum and
    # sum_squares.
    counts[ZERO_BUCKET] += counts[_ZERO_LIKE]
    counts = counts[:NUM_BUCKETS].astype(np.float64)
    if n == 0:
        return Histogram(DBL_MAX, -DBL_MAX, 0, 0.0, 0.0, counts)
    low = fmt.stored_extreme(x, x.min())
    high = fmt.stored_extreme(x, x.max())
    return Histogram(low, high, n, float(total.real), float(total.imag), counts)


# --- the serialized Summary ------------------------------------------------------------------

def _varint(n):
    out = bytearray()
    while n > 0x7f:
        out.append((n & 0x7f) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _double_field(number, value):
    """A proto3 double field: absent when its bits are zero (+0.0), as protobuf writes it."""
    data = struct.pack('<d', value)
    return b'' if data == b'\0' * 8 else bytes([number << 3 | 1]) + data


def _packed_doubles(number, array):
    data = np.ascontiguousarray(array, dtype='<f8').tobytes()
    return bytes([number << 3 | 2]) + _varint(len(data)) + data if data else b''


def _length_delimited(number, data):
    return bytes([number << 3 | 2]) + _varint(len(data)) + data


def encode_histogram_proto(h):
    """The serialized HistogramProto of h, as EncodeToProto(preserve_zero_buckets=false)
    writes it: every non-empty bucket, and each run of empty buckets as one empty bucket at
    the run's last limit."""
    nonzero = h.counts > 0
    keep = nonzero | np.append(nonzero[1:], True)  # non-empty, or the end of an empty run
    return b''.join([
        _double_field(1, h.min), _double_field(2, h.max), _double_field(3, float(h.num)),
        _double_field(4, h.sum), _double_field(5, h.sum_squares),
        _packed_doubles(6, LIMITS[keep]), _packed_doubles(7, h.counts[keep])])


def encode_summary(tag, h):
    """The serialized Summary with one value: tag and the histogram h (bytes, as
    tf.raw_ops.HistogramSummary outputs)."""
    tag = tag.encode('utf-8') if isinstance(tag, str) else bytes(tag)
    value = (_length_delimited(1, tag) if tag else b'') + _length_delimited(
        5, encode_histogram_proto(h))
    return _length_delimited(1, value)


def summary_and_check(tag, values):
    """(the serialized Summary of values, 0.0), or (b'', the first NaN or Inf in values)."""
    h = histogram(values)
    if h.first_non_finite is not None:
        return b'', np.float64(h.first_non_finite)
    return encode_summary(tag, h), np.float64(0.0)
