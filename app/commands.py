"""QUndoStack commands. Each one wraps a list of document operations (see app/document.py)
and undoes it by applying the inverses the document returned, so undo is exact."""
from __future__ import annotations

from PyQt6.QtGui import QUndoCommand, QUndoStack

from .document import Document, Op

MERGE_PARAM = 1  # consecutive edits of the same param (typing "256") are one undo step


class EditCommand(QUndoCommand):
    def __init__(self, doc: Document, text: str, ops: list[Op], merge_key: tuple | None = None):
        super().__init__(text)
        self.doc = doc
        self.ops = list(ops)
        self.inverses: list[Op] = []  # in the order they must be applied to undo
        self.merge_key = merge_key

    def redo(self) -> None:
        self.inverses = self.doc.apply_all(self.ops)

    def undo(self) -> None:
        self.doc.apply_all(self.inverses)

    def id(self) -> int:
        return MERGE_PARAM if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditCommand) or other.merge_key != self.merge_key:
            return False
        # other has already been applied; undoing both means other's inverses first
        self.ops += other.ops
        self.inverses = other.inverses + self.inverses
        return True


def push(stack: QUndoStack, doc: Document, text: str, ops: list[Op], merge_key: tuple | None = None) -> bool:
    """Push an edit; an empty edit changes nothing and makes no undo step."""
    if not ops:
        return False
    stack.push(EditCommand(doc, text, ops, merge_key))
    return True
