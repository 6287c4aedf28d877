"""Editors for one declared Param (deephtm.graph.spec.Param): spin boxes with the declared range,
combo boxes for choices, check boxes for bools. Every value is checked with the engine's
Param.check before it is committed, as the user types."""
from __future__ import annotations

import math
from typing import Any, Callable

from PyQt6.QtGui import QValidator
from PyQt6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLineEdit, QSpinBox, QWidget

from deephtm.errors import GraphError
from deephtm.graph.spec import Param

INT32_MAX = 2**31 - 1


class FloatSpin(QDoubleSpinBox):
    """A double spin box that shows numbers like 0.001 or 1e-06 as typed, not rounded to
    a fixed number of decimals, and accepts only what Param.check accepts."""

    def __init__(self, param: Param, parent=None, report: Callable[[str | None], None] | None = None):
        super().__init__(parent)
        self.param = param
        self.report = report or (lambda _text: None)
        self.setDecimals(12)
        lo = param.min if param.min is not None else -1e12
        hi = param.max if param.max is not None else 1e12
        self.setRange(lo, hi)
        self.setStepType(QDoubleSpinBox.StepType.AdaptiveDecimalStepType)
        self.setKeyboardTracking(True)

    def textFromValue(self, value: float) -> str:
        return f"{value:.6g}"

    def valueFromText(self, text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        t = text.strip()
        if t in ("", "-", "+", ".", "-.", "e", "E") or t.lower().endswith(("e", "e-", "e+")):
            return QValidator.State.Intermediate, text, pos
        try:
            value = float(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        if not math.isfinite(value):
            return QValidator.State.Invalid, text, pos
        try:
            self.param.check(value, "")
        except GraphError as exc:
            # e.g. "0.0" on the way to "0.05": allowed while typing, never committed
            self.report(f"{self.param.name}: {exc.message}")
            return QValidator.State.Intermediate, text, pos
        self.report(None)
        return QValidator.State.Acceptable, text, pos


class IntSpin(QSpinBox):
    """A spin box with the declared range that says why a typed number is refused."""

    def __init__(self, param: Param, report: Callable[[str | None], None]):
        super().__init__()
        self.param = param
        self.report = report
        lo = int(param.min) if param.min is not None else -INT32_MAX
        hi = int(min(param.max, INT32_MAX)) if param.max is not None else INT32_MAX  # QSpinBox is 32-bit
        self.setRange(max(lo, -INT32_MAX), hi)
        self.setKeyboardTracking(True)

    def validate(self, text: str, pos: int):
        state, text, pos = super().validate(text, pos)
        t = text.strip()
        if t not in ("", "-", "+"):
            try:
                self.param.check(int(t), "")
                self.report(None)
            except ValueError:
                pass
            except GraphError as exc:
                self.report(f"{self.param.name}: {exc.message}")
        return state, text, pos


def make_editor(param: Param, value: Any, commit: Callable[[Any], None],
                report: Callable[[str | None], None]) -> QWidget:
    """A widget editing `param`, showing `value`; commit(v) gets each valid new value,
    report(text) the reason a typed value is refused (None when it is fine)."""

    def checked(v):
        try:
            v = param.check(v, "")
        except GraphError as exc:
            report(f"{param.name}: {exc.message}")
            return
        report(None)
        commit(v)

    if param.type == "bool":
        w = QCheckBox()
        w.setChecked(bool(value))
        w.toggled.connect(checked)
    elif param.type == "int":
        w = IntSpin(param, report)
        w.setValue(int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else w.minimum())
        w.valueChanged.connect(checked)
    elif param.type == "float":
        w = FloatSpin(param, report=report)
        w.setValue(float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0)
        w.valueChanged.connect(checked)
    elif param.choices:
        w = QComboBox()
        w.addItems([str(c) for c in param.choices])
        if value in param.choices:
            w.setCurrentIndex(list(param.choices).index(value))
        w.currentTextChanged.connect(checked)
    else:
        w = QLineEdit(str(value))
        w.textEdited.connect(checked)
    tip = param.doc
    if param.min is not None or param.max is not None:
        tip += f"  (range {param.min if param.min is not None else '-∞'} … {param.max if param.max is not None else '∞'})"
    if param.choices:
        tip += f"  (one of {', '.join(map(str, param.choices))})"
    w.setToolTip(tip)
    w.param = param
    return w


def set_editor_value(w: QWidget, value: Any) -> None:
    """Show a value that changed elsewhere (undo), without committing it again."""
    w.blockSignals(True)
    try:
        if isinstance(w, QCheckBox):
            if w.isChecked() != bool(value):
                w.setChecked(bool(value))
        elif isinstance(w, QSpinBox):
            if w.value() != int(value):
                w.setValue(int(value))
        elif isinstance(w, QDoubleSpinBox):
            if w.value() != float(value) or w.text() != w.textFromValue(float(value)):
                w.setValue(float(value))
                w.lineEdit().setText(w.textFromValue(float(value)))
        elif isinstance(w, QComboBox):
            if w.currentText() != str(value):
                w.setCurrentText(str(value))
        elif isinstance(w, QLineEdit):
            if w.text() != str(value):
                w.setText(str(value))
    finally:
        w.blockSignals(False)
