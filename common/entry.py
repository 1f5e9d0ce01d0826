"""Every program's entry point, the same in each (scripts, tools and benchmarks):

    if __name__ == '__main__':
        entry.run(define_flags, main, 'learning_rate')

defines the program's flags, then runs its main(argv) under absl's app.run, wrapped by
main_for: one-line errors instead of tracebacks, a finished run's line, Ctrl-C. Exit
statuses, the same in every program: 0 done (and --help), 1 an error while running, 2 a bad
command line (a flag absl cannot parse or that fails its check), 130 Ctrl-C. Nothing here
reads a flag of the program, and nothing here imports TensorFlow: a tool that never loads it
(the sweep, the cluster launcher) starts as fast as before.
"""

import sys

from absl import app
from absl import flags

from common import errors as errors_lib
from common import logs

# Exit statuses (docs/changes.md) beside sys.exit('error: ...')'s 1: a bad command line; Ctrl-C.
USAGE, INTERRUPTED = 2, 130
HELP_FLAGS = ('--help', '-h', '-?', '--helpshort', '--helpfull', '--helpxml')

def main_for(main_fn, learning_rate_flag=None, errors=(), interrupted=None):
    """The absl main around main_fn(argv) (which reads the flags into its configuration and
    runs): one line on stderr and exit status 1, not a traceback, for bad data, a run folder
    that cannot be used, a checkpoint of another model or one that cannot be written, a
    diverged run (naming --<learning_rate_flag>) and the program's own `errors`; a finished
    run's one line and exit status 0; Ctrl-C says that the checkpoints in the run folder it
    trained in are kept, or prints `interrupted` and exits 0. main_fn's return value, when
    not None, is the exit status. The run folder is the one the program opened
    (checkpoints.opened_run_dir). TensorFlow's own log lines are hidden unless --tf_logs
    (common/logs.py), where the program has that flag."""
    def main(argv):
        if logs.FLAG in flags.FLAGS:
            logs.configure()  # TensorFlow's Python log lines: --tf_logs
        one_line = errors_lib.ONE_LINE + tuple(errors)
        try:
            status = main_fn(argv)
        except errors_lib.NothingToDo as e:
            print(e, flush=True)
            return
        except one_line as e:
            sys.exit('error: %s' % e)
        except errors_lib.DivergedError as e:
            from common import training  # pylint: disable=g-import-not-at-top  (loaded: it raised)
            sys.exit(training.diverged_message(e, learning_rate_flag))
        except KeyboardInterrupt:
            if interrupted:
                print(interrupted, file=sys.stderr)
                sys.exit(INTERRUPTED)
            checkpoints = sys.modules.get('common.checkpoints')
            opened = checkpoints.opened_run_dir() if checkpoints else None
            if not opened:
                print('Interrupted.', file=sys.stderr)
            else:
                print('Interrupted: the checkpoints in --%s=%s are kept; run the same command '
                      'again to resume.' % opened, file=sys.stderr)
            sys.exit(INTERRUPTED)
        if status:
            sys.exit(status)
    return main


def parse_flags(argv, parser=None):
    """absl's flag parsing (or `parser`'s), with this project's exit statuses: a bad flag is
    one line on stderr ('error: ...') and exit status 2; --help and its kin exit 0 (absl
    exits 1 after printing the help)."""
    try:
        return parser(argv) if parser else flags.FLAGS(argv)
    except flags.Error as e:
        print('error: %s (see --helpfull)' % e, file=sys.stderr)
        sys.exit(USAGE)
    except SystemExit as e:
        if e.code == 1 and any(a in HELP_FLAGS for a in argv[1:]):
            sys.exit(0)
        raise


def run(define_flags, main, learning_rate_flag=None, errors=(), interrupted=None,
        flags_parser=None):
    """Calls define_flags(), then app.run(main_for(main, learning_rate_flag, errors,
    interrupted)); flags_parser: app.run's, for a program that reads its command line its own
    way (the sweep, mlp.py's bare --grid). Flags are parsed by parse_flags."""
    define_flags()
    main = main_for(main, learning_rate_flag, errors, interrupted)
    app.run(main, flags_parser=lambda argv: parse_flags(argv, flags_parser))
