"""The run panel: train the editor's graph with the CLI's Trainer in a worker process (or,
by setting, a thread) and watch it learn. The editor docks it and calls set_graph(); show_node_view(node_id) opens a
live view of one node's activity."""
from __future__ import annotations

import math
from pathlib import Path

from PyQt6.QtCore import QCoreApplication, Qt, QTimer, pyqtSignal
from PyQt6.QtWidgets import (QComboBox, QFileDialog, QGridLayout, QHBoxLayout, QLabel, QLineEdit,
                             QPushButton, QSizePolicy, QSpinBox, QTabBar, QTabWidget, QVBoxLayout, QWidget)

from deephtm.train import rundir
from deephtm.train.checkpoint import checkpoint_path
from deephtm.errors import DeepHTMError
from deephtm.graph.graphfile import Graph
from deephtm.graph.resolve import resolve
from deephtm.live.probes import Probes
from deephtm.graph.training import TRAINING_PARAMS

from .node_view import NodeActivityView
from .plots import LivePlots
from .worker import RunOptions, default_worker_kind, make_worker

REFRESH_HZ = 25  # live plots aim at 20 Hz or more; data comes every 45 ms, about 22 frames/s (at 50 ms, 19.5-19.9 were measured); each tick also drains the worker's messages
IDLE, STARTING, RUNNING, PAUSED, STOPPING = "idle", "starting", "running", "paused", "stopping"
TRAIN_TIP = "train from scratch in a new run directory (an earlier run there is kept: the new one goes to DIR-2, DIR-3, ...)"
MAX_HISTORY_LINES = 200_000  # metrics.jsonl lines read back when a run resumes


def default_run_dir(graph: Graph) -> str:
    """The CLI's default: runs/<graph file name>."""
    return str(Path.cwd() / rundir.default_run_dir(graph.path, graph.name or "untitled"))


class RunPanel(QWidget):
    node_activity_requested = pyqtSignal(str)  # emit (or call show_node_view) to open a node's live view
    node_view_shown = pyqtSignal(str)  # a node view's tab was opened or raised (the editor shows the dock)
    state_changed = pyqtSignal(str)
    training_finished = pyqtSignal(dict)  # summary
    training_failed = pyqtSignal(str)  # the one-line error shown

    def __init__(self, parent=None, worker: str | None = None):
        super().__init__(parent)
        self.setObjectName("RunPanel")
        self.graph: Graph | None = None
        # "process" (default) or "thread"; DEEPHTM_APP_WORKER sets the default.
        self.worker_kind = worker or default_worker_kind()
        self.thread = None  # the current worker (TrainingProcessWorker or TrainingThread)
        self.state = IDLE
        self.probes = None
        self.last_summary: dict | None = None
        self.last_error: str | None = None
        self.graph_problem: str | None = None  # why the editor's graph can't train now
        self._plots_from_run = False  # the plots show a run (kept after it ends) rather than a preview
        self.node_views: dict[str, NodeActivityView] = {}
        self._run_dir_edited = False
        self._step_now = 0
        self._target = 0
        self._metrics: dict = {}
        self._last_checkpoint: tuple[int, str] | None = None
        self._build()
        self.node_activity_requested.connect(self.show_node_view)
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)  # a coarse timer drifts below the rate
        self.timer.setInterval(int(1000 / REFRESH_HZ))
        self.timer.timeout.connect(self._tick)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self._update_controls()

    # ---- widgets -----------------------------------------------------------------------------
    def _button(self, text, tip, slot) -> QPushButton:
        b = QPushButton(text)
        b.setToolTip(tip)
        b.clicked.connect(slot)
        return b

    def _build(self) -> None:
        self.train_btn = self._button("Train", TRAIN_TIP, lambda: self.start_training())
        self.pause_btn = self._button("Pause", "hold training after the current step", self.pause)
        self.resume_btn = self._button("Resume", "go on after Pause, or continue the run directory's checkpoint",
                                       self.resume)
        # clicked(bool) would reach step(n) as 0 steps: a lambda drops the argument
        self.step_btn = self._button("Step", "train one step, then hold", lambda: self.step())
        self.stop_btn = self._button("Stop", "stop after the current step and save a checkpoint", self.stop)
        self.device_box = QComboBox()
        self.device_box.addItems(["auto", "cpu", "cuda"])
        self.device_box.setToolTip("auto picks cuda when torch sees one, else cpu")
        self.steps_box = QSpinBox()
        self.steps_box.setRange(1, 10**9)
        self.steps_box.setSingleStep(1000)
        self.steps_box.setToolTip("train until this many steps in total (as the CLI's --steps)")
        self.lr_edit = QLineEdit()
        self.lr_edit.setToolTip("learning-rate override; empty: the graph's")
        self.lr_edit.setMaximumWidth(90)
        self.run_dir_edit = QLineEdit()
        self.run_dir_edit.setToolTip("run directory, as the CLI's --out: metrics.jsonl, summary.json, checkpoint/")
        self.run_dir_edit.textEdited.connect(self._run_dir_typed)
        self.save_btn = self._button("Save checkpoint", "save a checkpoint now (in the run directory)",
                                     self.save_checkpoint)
        self.load_btn = self._button("Load checkpoint…", "pick a run directory to continue with Resume",
                                     lambda: self.load_checkpoint())
        self.runs_box = QComboBox()
        self.runs_box.setToolTip("this graph's earlier runs with their final metrics: choose one to draw its "
                                 "loss and metric curves dashed under the live ones")
        self.runs_box.setMinimumContentsLength(24)
        self.runs_box.activated.connect(self._compare_with_run)
        self.node_box = QComboBox()
        self.node_box.setToolTip("node whose outputs to watch live")
        self.view_btn = self._button("Node view", "open a live view of the chosen node's activity",
                                     lambda: self.show_node_view(self.node_box.currentText()))
        self.status = QLabel("no graph")
        # Its text changes every frame; its size hint must not re-lay out the plots.
        self.status.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #ff6b5e; font-weight: bold;")
        self.error_label.hide()
        self.plots = LivePlots()

        row1 = QHBoxLayout()
        for w in (self.train_btn, self.pause_btn, self.resume_btn, self.step_btn, self.stop_btn):
            row1.addWidget(w)
        row1.addSpacing(16)
        for label, w in (("device", self.device_box), ("steps", self.steps_box), ("lr", self.lr_edit)):
            row1.addWidget(QLabel(label))
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        row2.addWidget(QLabel("run dir"))
        row2.addWidget(self.run_dir_edit, 1)
        row2.addWidget(self.save_btn)
        row2.addWidget(self.load_btn)
        row2.addWidget(self.runs_box)
        row2.addSpacing(16)
        row2.addWidget(self.node_box)
        row2.addWidget(self.view_btn)
        top = QGridLayout()
        top.addLayout(row1, 0, 0)
        top.addLayout(row2, 1, 0)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(self.error_label)
        # node views are tabs beside the plots: docked, never a window that slips behind the editor
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setTabsClosable(True)
        self.tabs.addTab(self.plots, "Training")
        self.tabs.tabBar().setTabButton(0, QTabBar.ButtonPosition.RightSide, None)  # always there
        self.tabs.tabBar().setTabButton(0, QTabBar.ButtonPosition.LeftSide, None)
        self.tabs.tabCloseRequested.connect(self._close_tab)
        lay.addWidget(self.tabs, 1)

    # ---- the editor's side ---------------------------------------------------------------------
    def set_graph(self, graph: Graph | None) -> None:
        """The document to train next. A running training keeps its own copy."""
        first = self.graph is None
        self.graph = graph
        if graph is not None:
            cfg = graph.training
            if first or self.state == IDLE:
                self.steps_box.setValue(max(1, cfg.steps))
                self.device_box.setCurrentText(cfg.device)
            self.lr_edit.setPlaceholderText(f"{cfg.lr:g}")
            if not self._run_dir_edited:
                self.run_dir_edit.setText(default_run_dir(graph))
            current = self.node_box.currentText()
            self.node_box.clear()
            self.node_box.addItems([n.id for n in graph.nodes])
            if current:
                self.node_box.setCurrentText(current)
            if self.state == IDLE and not self._plots_from_run:
                self._preview(graph)
            if self.state == IDLE:
                self.refresh_runs()
        self._update_controls()
        self._show_idle_status()

    def set_problem(self, text: str | None) -> None:
        """Why the editor's graph can't train (its first problem), or None. Train waits for a fix."""
        self.graph_problem = text
        self._update_controls()
        self._show_idle_status()

    def new_document(self) -> None:
        """Another file was opened: stop a training of the one before and forget its run, plots,
        node views and errors; set_graph() then brings the new graph."""
        old, self.thread = self.thread, None
        if old is not None:
            try:
                old.signals.disconnect()  # nothing of the old run may reach the new document's panel
            except TypeError:  # nothing was connected
                pass
            old.close()
            old.release()
            old.deleteLater()
        self.timer.stop()
        for view in list(self.node_views.values()):
            view.close()
        self.graph = None
        self.probes = None
        self.last_summary = None
        self._metrics = {}
        self._step_now = self._target = 0
        self._last_checkpoint = None
        self._run_dir_edited = False
        self._plots_from_run = False
        self.lr_edit.clear()
        self.plots.configure(None)
        self.plots.set_overlay(None)
        self.tabs.setCurrentWidget(self.plots)
        self._clear_error()
        self._set_state(IDLE)
        self._show_idle_status()

    def _preview(self, graph: Graph) -> None:
        """Title the plots for this graph before it trains (which node is the SP, the TM...)."""
        try:
            probes = Probes.find(resolve(graph))
        except Exception:  # noqa: BLE001 - a graph that doesn't resolve: the problems list says why
            probes = None
        if probes != self.plots.probes:
            self.plots.configure(probes)

    def _show_idle_status(self) -> None:
        if self.state != IDLE or self.thread is not None:
            return
        if self.graph is None:
            self.status.setText("no graph")
        elif self.graph_problem:
            self.status.setText(f"can't train until the graph is fixed: {self.graph_problem}")
        else:
            self.status.setText("ready")

    def set_run_dir(self, path: str) -> None:
        self.run_dir_edit.setText(str(path))
        self._run_dir_edited = True
        self._update_controls()

    def run_dir(self) -> str:
        return self.run_dir_edit.text().strip() or (default_run_dir(self.graph) if self.graph else "runs/untitled")

    def refresh_runs(self) -> None:
        """List the graph's runs (runs/NAME, runs/NAME-2, ...) with their final metrics."""
        current = self.runs_box.currentData()
        self.runs_box.clear()
        self.runs_box.addItem("compare with an earlier run…", None)
        for path in rundir.sibling_runs(self.run_dir()):
            self.runs_box.addItem(rundir.describe_run(path), str(path))
        index = self.runs_box.findData(current)
        self.runs_box.setCurrentIndex(max(index, 0))

    def _compare_with_run(self, index: int) -> None:
        path = self.runs_box.itemData(index)
        self.plots.set_overlay(rundir.read_metrics(path, max_lines=MAX_HISTORY_LINES) if path else None)

    def _run_dir_typed(self, _text) -> None:
        self._run_dir_edited = True
        self._update_controls()

    # ---- controls --------------------------------------------------------------------------------
    def start_training(self, resume: bool = False, paused_after: int | None = None) -> bool:
        """Train the current graph (resume: continue the run directory's checkpoint).
        Returns False, with the reason shown, when it cannot start."""
        if self.state != IDLE or self.graph is None:
            return False
        if self.graph_problem:
            self._show_error(f"can't train: {self.graph_problem}")
            return False
        try:
            lr = self._lr_override()
        except DeepHTMError as exc:
            self._show_error(str(exc))
            return False
        self._clear_error()
        out = self.run_dir()
        if not resume:  # a new run never replaces an earlier one, as with `deephtm train`
            fresh = str(rundir.fresh_run_dir(out))
            if fresh != out:
                self.run_dir_edit.setText(fresh)
                self._run_dir_edited = True
                out = fresh
        options = RunOptions(out=out, steps=self.steps_box.value(), device=self.device_box.currentText(),
                             lr=lr, resume=resume, start_paused_after=paused_after)
        self._target = options.steps
        self._last_checkpoint = None
        old = self.thread
        if old is not None:  # done: drop its model (memory), its process and its Qt object
            old.release()
            old.deleteLater()
        try:
            self.thread = t = make_worker(self.worker_kind, self.graph, options, self)
        except (OSError, ValueError) as exc:  # e.g. the OS refused the pipes for a new process
            self.thread = None
            self._show_error(f"training could not start: {exc}")
            return False
        t.signals.started.connect(self._on_started)
        t.signals.sampled.connect(self._on_sampled)
        t.signals.paused.connect(self._on_paused)
        t.signals.resumed.connect(self._on_resumed)
        t.signals.checkpointed.connect(self._on_checkpoint)
        t.signals.finished.connect(self._on_finished)
        t.signals.failed.connect(self._on_failed)
        t.watch_nodes(self.node_views)
        self._set_state(STARTING)
        self.status.setText(f"building the model on {options.device}…")
        try:
            t.start()
        except (OSError, RuntimeError) as exc:  # no process could be started: say so, stay usable
            self.thread = None
            self._set_state(IDLE)
            self._show_error(f"training could not start: {exc}")
            return False
        self.timer.start()
        return True

    def pause(self) -> None:
        if self.state in (RUNNING, STARTING) and self.thread:
            self.thread.request_pause()

    def resume(self) -> None:
        if self.state == PAUSED and self.thread:
            self.thread.request_resume()
        elif self.state == IDLE and rundir.checkpoint_step(self.run_dir()) is not None:
            self.start_training(resume=True)

    def step(self, n: int = 1) -> None:
        n = max(1, int(n))
        if self.state == PAUSED and self.thread:
            self.thread.request_step(n)
        elif self.state == IDLE:
            self.start_training(resume=rundir.checkpoint_step(self.run_dir()) is not None, paused_after=n)

    def stop(self) -> None:
        if self.thread and self.state in (STARTING, RUNNING, PAUSED):
            self._set_state(STOPPING)
            self.thread.request_stop()

    def save_checkpoint(self) -> None:
        if self.thread and self.state in (RUNNING, PAUSED):
            self.thread.request_save()
        elif self.state == IDLE and self.thread and self.thread.trainer is not None and self.thread.error is None:
            try:
                path = self.thread.trainer.save()  # the thread is done: the GUI thread may touch it
            except (DeepHTMError, OSError) as exc:
                self._show_error(f"checkpoint not saved: {exc}")
                return
            self.status.setText(f"checkpoint saved: {path}")

    def load_checkpoint(self, run_dir: str | None = None) -> bool:
        """Choose a run directory whose checkpoint Resume continues."""
        if self.state != IDLE:
            return False
        if run_dir is None:
            run_dir = QFileDialog.getExistingDirectory(self, "Run directory with a checkpoint", self.run_dir())
            if not run_dir:
                return False
        step = rundir.checkpoint_step(run_dir)
        if step is None:
            self._show_error(f"{checkpoint_path(run_dir)}: no checkpoint found")
            return False
        self.set_run_dir(run_dir)
        self._clear_error()
        self.status.setText(f"checkpoint at step {step:,} in {run_dir}; Resume continues it")
        return True

    def show_node_view(self, node_id: str) -> NodeActivityView | None:
        """Open (or raise) a live view of one node's outputs."""
        if not node_id:
            return None
        view = self.node_views.get(node_id)
        if view is None:
            view = NodeActivityView(node_id)
            view.closed.connect(self._node_view_closed)
            view.configure(self.probes)
            self.node_views[node_id] = view
            self.tabs.addTab(view, node_id)
            self.tabs.setTabToolTip(self.tabs.indexOf(view), view.windowTitle())
            if self.thread:
                self.thread.watch_nodes(self.node_views)
        self.tabs.setCurrentWidget(view)
        self.node_view_shown.emit(node_id)
        return view

    def _close_tab(self, index: int) -> None:
        view = self.tabs.widget(index)
        if isinstance(view, NodeActivityView):
            view.close()  # emits closed

    def _node_view_closed(self, node_id: str) -> None:
        view = self.node_views.pop(node_id, None)
        if view is not None:
            self.tabs.removeTab(self.tabs.indexOf(view))
            view.deleteLater()
        if self.thread:
            self.thread.watch_nodes(self.node_views)

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop a running training and wait for its worker (the app is closing); a process that
        does not end in time is terminated."""
        if self.thread is not None:
            self.thread.close(timeout_ms)
        self.timer.stop()

    # ---- worker signals ----------------------------------------------------------------------------
    def _on_started(self, info: dict) -> None:
        self.probes = info["probes"]
        self._plots_from_run = True
        self.plots.configure(self.probes)
        if info.get("start_step", 0) > 0:
            self._load_history(self.thread.options.out, info["start_step"])
        for view in self.node_views.values():
            view.configure(self.probes)
        self._step_now = info.get("start_step", 0)
        self._target = info.get("steps", self._target)
        self._device = info.get("device", "")
        if self.state == STARTING:
            self._set_state(RUNNING)

    def _on_sampled(self, payload: dict) -> None:
        steps = payload.get("steps")  # the status line first: a failing view must not freeze it
        if steps is not None and len(steps):
            self._step_now = int(steps[-1])
        for step, metrics in payload.get("logs", ()):
            self._step_now = max(self._step_now, step)
            self._metrics = metrics
        self.plots.feed(payload)
        for view in self.node_views.values():
            view.feed(payload)  # catches its own failures and shows them in the view

    def _on_paused(self, step: int) -> None:
        self._step_now = step
        if self.state in (RUNNING, STARTING):
            self._set_state(PAUSED)

    def _on_resumed(self, step: int) -> None:
        if self.state == PAUSED:
            self._set_state(RUNNING)

    def _on_checkpoint(self, step: int, path: str) -> None:
        self._last_checkpoint = (step, path)

    def _on_finished(self, summary: dict) -> None:
        self.last_summary = summary
        self._step_now = summary["steps"]
        self._finish_thread()
        self._set_state(IDLE)
        self.refresh_runs()
        self.training_finished.emit(summary)

    def _on_failed(self, message: str) -> None:
        self._finish_thread()
        self._set_state(IDLE)
        self._show_error(message)
        self.training_failed.emit(message)

    def _finish_thread(self) -> None:
        if self.thread is not None:
            self.thread.wait(5000)
            if self.thread.kind == "process":
                self.thread.release()  # it sent its last message: make sure it is gone
        self._tick()
        self.timer.stop()

    # ---- drawing -------------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self.thread is not None:
            self.thread.poll()  # a process's messages become the worker's signals here
        self.plots.refresh()
        for view in self.node_views.values():
            view.refresh()
        self._show_status()

    def _show_status(self) -> None:
        if self.state == IDLE and self.thread is None:
            return
        parts = [self.state, f"step {self._step_now:,} / {self._target:,}"]
        m = self._metrics
        if self.state == IDLE and self.last_summary and self.thread and self.thread.error is None:
            parts.append(f"{self.last_summary['steps_per_s']:,.0f} steps/s")
        elif "steps_per_s" in m:
            parts.append(f"{m['steps_per_s']:,.0f} steps/s")
        for k, v in m.items():
            if k != "steps_per_s" and isinstance(v, (int, float)) and math.isfinite(v):
                parts.append(f"{k} {v:.4g}")
        if getattr(self, "_device", ""):
            parts.append(self._device)
        if self._last_checkpoint is not None and self.state != IDLE:
            parts.append(f"checkpoint at step {self._last_checkpoint[0]:,}")
        if self.state == IDLE and self.thread is not None and self.thread.error is None:
            parts.append(f"run in {self.thread.options.out}")
        self.status.setText(" · ".join(parts))

    def _load_history(self, run_dir: str, upto: int) -> None:
        """Put the earlier sessions' loss and metric curves back (metrics.jsonl, the CLI's log)."""
        records = rundir.read_metrics(run_dir, upto=upto, max_lines=MAX_HISTORY_LINES)
        logs = [(rec["step"], rec) for rec in records]
        self.plots.feed({"logs": logs})

    # ---- state --------------------------------------------------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self._update_controls()
        self._show_status()
        self.state_changed.emit(state)

    def _update_controls(self) -> None:
        s = self.state
        has_graph = self.graph is not None and not self.graph_problem
        can_continue = s == IDLE and has_graph and rundir.checkpoint_step(self.run_dir()) is not None
        self.train_btn.setEnabled(s == IDLE and has_graph)
        self.train_btn.setToolTip(f"can't train: {self.graph_problem}" if self.graph_problem and s == IDLE
                                  else TRAIN_TIP)
        self.pause_btn.setEnabled(s in (STARTING, RUNNING))
        self.resume_btn.setEnabled(s == PAUSED or can_continue)
        self.step_btn.setEnabled(s == PAUSED or (s == IDLE and has_graph))
        self.stop_btn.setEnabled(s in (STARTING, RUNNING, PAUSED))
        self.save_btn.setEnabled(s in (RUNNING, PAUSED) or (s == IDLE and self.thread is not None
                                                             and self.thread.trainer is not None
                                                             and self.thread.error is None))
        self.load_btn.setEnabled(s == IDLE)
        for w in (self.device_box, self.steps_box, self.lr_edit, self.run_dir_edit):
            w.setEnabled(s == IDLE)

    def _lr_override(self) -> float | None:
        text = self.lr_edit.text().strip()
        if not text:
            return None
        lr = next(p for p in TRAINING_PARAMS if p.name == "lr")
        try:
            value = float(text)
        except ValueError:
            raise DeepHTMError(f"'{text}' is not a number", where="run panel: lr") from None
        return lr.check(value, where="run panel: lr")

    def _show_error(self, message: str) -> None:
        self.last_error = message
        self.error_label.setText(message)
        self.error_label.show()

    def _clear_error(self) -> None:
        self.last_error = None
        self.error_label.hide()
