"""Memory quantities as people write them in YAML: ``6Gi``, ``512Mi``, ``2GB``, bytes."""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "k": 10**3,
    "m": 10**6,
    "g": 10**9,
    "t": 10**12,
    "ki": 2**10,
    "mi": 2**20,
    "gi": 2**30,
    "ti": 2**40,
}
_QUANTITY = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", re.IGNORECASE)


def parse_bytes(value: object) -> int:
    """Bytes in ``value``: an integer, or a number with a Kubernetes-style suffix.

    ``Gi``/``Mi``/``Ki`` are powers of two, ``G``/``M``/``K`` (or ``GB``...) powers of
    ten, as in Kubernetes resource quantities.
    """
    if isinstance(value, bool):
        raise ValueError("write a memory size such as 6Gi, 512Mi or a number of bytes")
    if isinstance(value, int | float):
        return int(value)
    match = _QUANTITY.fullmatch(str(value))
    if match is None:
        raise ValueError(
            f"{value!r} is not a memory size: write e.g. 6Gi, 512Mi, 2GB or a number of bytes"
        )
    number, unit = match.groups()
    return int(float(number) * _UNITS[(unit or "").lower()])
