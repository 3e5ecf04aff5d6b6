"""`--clips`: a subset of a dataset's clips by id and range, for job arrays and quick runs.

"240-249,255,foo" selects clips 240 to 249 (inclusive, compared as numbers, so "000-029" and "0-29" are the
same), 255 and the clip named foo. An item that selects no clip is an error naming it, so a typo is never
a silently empty run.
"""

from __future__ import annotations

import re

from uvssm.base.errors import UvssmError

_RANGE = re.compile(r"^(\d+)-(\d+)$")


def select_clips(names: list[str], text: str | None, where: str, option: str = "--clips") -> list[str]:
    """The clips of `names` (in their order) that `text` selects; all of them when `text` is None or empty.

    `where` names what holds the clips, for the error message (a folder, a split), and `option` the
    option that named them.
    """
    if not text or not text.strip():
        return list(names)
    items = [item.strip() for item in text.split(",")]
    if any(not item for item in items):
        raise UvssmError(f"{option} {text!r}: an empty item (expected ids and ranges such as 240-249,255)")
    chosen: set[str] = set()
    for item in items:
        m = _RANGE.match(item)
        if m:
            low, high = int(m.group(1)), int(m.group(2))
            if low > high:
                raise UvssmError(f"{option} {item}: the range runs backwards")
            hit = {n for n in names if n.isdigit() and low <= int(n) <= high}
        else:
            hit = {n for n in names if n == item}
        if not hit:
            shown = ", ".join(names[:8]) + (f" … ({len(names)} in all)" if len(names) > 8 else "")
            raise UvssmError(f"{option} {item}: no such clip in {where} (it has {shown or 'none'})")
        chosen |= hit
    return [n for n in names if n in chosen]
