"""The original CIFAR-10 tutorial beside the port: fetched, converted by our code, run, compared.

    python -m tools.originals fetch                  # the tensorflow==0.12.1 wheel, through pip
    python -m tools.originals convert --out DIR      # its tutorial files, runnable on TF 2.21
    python -m tools.originals run --run_dir DIR --max_steps=300 ...   # train + evaluate
    python -m tools.originals compare OURS_RUN ORIGINAL_RUN --chart compare.png
    python -m tools.originals probe ORIGINAL_RUN --out results/probes/X.json --what '...'

`fetch` downloads the pinned wheel (tensorflow 0.12.1, CPython 3.5, manylinux1_x86_64; its size
and sha256 are checked) into a cache folder ($TF_CLASSICS_CACHE, else ~/.cache/tf-classics;
the wheel goes to its originals/ folder) and reads the tutorial's files out of it (a wheel is a
zip: nothing is installed). `convert` applies CONVERSION: named steps, each documented below,
with TensorFlow's own `tf_upgrade_v2` in the middle; OPTIONS are fixes that change what the
original does, off unless named. The original text is never kept in this repository: only
this converter is.
"""

import argparse
import contextlib
import datetime
import hashlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
import zipfile

from common import data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ---------------------------------------------------------------------------------------------
# The pinned original
# ---------------------------------------------------------------------------------------------

WHEEL = dict(
    name='tensorflow-0.12.1-cp35-cp35m-manylinux1_x86_64.whl',
    requirement='tensorflow==0.12.1',
    size=43091251,
    sha256='c2e9c368f967d4b6b234b29d08737c2dfca59b556e333208ed38debb070f3f38',
    # Where the tutorial lies in the wheel (the files are dated 2016-12-25).
    folder='tensorflow-0.12.1.data/purelib/tensorflow/models/image/cifar10/',
)
ORIGINAL = 'tensorflow 0.12.1 wheel, tensorflow/models/image/cifar10 (2016-12-25)'
FILES = ['cifar10.py', 'cifar10_input.py', 'cifar10_train.py', 'cifar10_multi_gpu_train.py',
         'cifar10_eval.py', 'cifar10_input_test.py']
PIP_DOWNLOAD = ['download', '--no-deps', '--only-binary=:all:', '--python-version', '35',
                '--implementation', 'cp', '--abi', 'cp35m', '--platform', 'manylinux1_x86_64',
                WHEEL['requirement']]


class OriginalsError(Exception):
    """A missing wheel, a changed source, a bad option: reported in one line, exit status 2."""


def cache_dir():
    """$TF_CLASSICS_CACHE/originals, else ~/.cache/tf-classics/originals."""
    root = os.environ.get('TF_CLASSICS_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'tf-classics')
    return os.path.join(root, 'originals')


def _check_wheel(path):
    size = os.path.getsize(path)
    if size != WHEEL['size']:
        raise OriginalsError('%s: %d bytes, expected %d (%s; delete it to download it again)'
                             % (path, size, WHEEL['size'], WHEEL['requirement']))
    digest = data.sha256_of(path)
    if digest != WHEEL['sha256']:
        raise OriginalsError('%s: sha256 %s, expected %s (delete it to download it again)'
                             % (path, digest, WHEEL['sha256']))


def fetch_wheel(cache=None, quiet=True):
    """The path of the pinned wheel in the cache, downloaded through pip when it is not there
    yet. Raises OriginalsError (one line saying how to get it) when pip cannot get it, or when
    the file's size or sha256 is not the pinned one."""
    cache = cache or cache_dir()
    path = os.path.join(cache, WHEEL['name'])
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        cmd = [sys.executable, '-m', 'pip'] + PIP_DOWNLOAD + ['-d', cache]
        if quiet:
            cmd.insert(3, '-q')
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not os.path.exists(path):
            why = (result.stderr.strip().splitlines() or ['exit status %d' % result.returncode])
            raise OriginalsError(
                'could not download %s through pip (%s); where the package registry is '
                'reachable run: pip %s -d DIR, and copy %s into %s'
                % (WHEEL['requirement'], why[-1][:200], ' '.join(PIP_DOWNLOAD), WHEEL['name'],
                   cache))
    _check_wheel(path)
    return path


def extract(wheel, dest):
    """Writes the tutorial's FILES from the wheel (a zip) into dest; returns {file: sha256}."""
    os.makedirs(dest, exist_ok=True)
    digests = {}
    with zipfile.ZipFile(wheel) as z:
        for name in FILES:
            text = z.read(WHEEL['folder'] + name)
            with open(os.path.join(dest, name), 'wb') as f:
                f.write(text)
            digests[name] = hashlib.sha256(text).hexdigest()
    return digests


def fetch(cache=None):
    """fetch_wheel, then the original files in <cache>/original/. Returns that folder."""
    cache = cache or cache_dir()
    wheel = fetch_wheel(cache)
    dest = os.path.join(cache, 'original')
    extract(wheel, dest)
    return dest


# ---------------------------------------------------------------------------------------------
# The converter: named steps over the files' text, tf_upgrade_v2 among them
# ---------------------------------------------------------------------------------------------

class Step(object):
    """A conversion step: name, what it does and why (doc), and apply(files), which changes
    files ({file name: text}) in place."""

    def __init__(self, name, doc, apply):
        self.name, self.doc, self.apply = name, doc, apply


def _sub_all(files, pattern, repl, flags=0):
    counts = {}
    for name, text in files.items():
        new, n = re.subn(pattern, repl, text, flags=flags)
        if n:
            files[name] = new
            counts[name] = n
    return counts


def _sub_exact(files, name, old, new, count=1):
    """Replaces old by new in one file, which must hold it exactly `count` times: a source
    that differs from the pinned one stops the conversion instead of converting half of it."""
    found = files[name].count(old)
    if found != count:
        raise OriginalsError('%s: expected %d occurrence(s) of %r, found %d (not the pinned '
                             'original?)' % (name, count, old.strip()[:60], found))
    files[name] = files[name].replace(old, new)
    return {name: count}


# The 0.12 -> 1.0 renames these files need: tf_upgrade_v2 knows 1.x names only.
RENAMES_0_12 = [
    ('tf.mul(', 'tf.multiply('),
    ('tf.scalar_summary(', 'tf.summary.scalar('),
    ('tf.histogram_summary(', 'tf.summary.histogram('),
    ('tf.image_summary(', 'tf.summary.image('),
    ('tf.merge_all_summaries(', 'tf.summary.merge_all('),
    ('tf.merge_summary(', 'tf.summary.merge('),
    ('tf.train.SummaryWriter(', 'tf.summary.FileWriter('),
    ('tf.all_variables(', 'tf.global_variables('),
    ('tf.image.per_image_whitening(', 'tf.image.per_image_standardization('),
]


def _renames(files):
    counts = {}
    for old, new in RENAMES_0_12:
        for name, n in _sub_all(files, re.escape(old), new).items():
            counts[name] = counts.get(name, 0) + n
    return counts


def _concat_axis_first(files):
    # tf.concat(0, values) (0.x) -> tf.concat(axis=0, values=values) (1.0 put the axis last)
    return _sub_all(files, r'tf\.concat\((\d+),\s*([^()]+?)\)', r'tf.concat(axis=\1, values=\2)')


def _positional_logits_labels(files):
    # 0.x: sparse_softmax_cross_entropy_with_logits(logits, labels, name); 1.0 made them
    # keyword-only (tf_upgrade_v2 would read the positions as 1.x's (labels, logits)).
    return _sub_all(files, r'(softmax_cross_entropy_with_logits\(\s*)(\w+),\s*(\w+),',
                    r'\1logits=\2, labels=\3,')


def _tf_upgrade_v2(files):
    """TensorFlow's own 1.x -> 2.x converter, file by file (tensorflow.tools.compatibility)."""
    import tempfile
    from tensorflow.tools.compatibility import ast_edits
    from tensorflow.tools.compatibility import tf_upgrade_v2
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(files):
            src, dst = os.path.join(tmp, 'in_' + name), os.path.join(tmp, name)
            with open(src, 'w') as f:
                f.write(files[name])
            upgrader = ast_edits.ASTCodeUpgrader(tf_upgrade_v2.TFAPIChangeSpec())
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)  # its ast visitors
                count, _, errors = upgrader.process_file(src, dst)
            errors = [e for e in errors if ': ERROR:' in e]  # the rest are 'manual check' notes
            if errors:
                raise OriginalsError('tf_upgrade_v2 on %s: %s' % (name, errors[0]))
            with open(dst) as f:
                files[name] = f.read()
            if count:
                counts[name] = count
    return counts


def _local_imports(files):
    # The tutorial imports its siblings from the installed package; here they lie side by side.
    return _sub_all(files, r'from tensorflow\.models\.image\.cifar10 import (\w+)', r'import \1')


def _six_moves(files):
    counts = _sub_all(files, r'from six\.moves import xrange[^\n]*', 'xrange = range')
    for name, n in _sub_all(files, r'from six\.moves import urllib', 'import urllib.request').items():
        counts[name] = counts.get(name, 0) + n
    return counts


def _dimension_value(files):
    # 1.x Dimension.value; TF 2's shapes hold ints (no global disable_v2_tensorshape needed)
    return _sub_all(files, r'(\w+)\.get_shape\(\)\[(\d+)\]\.value',
                    r'tf.compat.dimension_value(\1.get_shape()[\2])')


def _summary_v1(files):
    # tf.summary.scalar/histogram/image are valid 2.x names, which tf_upgrade_v2 leaves alone;
    # 2.x summary ops in a v1 graph write nothing (silently), so they become the v1 ops.
    return _sub_all(files, r'\btf\.summary\.(scalar|histogram|image)\(', r'tf.compat.v1.summary.\1(')


def _input_test_graph_mode(files):
    name = 'cifar10_input_test.py'
    counts = _sub_exact(files, name, 'self.test_session()', 'self.session()')
    counts[name] += _sub_exact(files, name, '  tf.test.main()',
                               '  tf.compat.v1.disable_eager_execution()\n  tf.test.main()')[name]
    return counts


def _expose_constants(files):
    """Literals that our flags set become module-level names with the original's values."""
    counts = {}

    def add(c):
        for k, v in c.items():
            counts[k] = counts.get(k, 0) + v

    add(_sub_exact(files, 'cifar10_input.py', '  min_fraction_of_examples_in_queue = 0.4\n',
                   '  min_fraction_of_examples_in_queue = MIN_FRACTION_OF_EXAMPLES_IN_QUEUE\n',
                   count=2))
    add(_sub_exact(files, 'cifar10_input.py', '\nIMAGE_SIZE = 24\n',
                   '\nIMAGE_SIZE = 24\n# tools/originals.py: the literal 0.4 of distorted_inputs '
                   'and inputs\nMIN_FRACTION_OF_EXAMPLES_IN_QUEUE = 0.4\n'))
    for name in ('cifar10_train.py', 'cifar10_multi_gpu_train.py'):
        add(_sub_exact(files, name, 'step % 1000 == 0', 'step % CHECKPOINT_STEPS == 0'))
        add(_sub_exact(files, name, 'step % 100 == 0', 'step % SUMMARY_STEPS == 0'))
        add(_sub_exact(files, name, '\nFLAGS = ',
                       '\n# tools/originals.py: the literals of the training loop\n'
                       'CHECKPOINT_STEPS = 1000\nSUMMARY_STEPS = 100\n'
                       'OPTIMIZER = tf.compat.v1.train.GradientDescentOptimizer\nFLAGS = '))
    add(_sub_exact(files, 'cifar10_multi_gpu_train.py',
                   'tf.compat.v1.train.GradientDescentOptimizer(lr)', 'OPTIMIZER(lr)'))
    add(_sub_exact(files, 'cifar10_multi_gpu_train.py', "tf.device('/gpu:%d' % i)",
                   'tf.device(TOWER_DEVICE % i)'))
    add(_sub_exact(files, 'cifar10_multi_gpu_train.py', '\nFLAGS = ',
                   "\nTOWER_DEVICE = '/gpu:%d'\nFLAGS = "))
    return counts


CONVERSION = [
    Step('renames_0_12', 'The TensorFlow 0.12 -> 1.0 renames the files need: %s.'
         % ', '.join('%s -> %s' % (o.rstrip('('), n.rstrip('(')) for o, n in RENAMES_0_12),
         _renames),
    Step('concat_axis_first', '0.x tf.concat(axis, values) -> tf.concat(axis=, values=) '
         '(1.0 moved the axis last).', _concat_axis_first),
    Step('positional_logits_labels', '0.x softmax_cross_entropy_with_logits(logits, labels, ...) '
         '-> keywords (1.0 made them keyword-only; tf_upgrade_v2 would read the positions as '
         '(labels, logits)).', _positional_logits_labels),
    Step('tf_upgrade_v2', "TensorFlow's own 1.x -> 2.x converter (ships with TensorFlow): "
         'tf.X -> tf.compat.v1.X and the renamed 2.x APIs.', _tf_upgrade_v2),
    Step('summary_v1', 'tf.summary.scalar/histogram/image -> tf.compat.v1.summary.* (tf_upgrade_v2 '
         'leaves these valid 2.x names; 2.x summary ops in a v1 graph write nothing).',
         _summary_v1),
    Step('local_imports', 'from tensorflow.models.image.cifar10 import X -> import X (the '
         'converted files lie side by side).', _local_imports),
    Step('six_moves', 'six.moves xrange and urllib -> the Python 3 built-ins (no six needed).',
         _six_moves),
    Step('dimension_value', 'x.get_shape()[i].value -> tf.compat.dimension_value(...) (TF 2 '
         'shapes hold ints).', _dimension_value),
    Step('input_test_graph_mode', 'cifar10_input_test.py: self.test_session() -> '
         'self.session(); graph mode (eager off) before tf.test.main().', _input_test_graph_mode),
    Step('expose_constants', "Literals that `run`'s flags set become module-level names with "
         "the original's values: cifar10_input MIN_FRACTION_OF_EXAMPLES_IN_QUEUE (0.4), the "
         'trainers\' CHECKPOINT_STEPS (1000), SUMMARY_STEPS (100) and, in the multi-GPU '
         'trainer, OPTIMIZER (GradientDescentOptimizer) and TOWER_DEVICE (\'/gpu:%d\'; `run` '
         'sets \'/cpu:%d\' where no GPU is visible: TF 2.21 cannot soft-place a tower\'s '
         'input queues from /gpu:0 to the CPU). Nothing changes at these values.',
         _expose_constants),
]


def _variable_scope_8957(files):
    """Wraps the multi-GPU trainer's tower loop in variable_scope(get_variable_scope()), as
    upstream did in 2017: without it the towers' reuse_variables() leaks out of the loop, and
    on TF 2.21 neither the moving averages' shadow variables nor Adam's slots can be made
    (tensorflow/tensorflow#8957); the 2016 trainer needs it to run at all here."""
    name = 'cifar10_multi_gpu_train.py'
    lines = files[name].split('\n')
    starts = [i for i, l in enumerate(lines) if re.match(r'\s*for i in x?range\(FLAGS\.num_gpus\):',
                                                         l)]
    if len(starts) != 1:
        raise OriginalsError('%s: expected one tower loop, found %d' % (name, len(starts)))
    start = starts[0]
    indent = len(lines[start]) - len(lines[start].lstrip())
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or
                                len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    block = [('  ' + l) if l.strip() else l for l in lines[start:end]]
    wrapper = ' ' * indent + ('with tf.compat.v1.variable_scope('
                              'tf.compat.v1.get_variable_scope()):  # tools/originals.py: '
                              'option variable_scope_8957')
    files[name] = '\n'.join(lines[:start] + [wrapper] + block + lines[end:])
    return {name: 1}


def _resume(files):
    """Lets both trainers go on from the latest checkpoint in --train_dir, which the originals
    never do (their main() deleted the folder): after initialising, the trainer restores it and
    its loop starts at the step after the checkpoint's (the learning rate and the moving
    averages go on from the restored global step; the input queues start afresh, as ours on
    resuming). For a run longer than one sitting; `run --option=resume` on a folder with a
    train/ folder continues it."""
    changed = {}
    for name in ('cifar10_train.py', 'cifar10_multi_gpu_train.py'):
        match = re.search(r'^( *)sess\.run\(init\)\n', files[name], re.M)
        if match is None:
            raise OriginalsError('%s: expected sess.run(init) (not the pinned original?)' % name)
        pad = match.group(1)
        restore = [
            'start_step = 0  # tools/originals.py: option resume',
            'latest = tf.compat.v1.train.latest_checkpoint(FLAGS.train_dir)',
            'if latest:',
            '  saver.restore(sess, latest)',
            "  start_step = int(latest.rsplit('-', 1)[1]) + 1",
            "  print('option resume: restored %s, going on at step %d' % (latest, start_step))"]
        _sub_exact(files, name, match.group(0), match.group(0) + ''.join(
            pad + line + '\n' for line in restore))
        _sub_exact(files, name, 'for step in xrange(FLAGS.max_steps):',
                   'for step in xrange(start_step, FLAGS.max_steps):')
        changed[name] = len(restore) + 1
    return changed


OPTIONS = {
    'variable_scope_8957': Step(
        'variable_scope_8957', _variable_scope_8957.__doc__.replace('\n   ', ''),
        _variable_scope_8957),
    'resume': Step('resume', _resume.__doc__.replace('\n   ', ''), _resume),
}


def convert_files(originals, options=()):
    """Converts {file: original text}; returns ({file: converted text}, [(step, doc,
    {file: lines changed})])."""
    files = dict(originals)
    unknown = [o for o in options if o not in OPTIONS]
    if unknown:
        raise OriginalsError('unknown option %s in --option (known: %s)'
                             % (', '.join(unknown), ', '.join(OPTIONS)))
    log = []
    for step in CONVERSION + [OPTIONS[o] for o in options]:
        before = dict(files)
        step.apply(files)
        log.append((step.name, step.doc, {n: _changed_lines(before[n], files[n])
                                          for n in sorted(files) if before[n] != files[n]}))
    return files, log


def _changed_lines(old, new):
    """Lines of old replaced or deleted plus lines inserted: a step's size in one file."""
    import difflib
    matcher = difflib.SequenceMatcher(None, old.split('\n'), new.split('\n'), autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for tag, i1, i2, j1, j2 in matcher.get_opcodes()
               if tag != 'equal')


def convert(source, out, options=()):
    """Converts the original files in the folder source into the folder out (created); writes
    out/conversion.json (the steps, their changes per file, the sources' sha256). Returns that
    record."""
    originals = {}
    for name in FILES:
        path = os.path.join(source, name)
        if not os.path.exists(path):
            raise OriginalsError('%s: not found (run: python -m tools.originals fetch)' % path)
        with open(path) as f:
            originals[name] = f.read()
    files, log = convert_files(originals, options)
    os.makedirs(out, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(out, name), 'w') as f:
            f.write(text)
    record = dict(original=ORIGINAL, wheel=WHEEL['requirement'], wheel_sha256=WHEEL['sha256'],
                  sources_sha256={n: hashlib.sha256(t.encode()).hexdigest()
                                  for n, t in originals.items()},
                  options=list(options),
                  steps=[dict(name=n, doc=d, changes=c) for n, d, c in log])
    with open(os.path.join(out, 'conversion.json'), 'w') as f:
        json.dump(record, f, indent=1)
    return record


def fetch_and_convert(out, options=(), cache=None):
    """fetch(), then convert() into out. Returns the conversion record."""
    return convert(fetch(cache), out, options)


# ---------------------------------------------------------------------------------------------
# run: the converted trainer and evaluator, in processes of their own
# ---------------------------------------------------------------------------------------------

TRAINERS = {'multi_gpu': 'cifar10_multi_gpu_train', 'single': 'cifar10_train'}


def exec_original(code_dir, program, constants, argv):
    """In this process: imports the converted `program` (a trainer or cifar10_eval) from
    code_dir in graph mode, sets the module-level `constants` ({'cifar10.NAME': value, ...;
    'optimizer': 'sgd' | 'adam'}), parses argv with the originals' flags and calls its
    train() or evaluate(). Its main() is not called: it would delete the folders and download
    the data."""
    import tensorflow as tf
    tf.compat.v1.disable_eager_execution()
    sys.path.insert(0, code_dir)
    module = __import__(program)
    for key, value in constants.items():
        if key == 'optimizer':
            optimizers = {'sgd': tf.compat.v1.train.GradientDescentOptimizer,
                          'adam': tf.compat.v1.train.AdamOptimizer}
            module.OPTIMIZER = optimizers[value]
            continue
        module_name, name = key.split('.')
        setattr(__import__(module_name), name, value)
    tf.compat.v1.app.flags.FLAGS([program] + list(argv))
    try:
        if program == 'cifar10_eval':
            module.evaluate()
        else:
            module.train()
    except KeyboardInterrupt:  # the tool stops the polling evaluator so: not an error
        print('%s: stopped (Ctrl-C)' % program, flush=True)


def _commands(args, code_dir):
    """The trainer's, the evaluator beside it and the final evaluation's commands."""
    constants = {'cifar10.INITIAL_LEARNING_RATE': args.initial_learning_rate,
                 'cifar10.LEARNING_RATE_DECAY_FACTOR': args.learning_rate_decay_factor,
                 'cifar10_input.MIN_FRACTION_OF_EXAMPLES_IN_QUEUE':
                     args.min_fraction_of_examples_in_queue}
    trainer = TRAINERS[args.trainer]
    constants[trainer + '.CHECKPOINT_STEPS'] = args.checkpoint_steps
    constants[trainer + '.SUMMARY_STEPS'] = args.summary_steps
    if args.trainer == 'multi_gpu':
        constants['optimizer'] = args.optimizer
        constants[trainer + '.TOWER_DEVICE'] = '/gpu:%d' if _gpus() else '/cpu:%d'
    data_dir = os.path.join(args.data_root, 'cifar10')
    train_dir, eval_dir = os.path.join(args.run_dir, 'train'), os.path.join(args.run_dir, 'eval')
    base = [sys.executable, '-m', 'tools.originals', 'exec', '--code_dir', code_dir]
    common = ['--data_dir=' + data_dir, '--batch_size=%d' % args.batch_size]
    train = base + ['--program', trainer, '--constants', json.dumps(constants, sort_keys=True),
                    '--', '--train_dir=' + train_dir, '--max_steps=%d' % args.max_steps] + common
    if args.trainer == 'multi_gpu':
        train.append('--num_gpus=1')
    evaluate = base + ['--program', 'cifar10_eval', '--', '--checkpoint_dir=' + train_dir,
                       '--eval_dir=' + eval_dir, '--num_examples=%d' % args.num_examples] + common
    poller = evaluate + ['--eval_interval_secs=%d' % args.eval_interval_secs]
    return train, poller, evaluate + ['--run_once']


def _gpus():
    """The number of GPUs nvidia-smi lists (0 without it)."""
    try:
        return len(subprocess.run(['nvidia-smi', '-L'], capture_output=True, text=True,
                                  timeout=10).stdout.strip().splitlines())
    except (OSError, subprocess.SubprocessError):
        return 0


def _default_sigint():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _resumed_record(args, train_dir, train):
    """The provenance.json of the run being resumed (--option=resume), checked: the same
    trainer command (train: this run's) as before, and a checkpoint to go on from. Returns
    (that record, the checkpoint)."""
    from common import checkpoints
    path = os.path.join(args.run_dir, 'provenance.json')
    try:
        with open(path) as f:
            earlier = json.load(f)
    except (OSError, ValueError) as e:
        raise OriginalsError('%s: cannot resume without it (%s)' % (path, e))
    try:
        latest = checkpoints.latest(train_dir)
    except checkpoints.RunDirError as e:
        raise OriginalsError(str(e))
    if latest is None:
        raise OriginalsError('%s: no checkpoint to resume from: give a new --run_dir' % train_dir)
    before = (earlier.get('commands') or [[]])[0]
    if before[1:] != train[1:]:  # the same but for the Python
        raise OriginalsError('%s: the run there had other settings (its trainer: %s); resume '
                             'it with the same flags' % (args.run_dir, ' '.join(before[4:])))
    earlier.pop('finished', None)
    return earlier, latest


def run(args):
    """Converts the original into <run_dir>/code, writes <run_dir>/provenance.json, trains
    with the evaluator beside it (every --eval_interval_secs, as in the report), stops the
    evaluator, evaluates the last checkpoint once. Logs: log.txt, eval_log.txt."""
    from common import provenance
    if args.trainer == 'multi_gpu' and 'variable_scope_8957' not in args.option:
        raise OriginalsError('--trainer=multi_gpu needs --option=variable_scope_8957: the 2016 '
                             'multi-GPU trainer cannot make its moving averages nor Adam\'s '
                             'slots on TF 2.21 (tensorflow/tensorflow#8957)')
    if args.optimizer != 'sgd' and args.trainer != 'multi_gpu':
        raise OriginalsError('--optimizer=%s: only --trainer=multi_gpu has it' % args.optimizer)
    train_dir = os.path.join(args.run_dir, 'train')
    resuming = os.path.exists(train_dir)
    if resuming and 'resume' not in args.option:
        raise OriginalsError('%s: has a train/ folder already (the originals do not resume): '
                             'give a new --run_dir, or --option=resume to go on from its latest '
                             'checkpoint' % args.run_dir)
    batches = os.path.join(args.data_root, 'cifar10', 'cifar-10-batches-bin', 'test_batch.bin')
    if not os.path.exists(batches):
        raise OriginalsError('%s: not found (--data_root: expected cifar10/cifar-10-batches-bin '
                             'under it)' % batches)
    code_dir = os.path.join(args.run_dir, 'code')
    train, poller_cmd, final = _commands(args, code_dir)
    earlier, resumed_from = _resumed_record(args, train_dir, train) if resuming else (None, None)
    conversion = fetch_and_convert(code_dir, args.option, args.cache_dir)
    record = dict(
        what='the original CIFAR-10 tutorial, converted by tools/originals.py',
        original=ORIGINAL, wheel=WHEEL['requirement'], wheel_sha256=WHEEL['sha256'],
        converter_steps=[s['name'] for s in conversion['steps']], options=list(args.option),
        commands=[train, poller_cmd, final],
        tool_command=[sys.executable, '-m', 'tools.originals'] + sys.argv[1:],
        started=datetime.datetime.now().isoformat(timespec='seconds'),
        **provenance.run_facts(args.data_root))
    if earlier is not None:  # the first part's record, with each later part's facts
        part = dict(record, resumed_from=resumed_from)
        record = dict(earlier, parts=earlier.get('parts', []) + [
            {k: part[k] for k in ('started', 'resumed_from', 'tool_command', 'options',
                                  'converter_steps', 'git_commit', 'git_dirty', 'hardware',
                                  'tensorflow', 'env')}])
    with open(os.path.join(args.run_dir, 'provenance.json'), 'w') as f:
        json.dump(record, f, indent=1)
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=REPO)
    env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
    start = time.time()
    with open(os.path.join(args.run_dir, 'log.txt'), 'a') as log, \
            open(os.path.join(args.run_dir, 'eval_log.txt'), 'a') as eval_log:
        poller = subprocess.Popen(poller_cmd, cwd=REPO, stdout=eval_log,
                                  stderr=subprocess.STDOUT, env=env, preexec_fn=_default_sigint)
        try:
            log.write('$ %s\n' % ' '.join(train))
            log.flush()
            rc = subprocess.call(train, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            poller.send_signal(signal.SIGINT)  # one writer of eval/ at a time
            try:
                poller.wait(timeout=60)
            except subprocess.TimeoutExpired:
                poller.kill()
        if rc != 0:
            raise OriginalsError('the original trainer exited with status %d (see %s)'
                                 % (rc, log.name))
        log.write('$ %s\n' % ' '.join(final))
        log.flush()
        rc = subprocess.call(final, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
        if rc != 0:
            raise OriginalsError('the original evaluator exited with status %d (see %s)'
                                 % (rc, log.name))
    record['wall_seconds'] = round(time.time() - start, 1)  # this part's (parts: their starts)
    record['finished'] = datetime.datetime.now().isoformat(timespec='seconds')
    with open(os.path.join(args.run_dir, 'provenance.json'), 'w') as f:
        json.dump(record, f, indent=1)
    return record


# ---------------------------------------------------------------------------------------------
# compare: our curve against the original's
# ---------------------------------------------------------------------------------------------

PRECISION = 'precision @ 1'


def load_curve(path):
    """[(step, precision @ 1)] of a run folder (its eval/ event files: a tools.report or a
    tools.originals run) or of a JSON file (a result.json or a probe: curves['precision @ 1']).
    A tools.originals folder's steps are moved by +1: the original names a checkpoint after
    its loop index, one less than the number of updates (our global step)."""
    if os.path.isdir(path):
        from tools import report
        points = report.read_scalars(os.path.join(path, 'eval'), 'Precision @ 1')
        if not points:
            raise OriginalsError('%s: no Precision @ 1 in the event files of its eval/ folder'
                                 % path)
        offset = 1 if os.path.exists(os.path.join(path, 'provenance.json')) else 0
        curve = {}
        for step, value in points:
            curve[step + offset] = float(value)  # a step evaluated twice: the last one
        return sorted(curve.items())
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as e:
        raise OriginalsError('%s: not a run folder nor a readable JSON file (%s)' % (path, e))
    points = record.get('curves', {}).get(PRECISION)
    if not points:
        raise OriginalsError('%s: no curves[%r] in it' % (path, PRECISION))
    return sorted({int(s): float(v) for s, v in points}.items())


def _at(curve, step):
    """(value, exact) of curve at step: the point itself, else linear interpolation between
    its neighbours; (None, False) outside the curve."""
    steps = [s for s, _ in curve]
    if step in steps:
        return curve[steps.index(step)][1], True
    for (s0, v0), (s1, v1) in zip(curve, curve[1:]):
        if s0 < step < s1:
            return v0 + (v1 - v0) * (step - s0) / (s1 - s0), False
    return None, False


def compare_curves(ours, original):
    """[(step, ours at that step, exact?, original, ours - original)] at each of the original's
    evaluations."""
    rows = []
    for step, value in original:
        mine, exact = _at(ours, step)
        rows.append((step, mine, exact, value, None if mine is None else mine - value))
    return rows


def compare(args, out=None):
    """Prints compare_curves' rows (and a summary line) to out (stdout); draws both curves
    into args.chart when given. Returns the rows."""
    out = out or sys.stdout
    ours, original = load_curve(args.ours), load_curve(args.original)
    rows = compare_curves(ours, original)
    out.write('%8s  %8s  %8s  %8s\n' % ('step', 'ours', 'original', 'ours-orig'))
    for step, mine, exact, value, diff in rows:
        out.write('%8d  %8s  %8.4f  %8s\n' % (
            step, '—' if mine is None else '%.4f%s' % (mine, '' if exact else '~'), value,
            '—' if diff is None else '%+.4f' % diff))
    diffs = [abs(r[4]) for r in rows if r[4] is not None]
    out.write('%d evaluations of the original, %d within our curve; largest |difference| %s '
              '(~: ours interpolated between its evaluations)\n'
              % (len(rows), len(diffs), '%.4f' % max(diffs) if diffs else '—'))
    if args.chart:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.plot(*zip(*ours), label='ours: %s' % args.ours, marker='.')
        ax.plot(*zip(*original), label='original: %s' % args.original, marker='.')
        ax.set_xlabel('step')
        ax.set_ylabel('precision @ 1')
        ax.legend(fontsize='x-small')
        fig.tight_layout()
        fig.savefig(args.chart)
        plt.close(fig)
        out.write('chart: %s\n' % args.chart)
    return rows


def _loss_tag(run_dir):
    """The train folder's total-loss tag. TF 1.0's tf.summary.scalar prefixes the name scope
    and uniquifies names, which 0.12's tf.scalar_summary did not: the 2016 trainer's
    'total_loss' is written as 'tower_0/total_loss_1_1' here."""
    from tensorboard.backend.event_processing import event_accumulator
    acc = event_accumulator.EventAccumulator(os.path.join(run_dir, 'train'),
                                             size_guidance={'scalars': 1})
    acc.Reload()
    tags = [t for t in acc.Tags()['scalars'] if re.search(r'(^|/)total_loss(_\d+)*$', t)]
    return sorted(tags)[-1] if tags else 'total_loss'


def probe(run_dir, out, what, reference_for=None, compare_with=None):
    """Writes the probe JSON `out` from a finished tools.originals run folder: its
    provenance.json (the original, the converter's steps and options, the commands, machine,
    versions, commit, data root, environment) plus its curves read from the event files:
    precision @ 1 (steps +1, as load_curve) and the train loss (the last tower's total loss,
    every --summary_steps, steps +1). reference_for: the report's experiment whose chart draws
    these points (tools/report.py load_reference_curves), with a label naming the original.
    compare_with: our result.json (or run folder): compare_curves' rows against it are kept
    in the probe, under `compared_with`."""
    from tools import report
    if reference_for is not None and reference_for not in report.BY_NAME:
        raise OriginalsError('--reference_for=%s: expected one of the report\'s experiments '
                             '(%s)' % (reference_for, ', '.join(report.BY_NAME)))
    path = os.path.join(run_dir, 'provenance.json')
    if not os.path.exists(path):
        raise OriginalsError('%s: not found (not a tools.originals run folder)' % path)
    with open(path) as f:
        record = json.load(f)
    if 'finished' not in record:
        raise OriginalsError('%s: the run has not finished' % run_dir)
    loss = report.read_scalars(os.path.join(run_dir, 'train'), _loss_tag(run_dir))
    record.update(what=what, curves={
        PRECISION: [[s, round(v, 6)] for s, v in load_curve(run_dir)],
        'train loss': [[s + 1, round(float(v), 6)] for s, v in loss]})
    if reference_for is not None:
        record.update(reference_for=reference_for,
                      label='the original code (%s)' % record.get('wheel', 'its files'))
    if compare_with is not None:
        rows = compare_curves(load_curve(compare_with), record['curves'][PRECISION])
        diffs = [r[4] for r in rows if r[4] is not None]
        record['compared_with'] = {
            'ours': os.path.relpath(os.path.abspath(compare_with), REPO),
            'command': 'python -m tools.originals compare %s <this probe>' % compare_with,
            'rows': [{'step': step, 'ours': mine and round(mine, 6), 'ours_interpolated':
                      not exact, 'original': value, 'ours_minus_original': d and round(d, 6)}
                     for step, mine, exact, value, d in rows],
            'largest_difference': round(max(diffs, key=abs), 6) if diffs else None}
    with open(out, 'w') as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write('\n')
    return record


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    """The command line, read with argparse, not absl as every other program here
    (common/entry.py): `exec` runs the original tutorial in this process, and its own
    tf.app.flags (--max_steps, --batch_size, ...) would collide with absl flags of ours."""
    parser = argparse.ArgumentParser(prog='python -m tools.originals',
                                     description=__doc__.split('\n')[0])
    parser.add_argument('--cache_dir', default=None,
                        help='where the wheel is kept (default: $TF_CLASSICS_CACHE/originals, '
                             'else ~/.cache/tf-classics/originals)')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('fetch', help='download the pinned wheel (pip), extract the tutorial files')
    p = sub.add_parser('convert', help='convert the tutorial files for TensorFlow 2.21')
    p.add_argument('--out', help='folder for the converted files (required unless --steps)')
    p.add_argument('--option', action='append', default=[], choices=sorted(OPTIONS),
                   help='a fix that changes what the original does (off unless named)')
    p.add_argument('--steps', action='store_true', help='list the steps and options and exit')
    p = sub.add_parser('run', help='train + evaluate with the converted originals')
    p.add_argument('--run_dir', required=True)
    p.add_argument('--trainer', default='multi_gpu', choices=sorted(TRAINERS))
    p.add_argument('--max_steps', type=int, default=1000000)
    p.add_argument('--batch_size', type=int, default=128)
    p.add_argument('--checkpoint_steps', type=int, default=1000)
    p.add_argument('--summary_steps', type=int, default=100)
    p.add_argument('--min_fraction_of_examples_in_queue', type=float, default=0.4)
    p.add_argument('--optimizer', default='sgd', choices=['sgd', 'adam'])
    p.add_argument('--initial_learning_rate', type=float, default=0.1)
    p.add_argument('--learning_rate_decay_factor', type=float, default=0.1)
    p.add_argument('--eval_interval_secs', type=int, default=27)
    p.add_argument('--num_examples', type=int, default=10000)
    p.add_argument('--option', action='append', default=[], choices=sorted(OPTIONS))
    p.add_argument('--data_root', default=None,
                   help='the data folder (default: $TF_CLASSICS_DATA, as our scripts)')
    p = sub.add_parser('compare', help="our precision curve against the original's")
    p.add_argument('ours', help='our run folder, or a result.json')
    p.add_argument('original', help='a tools.originals run folder, or a probe JSON')
    p.add_argument('--chart', default=None, help='PNG of both curves')
    p = sub.add_parser('probe', help='a finished run folder -> a probe JSON (results/probes/)')
    p.add_argument('run_dir')
    p.add_argument('--out', required=True)
    p.add_argument('--what', required=True, help='one sentence: what was run, and why')
    p.add_argument('--reference_for', default=None,
                   help="the report's experiment whose chart draws these points (e.g. case2)")
    p.add_argument('--compare_with', default=None,
                   help='our result.json or run folder: the differences at each evaluation '
                        'are kept in the probe')
    p = sub.add_parser('exec', help=argparse.SUPPRESS)  # run's child processes
    p.add_argument('--code_dir', required=True)
    p.add_argument('--program', required=True)
    p.add_argument('--constants', default='{}')
    p.add_argument('argv', nargs='*')
    return parser.parse_args(argv)


def main(argv):
    try:
        args = parse_args(argv)
        if args.command == 'fetch':
            dest = fetch(args.cache_dir)
            print('%s (sha256 %s) in %s; the tutorial files in %s'
                  % (WHEEL['name'], WHEEL['sha256'][:12], args.cache_dir or cache_dir(), dest))
        elif args.command == 'convert':
            if args.steps:
                for step in CONVERSION:
                    print('%-26s %s' % (step.name, step.doc))
                for name, step in sorted(OPTIONS.items()):
                    print('option %-19s %s' % (name, step.doc))
                return 0
            if not args.out:
                raise OriginalsError('convert: --out is required (the folder for the '
                                     'converted files)')
            record = fetch_and_convert(args.out, args.option, args.cache_dir)
            for step in record['steps']:
                print('%-26s %s' % (step['name'], ', '.join(
                    '%s %d' % kv for kv in sorted(step['changes'].items())) or 'no change'))
            print('converted into %s (lines changed per file above; conversion.json)' % args.out)
        elif args.command == 'run':
            args.data_root = args.data_root or data.data_root()
            os.makedirs(args.run_dir, exist_ok=True)
            record = run(args)
            step, value = load_curve(args.run_dir)[-1]
            print('finished in %.0f s: precision @ 1 = %.4f at step %d (the last checkpoint); '
                  '%s (tensorboard --logdir %s)'
                  % (record['wall_seconds'], value, step, args.run_dir, args.run_dir))
        elif args.command == 'compare':
            compare(args)
        elif args.command == 'probe':
            probe(args.run_dir, args.out, args.what, args.reference_for, args.compare_with)
            print('written: %s' % args.out)
        elif args.command == 'exec':
            exec_original(args.code_dir, args.program, json.loads(args.constants), args.argv)
    except OriginalsError as e:
        print('tools.originals: error: %s' % e, file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    import common  # pylint: disable=g-import-not-at-top
    common.before_tensorflow()  # compare and probe read event files: TensorFlow's lines hidden
    sys.exit(main(sys.argv[1:]))
