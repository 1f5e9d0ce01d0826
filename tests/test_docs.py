"""The docs say only what the code does: every flag a command in README.md or docs/*.md passes
to one of the project's programs is a flag that program defines, and every relative link in
README.md, docs/*.md and results/*.md leads to a file that exists.

A program's flags are read from its own help (absl programs: --helpfull; argparse: --help), each
program run once, a few at a time."""

import concurrent.futures
import functools
import glob
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND_DOCS = ['README.md'] + sorted(glob.glob(os.path.join(REPO, 'docs', '*.md')))
LINK_DOCS = COMMAND_DOCS + sorted(glob.glob(os.path.join(REPO, 'results', '*.md')))

# Every program of the project is absl (common/entry.py): its flags are in --helpfull; but
# tools.originals (argparse, --help): its `exec` runs the original tutorial in its own process,
# whose tf.app.flags (--max_steps, --batch_size, ...) would collide with absl flags of ours.
ARGPARSE = {'tools.originals'}
# run_all.sh hands every option but these to tools.report.
RUN_ALL_OWN = {'test', 'help'}

# A call of one of our programs: python / python3 / .venv/bin/python, then a script or -m module.
CALL = re.compile(r'(?:^|(?<=[\s`$(;&|]))(?:\S*/)?python3?\s+(?:-m\s+([\w.]+)|([\w./-]+\.py))(?=\s|$)'
                  r'|(?:^|(?<=[\s`$(;&|]))\./run_all\.sh(?=\s|$)')
FLAG = re.compile(r'(?<!\S)--(?:\[no\])?([A-Za-z][\w-]*)')
# A flag's definition in a help text: '  --name: ...', '  --[no]name: ...', '  -h, --help',
# '  --ps PS'.
DEFINED = re.compile(r'^\s{1,10}(?:-\w,\s+)?--(?:\[no\])?([A-Za-z][\w-]*)', re.M)


def _path(doc):
    return doc if os.path.isabs(doc) else os.path.join(REPO, doc)


def _rel(doc):
    return os.path.relpath(_path(doc), REPO)


def code_texts(text):
    """The commands a Markdown text shows: each line of its fenced blocks (a line ending in a
    backslash joined with the next) and each inline code span (which may break across lines)."""
    out, prose, fence, pending = [], [], False, ''
    for line in text.split('\n'):
        if line.lstrip().startswith('```'):
            fence = not fence
            if pending:
                out.append(pending)
                pending = ''
            continue
        if fence:
            if line.rstrip().endswith('\\'):
                pending += line.rstrip()[:-1] + ' '
            else:
                out.append(pending + line)
                pending = ''
        else:
            prose.append(line)
    for span in re.findall(r'`([^`]+)`', '\n'.join(prose)):
        out.append(re.sub(r'\s*\\?\n\s*', ' ', span))
    return out


def _program(script=None, module=None):
    """(kind, name) of one of the project's programs, or None for anything else (pytest, venv)."""
    if script:
        return ('script', script) if os.path.isfile(os.path.join(REPO, script)) else None
    parts = module.split('.')
    base = os.path.join(REPO, *parts)
    if os.path.isfile(base + '.py') or os.path.isfile(os.path.join(base, '__main__.py')):
        return ('module', module)
    return None


def _cut(rest):
    """A command's arguments up to a comment, a pipe or the next command."""
    return re.split(r'\s#|\s&&|\s\|\|?|;|\)', rest)[0]


def commands(text):
    """(program, flag) for every flag passed to one of our programs in the text; after a lone
    '--', the flags belong to the script the tool runs (the first .py named around it)."""
    found = []
    for code in code_texts(text):
        matches = list(CALL.finditer(code))
        for i, m in enumerate(matches):
            end = matches[i + 1].start() if i + 1 < len(matches) else len(code)
            rest = _cut(code[m.end():end])
            if m.group(0).endswith('run_all.sh'):
                program = ('run_all', './run_all.sh')
            else:
                program = _program(script=m.group(2), module=m.group(1))
            if program is None:
                continue
            own, _, theirs = (' ' + rest + ' ').partition(' -- ')
            for name in FLAG.findall(own):
                found.append((program, name))
            if theirs.strip():
                scripts = re.findall(r'(?<!\S)([\w./-]+\.py)(?!\S)', theirs) or \
                    re.findall(r'(?<!\S)([\w./-]+\.py)(?!\S)', own)
                target = _program(script=scripts[0]) if scripts else None
                if target:
                    found += [(target, name) for name in FLAG.findall(theirs)]
    return found


@functools.lru_cache(maxsize=None)
def defined_flags(program):
    """The --names a program's help prints as its own flags."""
    kind, name = program
    if kind == 'run_all':
        return defined_flags(('module', 'tools.report')) | RUN_ALL_OWN
    argv = [sys.executable] + (['-m', name] if kind == 'module' else [name])
    argparse_program = kind == 'module' and name in ARGPARSE
    argv.append('--help' if argparse_program else '--helpfull')
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
               TF_CPP_MIN_LOG_LEVEL='3')
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    names = set(DEFINED.findall(proc.stdout + proc.stderr))
    subcommands = re.search(r'\{(\w+(?:,\w+)+)\}', proc.stdout) if argparse_program else None
    for sub in subcommands.group(1).split(',') if subcommands else []:  # argparse's subparsers
        sub_help = subprocess.run(argv[:-1] + [sub, '--help'], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=300)
        names |= set(DEFINED.findall(sub_help.stdout))
    assert names, '%s printed no flags (exit %d): %s' % (
        ' '.join(argv[1:]), proc.returncode, (proc.stdout + proc.stderr)[-2000:])
    assert proc.returncode == 0, '%s exited %d' % (' '.join(argv[1:]), proc.returncode)
    return frozenset(names)


def _known(name, flags):
    return name in flags or (name.startswith('no') and name[2:] in flags)


def bad_flags(docs):
    """'doc: program --flag' for every flag a doc passes that its program does not define."""
    uses = []
    for doc in docs:
        with open(_path(doc)) as f:
            uses += [(_rel(doc), program, name) for program, name in commands(f.read())]
    programs = sorted({program for _, program, _ in uses})
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(defined_flags, [p for p in programs if p[0] != 'run_all']))
    return sorted({'%s: %s --%s' % (doc, program[1], name) for doc, program, name in uses
                   if not _known(name, defined_flags(program))})


def broken_links(docs):
    """'doc: target' for every relative link in the docs that names no existing file."""
    out = []
    for doc in docs:
        with open(_path(doc)) as f:
            text = f.read()
        text = re.sub(r'```.*?```', '', text, flags=re.S)
        for target in re.findall(r'\]\(([^)\s]+)(?:\s+"[^"]*")?\)', text):
            if re.match(r'[a-z][a-z0-9+.-]*:', target) or target.startswith('#'):
                continue
            path = target.split('#')[0]
            if not os.path.exists(os.path.join(os.path.dirname(_path(doc)), path)):
                out.append('%s: %s' % (_rel(doc), target))
    return out


def test_every_documented_flag_is_defined_by_its_program():
    assert commands('x `python mnist/deep_cnn.py --max_steps=10 --nofresh` y')  # the parser sees
    assert bad_flags(COMMAND_DOCS) == []


def test_a_flag_no_program_defines_is_found(tmp_path):
    doc = tmp_path / 'bad.md'
    doc.write_text('Run `python mnist/mlp.py --no_such_flag=1`, then:\n\n```sh\n'
                   'python -m tools.sweep mnist/mlp.py --grid hidden_size=300 \\\n'
                   '    --trials 2 -- --num_steps=3 --not_an_mlp_flag\n'
                   'python -m tools.cluster --ps 1 --pss 2 -- cifar10/train.py --max_steps=2\n```\n')
    assert bad_flags([str(doc)]) == [
        '%s: mnist/mlp.py --no_such_flag' % _rel(doc),
        '%s: mnist/mlp.py --not_an_mlp_flag' % _rel(doc),
        '%s: tools.cluster --pss' % _rel(doc)]


def test_every_relative_link_resolves():
    assert broken_links(LINK_DOCS) == []


def test_a_broken_link_is_found(tmp_path):
    doc = tmp_path / 'bad.md'
    (tmp_path / 'there.md').write_text('x\n')
    doc.write_text('[ok](there.md#top) [gone](nowhere.md) ![img](charts/none.png) '
                   '[web](https://example.com/x)\n')
    assert broken_links([str(doc)]) == ['%s: nowhere.md' % _rel(doc),
                                        '%s: charts/none.png' % _rel(doc)]
