"""What the live plots look at, found from a resolved graph: the prediction and its
target, the first spatial pooler and temporal memory, anomaly scores, image-shaped ports."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..graph.resolve import Resolved

Key = tuple  # (node id, port name)
MAX_RASTER_UNITS = 2048  # wider rasters show their first units only


def is_image_shape(shape) -> bool:
    """[H, W], [C, H, W] or [H, W, C] with C in 1, 3, 4 and H, W > 1."""
    if shape is None:
        return False
    shape = tuple(shape)
    if len(shape) == 2:
        return min(shape) > 1
    if len(shape) == 3:
        return (shape[0] in (1, 3, 4) and min(shape[1:]) > 1) or (shape[2] in (1, 3, 4) and min(shape[:2]) > 1)
    return False


@dataclass
class Probes:
    pred: Key | None = None  # what the graph predicts
    target: Key | None = None  # what it should have predicted
    sp: str | None = None  # spatial pooler node id
    sp_columns: int = 0
    sp_winners: int = 0
    tm: str | None = None  # temporal memory node id
    tm_columns: int = 0
    tm_cells: int = 0  # cells per column
    anomalies: list[tuple[str, Key]] = field(default_factory=list)  # (label, key)
    images: list[tuple[str, Key]] = field(default_factory=list)  # (label, key), newest value shown
    main_metric: str = ""
    shapes: dict = field(default_factory=dict)  # key -> per-sample shape, for every output

    @classmethod
    def find(cls, r: Resolved) -> "Probes":
        p = cls()
        for nid in r.order:
            for port, shape in r.nodes[nid].out_shapes.items():
                p.shapes[(nid, port)] = tuple(shape)
        # The prediction: the first loss (else metric) node with 'pred' and 'target' inputs.
        candidates = [n for n in r.order if r.nodes[n].cls.is_loss] + \
                     [n for n in r.order if r.nodes[n].cls.is_metric]
        for nid in candidates:
            inb = r.inbound[nid]
            if "pred" in inb and "target" in inb:
                p.pred = (inb["pred"].src, inb["pred"].src_port)
                p.target = (inb["target"].src, inb["target"].src_port)
                break
        # The first spatial pooler and temporal memory, and anomaly scores, by the role their
        # node type declares (Node.live_role says what each role provides).
        for nid in r.order:
            rn = r.nodes[nid]
            role = rn.cls.live_role
            if role == "sp" and p.sp is None:
                p.sp, p.sp_columns = nid, int(rn.out_shapes["columns"][0])
                p.sp_winners = int(rn.params["winners"])
            elif role == "tm" and p.tm is None:
                p.tm, p.tm_columns = nid, int(rn.in_shapes["columns"][0])
                p.tm_cells = int(rn.params["cells_per_column"])
                p.anomalies.append((f"{nid}.anomaly", (nid, "anomaly")))
            elif role == "anomaly" and "score" in rn.out_shapes:
                p.anomalies.append((f"{nid}.score", (nid, "score")))
        # Image panels: the input (a source's image output, else the target) and the prediction.
        for nid in r.order:
            if r.nodes[nid].cls.category == "source" and not p.images:
                for port, shape in r.nodes[nid].out_shapes.items():
                    if is_image_shape(shape) and (nid, port) != p.target:
                        p.images.append((f"input {nid}.{port}", (nid, port)))
                        break
        if not p.images and p.target and is_image_shape(p.shapes.get(p.target)):
            p.images.append((f"actual {p.target[0]}.{p.target[1]}", p.target))
        if p.pred and is_image_shape(p.shapes.get(p.pred)):
            p.images.append((f"predicted {p.pred[0]}.{p.pred[1]}", p.pred))
        p.main_metric = r.graph.training.main_metric
        if not p.main_metric:
            for nid in r.order:
                rn = r.nodes[nid]
                if rn.cls.is_metric:
                    p.main_metric = rn.params.get("name") or nid
                    break
        return p
