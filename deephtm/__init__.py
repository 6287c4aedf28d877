"""DeepHTM: differentiable Hierarchical Temporal Memory, built from graph files."""
from .errors import DeepHTMError, GraphError, ShapeError, TrainingError
from .graph.graphfile import Graph, load_graph, save_graph
from .graph.resolve import resolve

__version__ = "0.1.0"

__all__ = ["DeepHTMError", "GraphError", "ShapeError", "TrainingError", "Graph", "load_graph",
           "save_graph", "resolve", "__version__"]
