"""A progress bar over a theory grid: one step per (N, T) solve, the running solve's state in its postfix.

The bar (tqdm, on stderr, like the sampler's and the training's) counts the solves of a grid; while a solve runs,
`solve_saddle`'s callback writes its trust-region iteration and max|dS/dU| into the postfix, so a solve of a
minute is seen to move. Settings fields `progress` (`--progress/--no-progress`) turn it off; they do not change
the results (identity=False), so a run may be resumed with the other value.
"""

from __future__ import annotations

import time
from typing import Callable

from tqdm.auto import tqdm

from attnpaths.experiments.settings import setting

REFRESH_SECONDS = 0.1
"""Least time between two redraws of the postfix: a solve of many fast iterations does not flood the terminal."""
PROGRESS_FIELD_HELP = "show a progress bar over the theory's (N, T) solves on stderr"


def progress_setting():
    """The `progress: bool` settings field shared by the experiments (True: show the bar)."""
    return setting(True, PROGRESS_FIELD_HELP, identity=False)


class GridProgress:
    """A tqdm bar over `total` solves (on stderr); `close()` it when the grid is done.

    Args:
      total: solves in the grid (grow it with `add` when the grid grows).
      desc: the bar's label.
      enabled: False makes every method a no-op (nothing is written).
      initial: solves already done (a resumed run).
    """

    def __init__(self, total: int, desc: str, enabled: bool = True, initial: int = 0):
        self.bar = tqdm(total=total, initial=initial, desc=desc, unit="solve", disable=not enabled, leave=True,
                        dynamic_ncols=True)
        self._last = 0.0
        self._text = ""

    def close(self) -> None:
        self.bar.close()

    def add(self, n: int) -> None:
        """The grid grew by n solves (e.g. a temperature column added to the one-shot grid)."""
        self.bar.total += n
        self.bar.refresh()

    def solving(self, **where) -> Callable[[int, float, float], None]:
        """The callback for `solve_saddle` while the solve at `where` (e.g. N=10, T=0.01) runs."""
        label = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in where.items())
        self._text = label
        self.bar.set_postfix_str(label, refresh=True)
        self._last = 0.0  # every solve shows its first iteration

        def callback(iteration: int, action: float, grad_max: float) -> None:
            self._text = f"{label} iter {iteration} max|dS/dU| {grad_max:.1e}"
            now = time.monotonic()
            if now - self._last >= REFRESH_SECONDS and not self.bar.disable:
                self._last = now
                self.bar.set_postfix_str(self._text, refresh=True)

        return callback

    def log(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """`log` that clears the bar while it writes a line, then redraws it (stdout and stderr share a
        terminal, so a plain print would leave a torn bar behind)."""

        def write(line: str) -> None:
            with self.bar.external_write_mode():
                log(line)

        return write

    def done(self, n: int = 1) -> None:
        """n solves finished; the postfix keeps the last solve's final iteration."""
        self.bar.set_postfix_str(self._text, refresh=False)
        self.bar.update(n)
