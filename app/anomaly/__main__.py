"""python -m app.anomaly FILE.csv [--windows W.json] [--graph G.json] [--screenshot OUT.png]"""
import argparse
import sys

from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from .view import DEFAULT_GRAPH, AnomalyView


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.anomaly", description="Anomaly view of a CSV stream")
    ap.add_argument("csv", nargs="?", help="CSV file with timestamp and value columns")
    ap.add_argument("--windows", help="NAB windows JSON to shade the labelled anomalies")
    ap.add_argument("--graph", default=str(DEFAULT_GRAPH), help="anomaly graph file")
    ap.add_argument("--screenshot", metavar="OUT.png", help="run to the end, save a picture, quit")
    args = ap.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    view = AnomalyView(graph=args.graph)
    view.resize(1400, 700)
    view.setWindowTitle("DeepHTM anomaly view")
    view.show()
    status = {"code": 0}
    if args.screenshot:
        def save(_=None):
            view.scroll.setValue(view.scroll.maximum())
            app.processEvents()
            ok = view.grab().save(args.screenshot)
            status["code"] = 0 if ok else 1
            print(f"screenshot {'saved to ' + args.screenshot if ok else 'could not be saved'}: {view.status.text()}")
            app.quit()

        def failed(message):
            print(f"error: {message}", file=sys.stderr)
            status["code"] = 2
            app.quit()

        view.detection_finished.connect(save)
        view.detection_failed.connect(failed)
        if not args.csv:
            QTimer.singleShot(0, save)
    if args.csv:
        try:
            view.open_csv(args.csv, windows=args.windows, run=True)
        except Exception as exc:  # a bad windows file: say so in one line
            print(f"error: {exc}", file=sys.stderr)
            return 2
    app.exec()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main())
