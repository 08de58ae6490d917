"""What no field of a request body may hold, whatever the field: nesting deeper than
:data:`MAX_DEPTH`, text that is not valid Unicode or holds a NUL, keys MongoDB cannot store,
numbers out of range. The job body (``hydra.model.spec``) and a trigger's parameter values
(``hydra.model.params``) are checked with these before anything else."""

from __future__ import annotations

import math
from typing import Any

#: How deep a job body may nest (objects and arrays, the body itself counting as 1); deeper
#: bodies are refused (422) before they are parsed any further.
MAX_DEPTH = 32
#: The range of integers a job body may hold (what MongoDB stores: 64-bit).
_INT64 = 2**63


def body_problems(body: dict) -> dict[str, list[str]]:
    """What no field of a job body may hold, by top-level field: nesting deeper than
    :data:`MAX_DEPTH`, strings (values or keys) with a lone surrogate or a NUL, keys with
    '$' or '.' (``http.body`` is stored as JSON text, so its keys are free), numbers that are
    not finite or do not fit 64 bits. Iterative: no input can exhaust the stack."""
    errors: dict[str, list[str]] = {}
    stack: list[tuple[Any, str, str, int, bool]] = [(v, str(k), str(k), 2, True) for k, v in body.items()]
    for key in body:
        bad_name = text_problem(key) if isinstance(key, str) else None
        if bad_name:
            errors.setdefault(printable(str(key)), []).append(f"the field name {bad_name}")
    while stack:
        value, field_name, path, depth, keys_checked = stack.pop()
        if field_name in errors:
            continue
        reason: str | None = None
        if isinstance(value, str):
            reason = text_problem(value)
        elif isinstance(value, bool) or value is None:
            pass
        elif isinstance(value, int):
            reason = None if -_INT64 <= value < _INT64 else "an integer out of range (64 bits)"
        elif isinstance(value, float):
            reason = None if math.isfinite(value) else "a number that is not finite"
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                reason = f"nested deeper than {MAX_DEPTH} levels"
            elif isinstance(value, dict):
                free = path == "http.body" or path.startswith("http.body.") or not keys_checked
                for key, item in value.items():
                    if not isinstance(key, str):
                        continue
                    key_reason = text_problem(key) or (
                        None if free or not (key.startswith("$") or "." in key) else "holds '$' or '.'"
                    )
                    if key_reason:
                        reason = f"a key ({printable(key)}) {key_reason}"
                        break
                    stack.append((item, field_name, f"{path}.{key}", depth + 1, not free))
            else:
                stack.extend(
                    (item, field_name, f"{path}[{i}]", depth + 1, keys_checked) for i, item in enumerate(value)
                )
        if reason:
            where = "" if path == field_name else f" (at {printable(path)})"
            errors[field_name] = [f"{reason}{where}"]
    return errors


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored or passed on (a NUL, a lone surrogate), or None."""
    if "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a lone surrogate (not valid Unicode text)"
    return None


def printable(text: str) -> str:
    """``text`` as ASCII an error message can quote (escapes; at most 80 characters)."""
    return text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace").replace("\x00", "\\0")[:80]
