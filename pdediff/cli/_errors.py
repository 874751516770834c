"""One-line errors of the command line, and library parameter errors spelled as its flags.

A library validator raises :class:`pdediff.errors.ParameterError` whose message is a template naming
parameters as ``{name}``/``{name=value}``; the command line renders it with :class:`FlagSpelling`, which
maps each name to the flag argparse defines for it (``num_iter`` -> ``--num-iter``), so no message is
rewritten by substring and a reworded library message still prints flags.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from ..errors import ParameterError


class CLIError(Exception):
    """A user error reported as one line on stderr with a non-zero exit status."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def library_errors(*also: type[BaseException], prefix: str = "") -> Iterator[None]:
    """Report a library call's ``ValueError``/``TypeError`` (and ``also``) as a one-line :class:`CLIError`.

    A :class:`~pdediff.errors.ParameterError` passes through unchanged: the command line's ``main``
    renders its template with the command's flags (:class:`FlagSpelling`).
    """
    try:
        yield
    except ParameterError:
        raise
    except (ValueError, TypeError, *also) as exc:
        raise CLIError(prefix + first_line(exc)) from None


#: How a name with no flag of its own, or a setting, is spelled on every command.
_VALUE_WORDS = {"True": "{flag}", "False": "no {flag}", "None": "no {flag}"}


class FlagSpelling:
    """``spell(name, value)`` for :meth:`ParameterError.render`: a library parameter spelled as a command's flag.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser; each action's ``dest`` is spelled as its first long option (else its first
        option, e.g. ``-n``; a positional argument as its metavar, e.g. ``INPUT``).
    names : mapping of str to str, optional
        Library names that are not a ``dest`` of ``parser``: ``name -> dest``; ``"prefix.*" -> dest`` for
        nested names (``process.config.K`` -> ``--config K``); ``"name=value" -> text`` for a setting
        spelled otherwise (``max_steps=None`` -> ``--max-steps 0``).
    given : mapping of str to str, optional
        ``dest -> option string`` the user typed where it differs from the canonical flag (a deprecated
        alias): messages name the flag the user gave.

    Notes
    -----
    A name without a flag prints as the library spells it.  A dotted name without an entry falls back
    to its last component (``model.base`` -> ``--base``).  Values: a quoted string loses its quotes
    (``method='aos'`` -> ``--method aos``); ``None``/``False`` read "no ``--flag``"; ``True`` is the flag.
    """

    def __init__(self, parser: argparse.ArgumentParser, names: Mapping[str, str] | None = None,
                 given: Mapping[str, str] | None = None) -> None:
        self._flags: dict[str, str] = {}
        for action in parser._actions:  # argparse keeps no public list of a parser's actions
            if action.dest in (argparse.SUPPRESS, "help") or isinstance(action, DeprecatedAlias):
                continue
            if action.option_strings:
                longs = [s for s in action.option_strings if s.startswith("--")]
                flag = longs[0] if longs else action.option_strings[0]
            else:
                flag = action.metavar if isinstance(action.metavar, str) else action.dest.upper()
            self._flags.setdefault(action.dest, flag)
        self._flags.update(given or {})
        self._names = dict(names or {})

    def flag(self, name: str) -> str | None:
        """The flag spelling library parameter ``name`` (``None`` when the command has none for it)."""
        dest = self._names.get(name, name)
        if dest in self._flags:
            return self._flags[dest]
        for key, target in self._names.items():
            if key.endswith(".*") and name.startswith(key[:-1]) and target in self._flags:
                return f"{self._flags[target]} {name[len(key) - 1:]}"
        if "." in name:
            return self.flag(name.rsplit(".", 1)[1])
        return None

    def __call__(self, name: str, value: str | None) -> str:
        if value is not None and f"{name}={value}" in self._names:
            return self._names[f"{name}={value}"]
        flag = self.flag(name)
        if flag is None:
            return name if value is None else f"{name}={value}"
        if value is None:
            return flag
        if value in _VALUE_WORDS:
            return _VALUE_WORDS[value].format(flag=flag)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        return f"{flag} {value}"


def render(err: ParameterError, parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """``err``'s first line with every parameter spelled as ``parser``'s flags (see :class:`FlagSpelling`)."""
    text = err.render(spelling_for(parser, args)).strip()
    return text.splitlines()[0] if text else type(err).__name__


class DeprecatedAlias(argparse.Action):
    """An old flag that still works for one release: stores into the new flag's ``dest`` and prints one
    warning line naming the new flag; messages about the value then name the flag the user typed.

    Add with ``parser.add_argument(OLD, dest=NEW_DEST, action=DeprecatedAlias, new=NEW_FLAG, ...)``.
    """

    def __init__(self, option_strings, dest, *, new: str, **kwargs) -> None:
        kwargs.setdefault("help", argparse.SUPPRESS)
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        note_given(namespace, self.dest, option_string)
        warn_deprecated(parser.prog, option_string, self.new)


def note_given(namespace: argparse.Namespace, dest: str, option_string: str) -> None:
    """Record that ``dest`` came from ``option_string`` (messages name it instead of the canonical flag)."""
    given = dict(getattr(namespace, "given_flags", None) or {})
    given[dest] = option_string
    namespace.given_flags = given


def warn_deprecated(prog: str, old: str, new: str) -> None:
    """One line on stderr: ``old`` still works this release; ``new`` is its name."""
    print(f"{prog}: warning: {old} is deprecated and will be removed; use {new}", file=sys.stderr)


def spelling_for(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Callable[[str, str | None], str]:
    """The :class:`FlagSpelling` of ``parser`` for the parsed ``args`` (its names and the flags the user gave)."""
    names = getattr(args, "library_names", None)
    if callable(names):
        names = names(args)
    return FlagSpelling(parser, names, getattr(args, "given_flags", None))


def write_failure(exc: BaseException) -> CLIError:
    """The one line for an output that could not be written (a refused replacement spelled with ``--force``)."""
    from ..io import DestinationExistsError

    if isinstance(exc, DestinationExistsError) and exc.path is not None:
        how = " (another run wrote it while this one was writing)" if exc.raced else ""
        return CLIError(f"cannot write: {exc.path} exists{how}; nothing was replaced; pass --force to replace it")
    short = _SHORT_WRITE.fullmatch(str(exc).strip()) if isinstance(exc, OSError) and exc.errno is None else None
    if short:  # NumPy's tofile (TIFF pixel data) on a full disk: no errno, only the byte counts
        return CLIError(f"cannot write: short write ({short[1]} bytes requested, {short[2]} written): "
                        "no space left on the device, or it failed")
    return CLIError(f"cannot write: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


#: ``OSError("221184 requested and 153508 written")``: how numpy.ndarray.tofile reports a short write.
_SHORT_WRITE = re.compile(r"(\d+) requested and (\d+) written")
