"""Declarations a node type makes about itself: its ports and its params.

The inspector in the editor, `deephtm nodes` and the JSON Schema are generated from these.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..errors import GraphError

# Port kinds. An SDR is a tensor with few active units, so an SDR may feed a tensor input;
# a dense tensor may not feed an SDR input. Losses and metrics are scalars per step.
PORT_KINDS = ("tensor", "sdr", "image", "scalar", "loss")
_ACCEPTS = {
    "tensor": {"tensor", "sdr", "image"},
    "sdr": {"sdr"},
    "image": {"image", "tensor"},
    "scalar": {"scalar", "loss"},
    "loss": {"loss"},
}


def kind_accepts(input_kind: str, output_kind: str) -> bool:
    return output_kind in _ACCEPTS[input_kind]


@dataclass(frozen=True)
class Port:
    name: str
    kind: str = "tensor"
    doc: str = ""
    optional: bool = False  # inputs only: may be left unconnected

    def __post_init__(self):
        if self.kind not in PORT_KINDS:
            raise ValueError(f"port {self.name}: unknown kind {self.kind!r}")


PARAM_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
MAX_STR_CHARS = 4096  # a path or a name; longer text in a param is a mistake


@dataclass(frozen=True)
class Param:
    name: str
    type: str  # one of PARAM_TYPES
    default: Any
    doc: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple = field(default=())

    def check(self, value: Any, where: str) -> Any:
        """Return the value coerced to this param's type, or raise GraphError."""
        t = self.type
        if t == "bool":
            if not isinstance(value, bool):
                raise GraphError(f"expected true or false, got {_show(value)}", where=where)
            return value
        if t == "str":
            if not isinstance(value, str):
                raise GraphError(f"expected a string, got {_show(value)}", where=where)
            if len(value) > MAX_STR_CHARS:
                raise GraphError(f"text longer than {MAX_STR_CHARS} characters", where=where)
            if self.choices and value not in self.choices:
                raise GraphError(f"{_show(value)} is not one of {', '.join(map(repr, self.choices))}", where=where)
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GraphError(f"expected {'an integer' if t == 'int' else 'a number'}, got {_show(value)}", where=where)
        if t == "int":
            if isinstance(value, float):
                if not value.is_integer():
                    raise GraphError(f"expected an integer, got {_show(value)}", where=where)
                value = int(value)
        else:
            try:
                value = float(value)
            except OverflowError:  # an integer beyond float range, e.g. 10**400
                raise GraphError(f"{_show(value)} is too large", where=where) from None
            if not math.isfinite(value):
                raise GraphError(f"expected a finite number, got {value!r}", where=where)
        if self.min is not None and value < self.min:
            raise GraphError(f"{_show(value)} is below the minimum {self.min!r}", where=where)
        if self.max is not None and value > self.max:
            raise GraphError(f"{_show(value)} is above the maximum {self.max!r}", where=where)
        return value

    def describe(self) -> dict:
        d = {"name": self.name, "type": self.type, "default": self.default, "doc": self.doc}
        if self.min is not None:
            d["min"] = self.min
        if self.max is not None:
            d["max"] = self.max
        if self.choices:
            d["choices"] = list(self.choices)
        return d

    def json_schema(self) -> dict:
        s: dict = {"description": self.doc, "default": self.default}
        s["type"] = {"int": "integer", "float": "number", "bool": "boolean", "str": "string"}[self.type]
        if self.min is not None:
            s["minimum"] = self.min
        if self.max is not None:
            s["maximum"] = self.max
        if self.choices:
            s["enum"] = list(self.choices)
        return s


def _show(value: Any) -> str:
    if isinstance(value, (list, dict)):  # never repr a (possibly huge or deep) structure
        return "a list" if isinstance(value, list) else "an object"
    if isinstance(value, str) and len(value) > 40:
        value = value[:40]
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "a huge integer"
    return text if len(text) <= 40 else text[:37] + "..."
