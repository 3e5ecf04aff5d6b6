"""The one progress-callback signature of pipelines and long library loops: `progress(event, info)`.

`event` names what happened ("plan", "clip", "frame", ...; each function's docstring lists its events)
and `info` is a dict of plain values. Only the CLI turns events into a display; `quiet` ignores them.
"""

from __future__ import annotations

from typing import Callable

Progress = Callable[[str, dict], None]


def quiet(event: str, info: dict) -> None:
    """The callback used when the caller passes none."""
