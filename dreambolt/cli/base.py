"""What every command shares: exit codes, the two consoles, one asyncio.run, failing with a code.

Rich is imported on first use, so `--help` and usage errors do not pay for it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TYPE_CHECKING, NoReturn, TypeVar

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "EXIT_ABORTED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_PARTIAL",
    "EXIT_USAGE",
    "consoles",
    "fail",
    "run",
    "stderr_console",
]

EXIT_OK, EXIT_PARTIAL, EXIT_USAGE, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
T = TypeVar("T")


@cache
def stderr_console() -> Console:
    """The one stderr console: progress, messages and log lines share it, so logs print above
    a live progress display instead of tearing it."""
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def consoles() -> tuple[Console, Console]:
    """(stderr console for progress, messages and logs; stdout console)."""
    from rich.console import Console

    return stderr_console(), Console(highlight=False)


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """asyncio.run, with SIGTERM treated like Ctrl-C (cancel, let files finish whole, 130)."""

    async def runner() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        if task is not None:
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await coro_fn()

    try:
        return asyncio.run(runner())
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None


def fail(console: Console, message: str, code: int) -> NoReturn:
    """Print `error: message` on `console` (taken literally, not as markup) and exit with `code`."""
    from rich.markup import escape

    console.print(f"[red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    sys.exit(code)
