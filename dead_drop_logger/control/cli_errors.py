"""How every command ends when something goes wrong outside the command's own work.

Why it exists: the project's rule is one line on stderr and a meaningful exit code,
never a traceback, and three kinds of trouble reach no command's own handler:
- click's usage errors (a bad option value, a missing option, an unknown command),
  which click prints as four lines (Usage, Try, a blank, Error) naming the
  environment variable even when the value came from the command line;
- stdout failing: a closed pipe (``| head -1``) or a full disk (``> /dev/full``),
  which Python reports as a traceback, or as exit 1 (click), which for the reading
  commands means "nothing matched";
- Ctrl-C outside a command that handles it.
Each is handled here once, for every command, by :class:`OneLineErrors`, the class
``cli``'s group and ``export_historical.py``'s command are built from.

Exit codes: a usage error 2 (click's, grep's); stdout failing 2 for every command
(the code of "could not do what was asked", as the reading commands already use);
a closed pipe 141, the status a shell reports for ``grep`` or ``cat`` killed by SIGPIPE
(so ``set -o pipefail`` scripts see what they see with the classic tools; neither 0,
as the output was cut short, nor 1, "no match"); Ctrl-C 130.

Which error is stdout's is known exactly, not guessed from an errno: the real standard
output (file descriptor 1) is written through :class:`_Stdout`, which turns its own
write errors into :class:`OutputError`, an exception no other code raises or catches.
"""

from __future__ import annotations

import errno
import io
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

import click
from click.core import ParameterSource

from ..crypt.keys import CryptError
from .lazygroup import LazyGroup

EXIT_USAGE = 2
EXIT_OUTPUT = 2
EXIT_BROKEN_PIPE = 128 + 13  # 128 + SIGPIPE, as a shell reports a tool SIGPIPE ended
EXIT_INTERRUPTED = 128 + 2  # 128 + SIGINT


class OutputError(Exception):
    """Writing to the standard output failed (a closed pipe, a full disk)."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error.strerror or str(error))
        self.errno = error.errno
        self.strerror = error.strerror or str(error)


class _Stdout(io.RawIOBase):
    """File descriptor 1, whose write errors are :class:`OutputError`."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def isatty(self) -> bool:
        return os.isatty(self._fd)

    def write(self, data: Any) -> int:
        try:
            return os.write(self._fd, data)
        except OSError as exc:
            raise OutputError(exc) from exc


def _tag_stdout() -> None:
    """Write the real standard output through :class:`_Stdout` (not a test's capture)."""
    old = sys.stdout
    try:
        fd = old.fileno()
    except (AttributeError, OSError, ValueError):  # captured (CliRunner) or none
        return
    old.flush()
    line_buffering = old.line_buffering if isinstance(old, io.TextIOWrapper) else False
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_Stdout(fd)),
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=line_buffering,
    )


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null, so what is still buffered for it cannot fail again when
    the interpreter flushes it at exit (Python's own advice for EPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, fd)
    os.close(null)


def _hint(param: click.Parameter, ctx: click.Context | None) -> str:
    """``--poll-interval``, ``-o/--output`` or ``ID``, and where the value came from
    when that was not the command line."""
    if isinstance(param, click.Option):
        name = "/".join(param.opts)
    else:
        name = param.make_metavar(ctx) if ctx is not None else param.human_readable_name
    if ctx is None or param.name is None:
        return name
    source = ctx.get_parameter_source(param.name)
    if source is ParameterSource.ENVIRONMENT and isinstance(param, click.Option):
        envvars = [param.envvar] if isinstance(param.envvar, str) else param.envvar or []
        from_env = [v for v in envvars if v in os.environ]
        return f"{name} (from ${from_env[0] if from_env else envvars[0]})"
    if source is ParameterSource.DEFAULT_MAP:
        return f"{name} (from the settings file)"
    return name


_QUOTED_OPTION = re.compile(r"'(-{1,2}[A-Za-z][\w-]*)'")


def _sentence(text: str) -> str:
    """click's message as the rest of the line: lower-case start, no final stop, option
    names unquoted, one line."""
    text = " ".join(text.split())
    text = _QUOTED_OPTION.sub(r"\1", text).replace(" / ", "/").rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text


def describe(exc: click.ClickException) -> str:
    """A click error as the part after ``PROGRAM: error:``."""
    if isinstance(exc, click.BadParameter) and exc.param is not None and exc.param_hint is None:
        hint = _hint(exc.param, exc.ctx)
        if isinstance(exc, click.MissingParameter):
            kind = "option" if isinstance(exc.param, click.Option) else "argument"
            return f"missing {kind} {hint}"
        return f"invalid value for {hint}: {_sentence(exc.message)}"
    return _sentence(exc.format_message())


class OneLineErrors(click.Command):
    """A click command (or, mixed in first, a group) that ends every way described in
    this module's docstring. ``program`` starts its error lines."""

    program = "dead-drop-logger"

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        def invoke() -> Any:
            return super(OneLineErrors, self).main(
                args, prog_name, complete_var, standalone_mode=False, **extra
            )

        if not standalone_mode:
            return invoke()
        _tag_stdout()
        code: Any
        try:
            try:
                code = invoke()
            finally:
                sys.stdout.flush()  # what is still buffered fails here, not at exit
        except OutputError as exc:
            code = self._output_failed(exc)
        except click.exceptions.NoArgsIsHelpError as exc:  # the bare group: its help
            exc.show()
            code = exc.exit_code
        except click.ClickException as exc:
            self.error(describe(exc))
            code = exc.exit_code
        except click.Abort:  # Ctrl-C: click has ended the line the terminal echoed
            code = EXIT_INTERRUPTED
        except CryptError as exc:  # encrypted logs and no (or the wrong) identity
            self.error(str(exc))
            code = EXIT_USAGE
        sys.exit(code if isinstance(code, int) else 0)

    def error(self, message: str) -> None:
        click.echo(f"{self.program}: error: {message}", err=True)

    def _output_failed(self, exc: OutputError) -> int:
        _silence_stdout()
        if exc.errno == errno.EPIPE:
            return EXIT_BROKEN_PIPE
        self.error(f"cannot write output: {exc.strerror}")
        return EXIT_OUTPUT


class Group(OneLineErrors, LazyGroup):
    """``dead-drop-logger`` itself: its subcommands end as :class:`OneLineErrors` says,
    each loaded when it is asked for (:mod:`.lazygroup`)."""
