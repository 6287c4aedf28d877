"""Colours and sizes shared by the canvas items."""
from PyQt6.QtGui import QColor, QFont

KIND_COLORS = {
    "tensor": QColor("#4ea3e6"),
    "sdr": QColor("#f0a43a"),
    "image": QColor("#b07be8"),
    "scalar": QColor("#6cc96c"),
    "loss": QColor("#e5656b"),
}
UNKNOWN_KIND = QColor("#9aa0a6")

CANVAS_BG = QColor("#1f2226")
GRID_MINOR = QColor("#272b30")
GRID_MAJOR = QColor("#30353b")
NODE_BG = QColor("#2d3238")
NODE_HEADER = {  # header colour by node category
    "source": QColor("#2f6f4f"),
    "encoder": QColor("#2f5a7a"),
    "htm": QColor("#7a4f2a"),
    "decoder": QColor("#3f4f8a"),
    "loss": QColor("#7a2f3a"),
    "metric": QColor("#5a4f7a"),
    "group": QColor("#4a4f57"),
}
NODE_HEADER_DEFAULT = QColor("#4a4f57")
NODE_BORDER = QColor("#15171a")
SELECTED = QColor("#ffd75e")
ERROR = QColor("#ff4d4f")
TEXT = QColor("#e8eaed")
TEXT_DIM = QColor("#a8adb3")
SUBTITLE = QColor("#dde2e8")  # the type line sits on the coloured header: it needs the contrast
GROUP_FILL = QColor(120, 160, 220, 28)
GROUP_BORDER = QColor(120, 160, 220, 140)
DELAY_COLOR = QColor("#c9a7ff")

NODE_WIDTH = 190.0
HEADER_HEIGHT = 40.0
PORT_ROW = 20.0
PORT_RADIUS = 5.5
SUMMARY_ROW = 16.0  # the line under the ports listing the params a node sets
GRID = 20
LOD_TEXT = 0.33  # below this zoom, items are drawn without text or antialiasing


def kind_color(kind: str) -> QColor:
    return KIND_COLORS.get(kind, UNKNOWN_KIND)


def node_height(n_inputs: int, n_outputs: int) -> float:
    return HEADER_HEIGHT + max(n_inputs, n_outputs, 1) * PORT_ROW + 10


def font(size: float = 9, bold: bool = False) -> QFont:
    f = QFont()
    f.setPointSizeF(size)
    f.setBold(bold)
    return f
