"""The inspector: a form for what is selected, generated from the engine's declarations.
A node shows its id, its params (from Node.params) and each port's inferred shape; an edge
its delay; a group its title; nothing selected, the graph's name and training section."""
from __future__ import annotations

from PyQt6 import sip
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit,
                             QPushButton, QScrollArea, QToolButton, QWidget)

from deephtm.graph import registry
from deephtm.graph.training import TRAINING_PARAMS

from . import edits, grouping
from .canvas import style
from .param_widgets import make_editor, set_editor_value


# a group's colour, saved under its ui; None: the default blue-grey
GROUP_COLORS = [("default", None), ("blue", "#4e8fe6"), ("green", "#4fbf73"), ("orange", "#f0a43a"),
                ("red", "#e5656b"), ("purple", "#b07be8"), ("teal", "#3fc1c9"), ("grey", "#9aa0a6")]


def shape_text(shape) -> str:
    if shape is None:
        return "?"
    return "scalar" if shape == () else "[" + ", ".join(str(s) for s in shape) + "]"


class Inspector(QScrollArea):
    def __init__(self, editor, scene, parent=None):
        super().__init__(parent)
        self.editor = editor
        self.scene = scene
        self.setWidgetResizable(True)
        self.target: tuple | None = None  # what the form shows: ("node", id), ("edge", key), ...
        self.editors: dict[str, QWidget] = {}
        self.param_labels: dict[str, QLabel] = {}
        self.shape_labels: dict[tuple, QLabel] = {}
        self.problem_label: QLabel | None = None
        self.error_label: QLabel | None = None
        scene.selectionChanged.connect(self.refresh)
        editor.changed.connect(self._on_changed)
        editor.analysed.connect(self._on_analysed)
        self.refresh()

    def _on_changed(self, _what: str) -> None:
        self.refresh()

    def _on_analysed(self, _analysis) -> None:
        self._show_analysis()

    # ---- choosing what to show -------------------------------------------------
    def _current_target(self) -> tuple:
        nodes = self.scene.selected_members()
        edges = self.scene.selected_edge_keys()
        g = self.editor.doc.graph
        if len(nodes) == 1 and not edges:
            key = nodes[0]
            if g.node(key) is not None:
                return ("node", key)
            if grouping.group(g, key) is not None:
                return ("group", key)
        if len(edges) == 1 and not nodes and self.editor.doc.edge(edges[0]) is not None:
            return ("edge", edges[0])
        if nodes or edges:
            return ("many", len(nodes), len(edges))
        return ("graph",)

    def refresh(self) -> None:
        if sip.isdeleted(self.scene):  # the window is being torn down
            return
        target = self._current_target()
        if target != self.target or not self._still_valid():
            self.target = target
            self._build()
        else:
            self._update_values()
        self._show_analysis()

    def _still_valid(self) -> bool:
        t = self.target
        if t is None:
            return False
        if t[0] == "node":
            return self.editor.doc.node(t[1]) is not None
        if t[0] == "edge":
            return self.editor.doc.edge(t[1]) is not None
        return True

    # ---- building forms -------------------------------------------------------------
    def _build(self) -> None:
        self.editors, self.shape_labels, self.param_labels = {}, {}, {}
        self.param_errors: dict[str, QLabel] = {}  # under each field: why its value is wrong
        self.problem_label = self.error_label = None
        page = QWidget()
        self.form = QFormLayout(page)
        self.form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        kind = self.target[0]
        if kind == "node":
            self._build_node(self.target[1])
        elif kind == "edge":
            self._build_edge(self.target[1])
        elif kind == "group":
            self._build_group(self.target[1])
        elif kind == "many":
            self._build_many()
        else:
            self._build_graph()
        self.error_label = QLabel("")
        self.error_label.setStyleSheet("color: #d9383e;")
        self.error_label.setWordWrap(True)
        self.form.addRow(self.error_label)
        # The old form may be inside one of its own signals (an id edit's editingFinished
        # renames the node, which rebuilds this form): delete it later, never right now.
        old = self.takeWidget()
        if old is not None:
            old.hide()
            old.deleteLater()
        self.setWidget(page)

    def _heading(self, text: str, sub: str = "") -> None:
        title = QLabel(f"<b>{text}</b>" + (f"<br><span style='color:gray'>{sub}</span>" if sub else ""))
        title.setWordWrap(True)
        title.setTextFormat(Qt.TextFormat.RichText)
        self.form.addRow(title)

    def _add_param_error(self, name: str) -> None:
        label = self.param_errors[name] = QLabel("")
        label.setObjectName(f"error:{name}")
        label.setStyleSheet("color: #ff6b6b;")
        label.setWordWrap(True)
        label.hide()
        self.form.addRow("", label)

    def _report_param(self, name: str, text: str | None, typed: bool = True) -> None:
        """Show a param's problem right under its field (a typed value refused, or what the
        graph check says about the value it holds)."""
        label = self.param_errors.get(name)
        if label is None:
            self._report(text)
            return
        try:
            if typed:
                label.typed = text
            shown = getattr(label, "typed", None) or getattr(label, "checked", None)
            label.setText("✗ " + shown if shown else "")
            label.setVisible(bool(shown))
        except RuntimeError:  # the label's form was just replaced
            pass

    def _report(self, text: str | None) -> None:
        if self.error_label is not None:
            self.error_label.setText(text or "")

    def _build_node(self, node_id: str) -> None:
        spec = self.editor.doc.node(node_id)
        cls = registry.get(spec.type)
        self._heading(spec.type, cls.doc if cls else "unknown node type: not in the registry")
        id_edit = QLineEdit(node_id)
        id_edit.setObjectName("node_id")

        def check_id(text):
            self._report(edits.rename_problem(self.editor.doc, node_id, text))

        def commit_id():
            new = id_edit.text()
            if new == node_id or self.editor.doc.node(node_id) is None:
                return
            problem = self.editor.rename(node_id, new)
            self._report(problem)
            if problem is None:
                self.scene.select_ids([new])  # the form is rebuilt for the renamed node

        id_edit.textEdited.connect(check_id)
        id_edit.editingFinished.connect(commit_id)
        self.form.addRow("id", id_edit)
        title = QLineEdit(spec.ui.get("title", "") if isinstance(spec.ui.get("title"), str) else "")
        title.setObjectName("node_title")
        title.setPlaceholderText("shown on the box instead of the id")
        title.textEdited.connect(lambda t: self.editor.set_title(node_id, t))
        self.editors["title"] = title
        self.form.addRow("title", title)
        if cls is None:
            return
        for p in cls.params:
            value = spec.params.get(p.name, p.default)
            w = make_editor(p, value, lambda v, name=p.name: self.editor.set_param(node_id, name, v),
                            lambda text, name=p.name: self._report_param(name, text))
            self.editors[p.name] = w
            label = self.param_labels[p.name] = self._param_label(p, p.name in spec.params)
            self.form.addRow(label, self._with_reset(w, node_id, p.name))
            self._add_param_error(p.name)
        self._build_ports(node_id, cls)
        self.problem_label = QLabel("")
        self.problem_label.setWordWrap(True)
        self.problem_label.setStyleSheet("color: #d9383e;")
        self.form.addRow(self.problem_label)

    def _param_label(self, p, explicit: bool) -> QLabel:
        label = QLabel(f"<b>{p.name}</b>" if explicit else p.name)
        label.setToolTip(p.doc + ("" if explicit else "  (default)"))
        return label

    def _with_reset(self, w: QWidget, node_id: str, name: str) -> QWidget:
        box = QWidget()
        lay = QHBoxLayout(box)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(w, 1)
        reset = QToolButton()
        reset.setText("↺")
        reset.setToolTip("back to the default")
        reset.clicked.connect(lambda: self.editor.reset_param(node_id, name))
        lay.addWidget(reset)
        return box

    def _build_ports(self, node_id: str, cls) -> None:
        for direction, ports in (("in", cls.inputs), ("out", cls.outputs)):
            if not ports:
                continue
            self.form.addRow(QLabel(f"<b>{'Inputs' if direction == 'in' else 'Outputs'}</b>"))
            for p in ports:
                color = style.kind_color(p.kind).name()
                name = QLabel(f"<span style='color:{color}'>●</span> {p.name}"
                              + (" <i>(optional)</i>" if p.optional else ""))
                name.setToolTip(p.doc)
                shape = QLabel("?")
                shape.setToolTip(f"{p.kind}: {p.doc}")
                self.shape_labels[(node_id, direction, p.name)] = shape
                self.form.addRow(name, shape)

    def _build_edge(self, key) -> None:
        e = self.editor.doc.edge(key)
        self._heading("Edge", f"{e.from_ref} → {e.to_ref}")
        delay = QCheckBox("delayed: carries the previous step's value (t-1)")
        delay.setChecked(bool(e.delay))
        delay.toggled.connect(lambda on: self.editor.set_delay(key, 1 if on else 0))
        self.editors["delay"] = delay
        self.form.addRow(delay)
        shape = QLabel("?")
        self.shape_labels[(e.src, "out", e.src_port)] = shape
        self.form.addRow("shape", shape)

    def _build_group(self, gid: str) -> None:
        g = grouping.group(self.editor.doc.graph, gid)
        leaves = grouping.leaf_nodes(self.editor.doc.graph, gid)
        self._heading(f"Group '{gid}'", f"{len(leaves)} nodes: {', '.join(leaves[:12])}"
                      + ("…" if len(leaves) > 12 else ""))
        title = QLineEdit(g.get("title", ""))
        title.textEdited.connect(lambda t: self.editor.retitle_group(gid, t))
        self.editors["title"] = title
        self.form.addRow("title", title)
        color = QComboBox()
        color.setObjectName("group_color")
        for name, value in GROUP_COLORS:
            color.addItem(name, value)
        current = (g.get("ui") or {}).get("color") if isinstance(g.get("ui"), dict) else None
        color.setCurrentIndex(max(0, color.findData(current)))
        color.activated.connect(lambda i: self.editor.set_group_color(gid, color.itemData(i)))
        self.editors["color"] = color
        self.form.addRow("colour", color)
        expand = QPushButton("Expand" if g.get("collapsed") else "Collapse")
        expand.clicked.connect(lambda: self.editor.set_collapsed(gid, not g.get("collapsed")))
        ungroup = QPushButton("Ungroup")
        ungroup.clicked.connect(lambda: self.editor.ungroup(gid))
        self.form.addRow(expand, ungroup)

    def _build_many(self) -> None:
        n, e = self.target[1], self.target[2]
        self._heading(f"{n} node(s), {e} edge(s) selected",
                      "Ctrl+G groups the selected nodes; Del deletes; Ctrl+D duplicates.")

    def _build_graph(self) -> None:
        g = self.editor.doc.graph
        self._heading("Graph", "Nothing selected: the graph's name and its training section.")
        name = QLineEdit(g.name)
        desc = QLineEdit(g.description)
        name.textEdited.connect(lambda t: self.editor.set_meta(t, self.editor.doc.graph.description))
        desc.textEdited.connect(lambda t: self.editor.set_meta(self.editor.doc.graph.name, t))
        self.editors["name"], self.editors["description"] = name, desc
        self.form.addRow("name", name)
        self.form.addRow("description", desc)
        self.form.addRow(QLabel("<b>Training</b>"))
        training = g.training.to_dict()
        for p in TRAINING_PARAMS:
            w = make_editor(p, training.get(p.name, p.default),
                            lambda v, name=p.name: self.editor.set_training(name, v),
                            lambda text, name=p.name: self._report_param("training." + name, text))
            self.editors["training." + p.name] = w
            label = QLabel(p.name)
            label.setToolTip(p.doc)
            self.form.addRow(label, w)
            self._add_param_error("training." + p.name)

    # ---- keeping values current ---------------------------------------------------
    def _update_values(self) -> None:
        t = self.target
        doc = self.editor.doc
        values = {}
        if t[0] == "node":
            spec = doc.node(t[1])
            cls = registry.get(spec.type)
            if cls is not None:
                values = {p.name: spec.params.get(p.name, p.default) for p in cls.params}
                for p in cls.params:  # bold: the file sets it; plain: the default
                    label = self.param_labels.get(p.name)
                    if label is not None:
                        label.setText(f"<b>{p.name}</b>" if p.name in spec.params else p.name)
            title = spec.ui.get("title")
            values["title"] = title if isinstance(title, str) else ""
        elif t[0] == "edge":
            values = {"delay": bool(doc.edge(t[1]).delay)}
        elif t[0] == "group":
            values = {"title": grouping.group(doc.graph, t[1]).get("title", "")}
        elif t[0] == "graph":
            values = {"name": doc.graph.name, "description": doc.graph.description}
            values.update({"training." + k: v for k, v in doc.graph.training.to_dict().items()})
        for name, value in values.items():
            w = self.editors.get(name)
            if w is not None:
                set_editor_value(w, value)  # only where it differs, so typing is not disturbed

    def _show_analysis(self) -> None:
        a = self.editor.analysis
        for key, label in self.shape_labels.items():
            try:
                label.setText(shape_text(a.shapes.get(key)))
            except RuntimeError:  # the label's form was just replaced
                pass
        if self.problem_label is not None and self.target and self.target[0] == "node":
            probs = a.node_problems(self.target[1])
            by_param = {}
            for name, label in self.param_errors.items():
                mine = [p.text for p in probs if f"param '{name}'" in p.text]
                by_param[name] = mine
                label.checked = "; ".join(t.split(f"param '{name}': ", 1)[-1] for t in mine) or None
                self._report_param(name, None, typed=False)
            placed = {t for texts in by_param.values() for t in texts}
            try:
                self.problem_label.setText("\n".join("✗ " + p.text for p in probs if p.text not in placed))
            except RuntimeError:
                pass

