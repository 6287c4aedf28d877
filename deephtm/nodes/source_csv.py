"""source.csv: one numeric column of a CSV file, normalized, one row per step."""
import torch

from ..csvdata import parse_floats, read_columns, resolve_path
from ..errors import GraphError, node_where
from ..node import Node
from ..spec import Param, Port


class CSVSource(Node):
    type_name = "source.csv"
    category = "source"
    doc = ("One numeric column of a CSV file, one row per step (looping at the end). The path is "
           "relative to the graph file. 'target' is the value 'horizon' rows ahead.")
    inputs = ()
    outputs = (Port("value", "tensor", "the current normalized value, shape [1]"),
               Port("target", "tensor", "the normalized value horizon rows ahead, shape [1]"))
    params = (
        Param("path", "str", "data.csv", "CSV file, relative to the graph file"),
        Param("column", "str", "value", "column to read"),
        Param("skip_rows", "int", 0, "rows after the header to skip (NuPIC files have 2)", min=0, max=1000),
        Param("horizon", "int", 1, "how many rows ahead 'target' is", min=0, max=100000),
        Param("normalize", "str", "zscore", "zscore or minmax (to [-1, 1]) over the file, or none",
              choices=("zscore", "minmax", "none")),
    )

    @classmethod
    def infer(cls, p, shapes):
        return {"value": (1,), "target": (1,)}

    def setup(self, batch, generator):
        p = self.p
        path = resolve_path(p["path"], getattr(self, "base_dir", None))
        try:
            raw = read_columns(path, [p["column"]], p["skip_rows"])[p["column"]]
            values = parse_floats(raw, str(path), p["column"], first_line=2 + p["skip_rows"])
        except Exception as exc:  # DeepHTMError: re-raise naming the node and param
            raise GraphError(str(exc), where=node_where(self.node_id, param="path")) from None
        if len(values) <= p["horizon"]:
            raise GraphError(f"{path}: only {len(values)} rows, fewer than horizon + 1",
                             where=node_where(self.node_id, param="horizon"))
        x = torch.tensor(values, dtype=torch.float32)
        self.raw_mean, self.raw_std = float(x.mean()), float(x.std())
        if p["normalize"] == "zscore":
            x = (x - x.mean()) / x.std().clamp_min(1e-12)
        elif p["normalize"] == "minmax":
            x = 2 * (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12) - 1
        self.register_buffer("series", x, persistent=False)
        # Streams of a batch start at evenly spaced offsets of the series.
        self.register_buffer("offsets", (torch.arange(batch) * len(x)) // batch, persistent=False)

    def forward(self, ctx):
        n = self.series.shape[0] - self.p["horizon"]
        i = (self.offsets + ctx.step) % n
        return {"value": self.series[i].unsqueeze(1),
                "target": self.series[i + self.p["horizon"]].unsqueeze(1)}


NODE = CSVSource
