"""A JSON Schema for graph files, generated from the node registry."""
from __future__ import annotations

from . import registry
from .graphfile import FORMAT_VERSION
from .training import TRAINING_PARAMS

REF_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]*\.[A-Za-z_][A-Za-z0-9_]*$"


def graph_schema() -> dict:
    node_variants = []
    for type_name, cls in sorted(registry.types().items()):
        node_variants.append({
            "type": "object",
            "description": cls.doc,
            "properties": {
                "id": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"},
                "type": {"const": type_name},
                "params": {"type": "object", "additionalProperties": False,
                           "properties": {p.name: p.json_schema() for p in cls.params}},
                "ui": {"type": "object"},
            },
            "required": ["id", "type"],
            "additionalProperties": False,
        })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "DeepHTM graph file",
        "type": "object",
        "properties": {
            "format_version": {"const": FORMAT_VERSION},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "nodes": {"type": "array", "items": {"oneOf": node_variants}},
            "edges": {"type": "array", "items": {
                "type": "object",
                "properties": {"from": {"type": "string", "pattern": REF_PATTERN},
                               "to": {"type": "string", "pattern": REF_PATTERN},
                               "delay": {"enum": [0, 1]}},
                "required": ["from", "to"], "additionalProperties": False}},
            "groups": {"type": "array", "items": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "title": {"type": "string"},
                               "nodes": {"type": "array", "items": {"type": "string"}},
                               "collapsed": {"type": "boolean"}},
                "required": ["id", "nodes"]}},
            "training": {"type": "object", "additionalProperties": False,
                         "properties": {p.name: p.json_schema() for p in TRAINING_PARAMS}},
            "ui": {"type": "object"},
        },
        "required": ["format_version", "nodes", "edges"],
        "additionalProperties": False,
    }
