"""How request bodies are read: JSON only, and nothing deeper than the model allows.

Python's JSON parser recurses, so a body nested thousands of levels deep would exhaust the
stack (a 500). :class:`HydraParser` measures the nesting of the raw body first, without
recursion, and refuses one deeper than ``hydra.model.bodies.MAX_DEPTH`` with a 422 naming the
top-level field; every blueprint of the API uses it (:class:`Blueprint`).
"""

from __future__ import annotations

import flask_smorest
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser, is_json_request

from hydra.model.bodies import MAX_DEPTH


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> str | None:
    """The top-level field of a JSON text under which it nests deeper than ``limit`` (``_schema``
    when that is the body itself); None when it does not. Strings are skipped as JSON says."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return None  # cannot be that deep: the common case costs two counts
    depth = 0
    in_string = escaped = False
    last_string_at = -1  # where the last string at depth 1 started (a candidate key)
    key = None
    for index, byte in enumerate(raw):
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # closing quote
                in_string = False
                if depth == 1:
                    key_span = (last_string_at, index)
        elif byte == 0x22:
            in_string = True
            last_string_at = index + 1
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth == 2 and last_string_at >= 0:
                key = raw[key_span[0] : key_span[1]].decode("utf-8", "replace")
            if depth > limit:
                return key if key is not None and depth > 1 else "_schema"
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return None


class HydraParser(FlaskParser):
    def _raw_load_json(self, req):
        if is_json_request(req):
            field = too_deep(req.get_data(cache=True))
            if field is not None:
                raise ValidationError({field: [f"nested deeper than {MAX_DEPTH} levels"]})
        return super()._raw_load_json(req)


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, reading bodies with :class:`HydraParser`."""

    ARGUMENTS_PARSER = HydraParser()
