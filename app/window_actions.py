"""The editor window's editing actions: delete, clipboard, duplicate, groups, layout and
the canvas context menu. A mixin of MainWindow, split out to keep files small."""
from __future__ import annotations

import json

from PyQt6.QtCore import QMimeData, QPointF
from PyQt6.QtWidgets import QApplication, QInputDialog, QMenu

from . import grouping
from .edits import FRAGMENT_MIME, fragment

PASTE_OFFSET = 40.0
TOO_DEEP = "can't paste: the clipboard's text is nested too deeply to be a graph fragment"


class EditActionsMixin:
    # ---- editing actions ----------------------------------------------------------------
    def _add_at_center(self, type_name: str) -> None:
        c = self.view.mapToScene(self.view.viewport().rect().center())
        self.view.drop_node(type_name, c)

    def delete_selected(self) -> None:
        nodes = self.scene.selected_node_ids()
        edges = self.scene.selected_edge_keys()
        if nodes or edges:
            self.editor.delete(nodes, edges)

    def select_all(self) -> None:
        for it in list(self.scene.nodes.values()) + list(self.scene.collapsed.values()):
            if it.isVisible():
                it.setSelected(True)

    def copy(self) -> bool:
        ids = self.scene.selected_node_ids()
        if not ids:
            return False
        frag = fragment(self.editor.doc, ids)
        mime = QMimeData()
        data = json.dumps(frag).encode("utf-8")
        mime.setData(FRAGMENT_MIME, data)
        mime.setText(json.dumps(frag, indent=1))
        QApplication.clipboard().setMimeData(mime)
        self._paste_count = 0
        return True

    def cut(self) -> None:
        if self.copy():
            self.delete_selected()

    def paste(self) -> list[str]:
        mime = QApplication.clipboard().mimeData()
        if mime is None:
            return []
        if mime.hasFormat(FRAGMENT_MIME):
            raw = bytes(mime.data(FRAGMENT_MIME)).decode("utf-8")
        elif mime.hasText():
            raw = mime.text()
        else:
            return []
        try:
            frag = json.loads(raw)
            if not isinstance(frag, dict) or not isinstance(frag.get("nodes"), list):
                return []
        except ValueError:
            return []
        except RecursionError:  # text from elsewhere, nested deeper than Python parses
            self.statusBar().showMessage(TOO_DEEP, 8000)
            return []
        self._paste_count += 1
        at = self.view.mouse_at()
        if at is not None:
            # paste where the mouse is (or was last over the canvas, when Paste comes from
            # the menu): the fragment's top-left corner goes there
            try:
                xs = [float(n.get("ui", {}).get("x", 0)) for n in frag["nodes"]] or [0.0]
                ys = [float(n.get("ui", {}).get("y", 0)) for n in frag["nodes"]] or [0.0]
            except (AttributeError, TypeError, ValueError):
                xs = ys = [0.0]
            target = self.view.mapToScene(at)
            if (round(target.x()), round(target.y())) == getattr(self, "_last_paste_at", None):
                target += QPointF(PASTE_OFFSET, PASTE_OFFSET) * (self._paste_count - 1)  # not on the last copy
            else:
                self._last_paste_at = (round(target.x()), round(target.y()))
                self._paste_count = 1
            return self._paste_fragment(frag, target.x() - min(xs), target.y() - min(ys))
        offset = PASTE_OFFSET * self._paste_count
        return self._paste_fragment(frag, offset, offset)

    def _paste_fragment(self, frag: dict, dx: float, dy: float | None = None) -> list[str]:
        try:
            new_ids = self.editor.paste(frag, dx, dx if dy is None else dy)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:  # text from elsewhere
            self.report_error(f"can't paste: {exc}")
            return []
        except RecursionError:
            self.statusBar().showMessage(TOO_DEEP, 8000)
            return []
        self.scene.select_ids(new_ids)
        return new_ids

    def duplicate(self) -> list[str]:
        ids = self.scene.selected_node_ids()
        if not ids:
            return []
        return self._paste_fragment(fragment(self.editor.doc, ids), PASTE_OFFSET)

    def ask_group_title(self, default: str) -> str | None:
        title, ok = QInputDialog.getText(self, "Group", "Name of the region:", text=default)
        return title if ok else None

    def group_selected(self) -> str | None:
        members = self.scene.selected_members()
        if not members:
            self.statusBar().showMessage("Select the nodes to group first.", 5000)
            return None
        title = self.ask_group_title("region")
        if title is None:
            return None
        gid = self.editor.group(members, title)
        return gid

    def _selected_group(self) -> str | None:
        g = self.editor.doc.graph
        for key in self.scene.selected_members():
            if grouping.group(g, key) is not None:
                return key
        parents = grouping.parent_map(g)
        for key in self.scene.selected_members():
            if key in parents:
                return parents[key]
        return None

    def ungroup_selected(self) -> None:
        gid = self._selected_group()
        if gid:
            self.editor.ungroup(gid)

    def toggle_collapse_selected(self) -> None:
        gid = self._selected_group()
        if gid:
            g = grouping.group(self.editor.doc.graph, gid)
            self.editor.set_collapsed(gid, not g.get("collapsed"))
            self.scene.select_ids([gid])

    def auto_layout(self) -> None:
        selected = set(self.scene.selected_node_ids())
        self.editor.auto_layout(self.scene.node_heights(), only=selected if len(selected) > 1 else None)
        if len(selected) <= 1:
            self.view.fit()

    def _context_menu(self, global_pos, item, scene_pos, view_pos) -> None:
        from .canvas.edge_item import EdgeItem
        from .canvas.node_item import BoxItem, CollapsedGroupItem

        if isinstance(item, (BoxItem, EdgeItem)) and not item.isSelected():
            self.scene.clearSelection()
            item.setSelected(True)
        menu = QMenu(self)
        if isinstance(item, EdgeItem):
            key = item.key
            delayed = menu.addAction("Delayed: previous step's value (t-1)")
            delayed.setCheckable(True)
            delayed.setChecked(bool(item.delay))
            delayed.triggered.connect(lambda on: self.editor.set_delay(key, 1 if on else 0))
            menu.addAction("Delete edge", self.delete_selected)
        elif isinstance(item, BoxItem):
            if isinstance(item, CollapsedGroupItem):
                gid = item.key
                menu.addAction("Expand group", lambda: self.editor.set_collapsed(gid, False))
            menu.addAction("Duplicate", self.duplicate)
            menu.addAction("Copy", self.copy)
            menu.addAction("Delete", self.delete_selected)
            menu.addSeparator()
            menu.addAction("Group selection…", self.group_selected)
            if self._selected_group():
                menu.addAction("Collapse/expand its group", self.toggle_collapse_selected)
                menu.addAction("Ungroup", self.ungroup_selected)
            if len(self.scene.selected_node_ids()) > 1:
                menu.addAction("Auto-layout selection", self.auto_layout)
        else:
            menu.addAction("Add node…", lambda: self.view.open_search(view_pos, scene_pos))
            menu.addAction("Paste", self.paste)
            menu.addAction("Auto-layout", self.auto_layout)
            menu.addAction("Fit to view", self.view.fit)
        menu.exec(global_pos)
