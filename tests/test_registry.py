"""Third-party node types plug in through the 'deephtm.nodes' entry-point group."""
import sys
import textwrap

from deephtm.graph import registry


def test_plugin_from_entry_point(tmp_path, monkeypatch):
    pkg = tmp_path / "myplugin.py"
    pkg.write_text(textwrap.dedent('''
        from deephtm.node import Node
        from deephtm.graph.spec import Param, Port

        class Doubler(Node):
            type_name = "plugin.double"
            category = "util"
            doc = "Doubles its input."
            inputs = (Port("x"),)
            outputs = (Port("y"),)
            params = (Param("factor", "float", 2.0, "multiplier", min=0.0, max=10.0),)

            @classmethod
            def infer(cls, p, shapes):
                return {"y": shapes["x"]}

            def forward(self, ctx, x):
                return {"y": x * self.p["factor"]}
    '''))
    dist = tmp_path / "myplugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[deephtm.nodes]\ndouble = myplugin:Doubler\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_registry", None)
    try:
        cls = registry.get("plugin.double")
        assert cls is not None and cls.__name__ == "Doubler"
        assert registry.get("htm.sp") is not None  # built-ins still there
    finally:
        registry._registry = None
        sys.modules.pop("myplugin", None)


def test_every_builtin_declares_documented_params():
    for name, cls in registry.types().items():
        assert cls.doc, name
        for p in cls.params:
            assert p.doc, (name, p.name)
            p.check(p.default, where=name)  # defaults are valid
