"""`deephtm-app [GRAPH] [--screenshot OUT.png]`: the visual editor for DeepHTM graph files."""
from __future__ import annotations

import argparse
import os
import sys

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="deephtm-app", description="Edit DeepHTM graph files visually.")
    ap.add_argument("graph", nargs="?", help="graph file (.json) to open")
    ap.add_argument("--screenshot", metavar="OUT.png",
                    help="open GRAPH, render the window to OUT.png and exit (works offscreen)")
    ap.add_argument("--size", default="1400x860", help="window size WxH for --screenshot (default 1400x860)")
    ap.add_argument("--train-steps", type=int, metavar="N",
                    help="train GRAPH N steps with the live run panel, write --out and --screenshot, exit")
    ap.add_argument("--out", metavar="DIR", help="run directory for --train-steps (default: runs/<graph name>)")
    return ap


def install_sigint_handler(app, window):
    """Ctrl-C in the terminal closes the editor as File > Quit does (asking about unsaved
    work); a second Ctrl-C quits at once, leaving unsaved work in the recovery file.
    Returns a function that puts the previous handler back."""
    import signal

    from PyQt6.QtCore import QTimer

    presses = []

    def on_sigint(_signum, _frame):
        presses.append(1)
        if len(presses) == 1:
            QTimer.singleShot(0, window.close)
        else:
            window.autosave()
            app.quit()

    previous = signal.signal(signal.SIGINT, on_sigint)
    # Python runs signal handlers between bytecodes only: while Qt waits for events, none
    # run, so a timer lets the interpreter in a few times a second
    wake = QTimer(app)
    wake.timeout.connect(lambda: None)
    wake.start(200)

    def restore():
        wake.stop()
        wake.deleteLater()
        signal.signal(signal.SIGINT, previous)

    return restore


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.train_steps is not None and args.graph:  # headless check of training (app/run/headless.py)
        from .run.headless import run_headless_training
        return run_headless_training(args.graph, args.train_steps, args.out, args.screenshot)
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no display needed
    from deephtm.errors import DeepHTMError
    from deephtm.graph.graphfile import load_graph

    if args.screenshot:
        if not args.graph:
            print("deephtm-app: error: --screenshot needs a GRAPH", file=sys.stderr)
            return EXIT_USER_ERROR
        try:
            load_graph(args.graph)  # a bad file: one line, no window
            w, h = (int(v) for v in args.size.lower().split("x"))
        except DeepHTMError as exc:
            print(f"deephtm-app: error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        except ValueError:
            print(f"deephtm-app: error: --size must be WxH, got {args.size!r}", file=sys.stderr)
            return EXIT_USER_ERROR

    from PyQt6.QtWidgets import QApplication

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("deephtm-app")
    app.setOrganizationName("DeepHTM")
    if args.screenshot:
        import tempfile

        from PyQt6.QtCore import QSettings

        from .autosave import RecoveryStore

        with tempfile.TemporaryDirectory(prefix="deephtm-app-") as scratch:  # keep the user's settings
            window = MainWindow(QSettings(os.path.join(scratch, "settings.ini"), QSettings.Format.IniFormat),
                                RecoveryStore(scratch))
            window._autosave_timer.stop()
            window.open_file(args.graph, ask=False)
            window.resize(w, h)
            window.show()
            try:
                window.screenshot(args.screenshot)
            except OSError as exc:
                print(f"deephtm-app: error: {exc}", file=sys.stderr)
                return EXIT_USER_ERROR
            window.close()
        return 0
    window = MainWindow()
    window.show()
    restore = install_sigint_handler(app, window)
    try:
        if args.graph:
            window.open_file(args.graph, ask=False)
        window.offer_recovery()
        return app.exec()
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
