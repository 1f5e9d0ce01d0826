"""A script's configuration: a frozen dataclass whose fields are its flags.

    @dataclasses.dataclass(frozen=True)
    class Config:
        max_steps: int = config.flag(1000, 'Number of steps to run trainer.', lower_bound=0)
        seed: int = config.flag(None, 'Graph-level random seed.')

    config.define_flags(Config)                      # the absl flags, from the fields
    cfg = config.from_flags(Config, FLAGS)           # once, in main: a plain value
    cfg.max_steps                                    # handed down; nothing else reads FLAGS

Each field is one flag: its name, default and help text are written once, here; the default
is also the value a library user (the benchmark, a test) gets from Config(). A field whose
default is itself such a dataclass groups flags that several scripts share (the cluster
flags, the CIFAR-10 model flags). `data_dir` is resolved as common/data.py says.
"""

import dataclasses
import sys

from absl import flags

from common import data


def flag(default, help_text, enum=None, lower_bound=None, upper_bound=None):
    """A dataclass field that is also an absl flag: bool, int, float or str by the field's
    type, an enum flag with `enum` (its choices); bounds for numbers."""
    return dataclasses.field(default=default, metadata=dict(
        help=help_text, enum=enum, lower_bound=lower_bound, upper_bound=upper_bound))


_DEFINE = {bool: flags.DEFINE_boolean, int: flags.DEFINE_integer, float: flags.DEFINE_float,
           str: flags.DEFINE_string}


def _is_group(field):
    return dataclasses.is_dataclass(field.default)


def define_flags(cls):
    """Defines an absl flag for each field of cls made with `flag` (and of its groups), as
    flags of the program being run, so that its --help lists them."""
    main = dict(module_name=sys.argv[0])
    for field in dataclasses.fields(cls):
        if _is_group(field):
            define_flags(type(field.default))
            continue
        meta = field.metadata
        if 'help' not in meta:
            continue
        if field.name == 'log_dir' and 'log_dir' in flags.FLAGS:
            # the tutorials' --log_dir in place of absl.logging's own (a folder for log files,
            # which these scripts never write)
            delattr(flags.FLAGS, 'log_dir')
        if meta['enum']:
            flags.DEFINE_enum(field.name, field.default, meta['enum'], meta['help'], **main)
            continue
        bounds = {k: meta[k] for k in ('lower_bound', 'upper_bound') if meta[k] is not None}
        _DEFINE[field.type](field.name, field.default, meta['help'], **bounds, **main)


def from_flags(cls, flag_values, dataset=None):
    """cls with each field set from the parsed flag of its name (groups likewise); fields
    without a flag keep their defaults. With dataset ('mnist' or 'cifar10') a `data_dir` field
    is resolved: the flag when given, else $TF_CLASSICS_DATA/<dataset>, else its default."""
    values = {}
    for field in dataclasses.fields(cls):
        if _is_group(field):
            values[field.name] = from_flags(type(field.default), flag_values, dataset)
        elif field.name == 'data_dir' and dataset and field.name in flag_values:
            values[field.name] = data.resolve_data_dir(dataset, flag_values.data_dir,
                                                       flag_values['data_dir'].present)
        elif field.name in flag_values:
            values[field.name] = flag_values[field.name].value
    return cls(**values)


def given(flag_values, names):
    """The names among `names` of the flags given on the command line."""
    return {name for name in names if flag_values[name].present}
