"""Image, grid-cell, hierarchy and sensorimotor node types: shape inference, refusals with clear messages, and what each computes."""
import math

import pytest
import torch

from deephtm.graph import registry
from deephtm.errors import GraphError
from deephtm.node import Context
from deephtm.graph.resolve import check_params

CTX = Context(step=0, batch=4, device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))


def build(type_name, shapes, **params):
    cls = registry.get(type_name)
    p = check_params(cls, "n", params)
    out = cls.infer(p, shapes)
    node = cls(p, shapes)
    node.setup(CTX.batch, CTX.generator)
    return node, out


def infer(type_name, shapes, **params):
    cls = registry.get(type_name)
    return cls.infer(check_params(cls, "n", params), shapes)


def test_all_extension_types_are_registered_with_docs():
    for name in ("encoder.conv", "decoder.deconv", "source.digits", "metric.digits", "gridcell.module",
                 "source.random_walk", "metric.position_error", "pool.temporal", "source.objects",
                 "sensorimotor.object_layer", "metric.touch_accuracy", "util.digit_images",
                 "baseline.successor_image", "baseline.dead_reckoning", "baseline.bayes_objects"):
        cls = registry.get(name)
        assert cls is not None and cls.doc
        assert all(p.doc for p in cls.params)


def test_conv_encoder_shapes_and_refusals():
    enc, out = build("encoder.conv", {"x": (1, 8, 8)}, channels=5, layers=2, stride=2)
    assert out == {"y": (5, 2, 2)}
    assert enc(CTX, torch.rand(4, 1, 8, 8))["y"].shape == (4, 5, 2, 2)
    with pytest.raises(GraphError, match=r"port 'x'.*expected an image"):
        infer("encoder.conv", {"x": (64,)})
    with pytest.raises(GraphError, match="needs an image"):
        infer("encoder.conv", {"x": None})
    # Padding kernel // 2 keeps at least one pixel however deep the stack.
    assert infer("encoder.conv", {"x": (1, 8, 8)}, layers=5, stride=8, kernel=1)["y"] == (16, 1, 1)


def test_deconv_decoder_makes_images_of_the_asked_size():
    for h, w, layers in ((8, 8, 2), (7, 5, 1), (28, 28, 3)):
        dec, out = build("decoder.deconv", {"x": (30,)}, height=h, width=w, layers=layers, out_channels=2)
        assert out == {"y": (2, h, w)}
        y = dec(CTX, torch.rand(4, 30))["y"].detach()
        assert y.shape == (4, 2, h, w) and float(y.min()) >= 0 and float(y.max()) <= 1
    cls = registry.get("decoder.deconv")
    p = check_params(cls, "n", {})
    assert cls.param_count(p, {"x": (30,)}) >= sum(t.numel() for t in cls(p, {"x": (30,)}).parameters())


def test_digits_source_shows_classes_in_order_with_next_image_as_target():
    src, out = build("source.digits", {})
    assert out["image"] == (1, 8, 8) and out["target"] == (1, 8, 8)
    a = src(Context(step=3, batch=4, device=CTX.device, generator=CTX.generator))
    b = src(Context(step=4, batch=4, device=CTX.device, generator=CTX.generator))
    assert a["label"].flatten().tolist() == [3.0, 4.0, 5.0, 6.0]
    assert torch.equal(a["target"], b["image"]) and torch.equal(a["target_label"], b["label"])
    assert 0 <= float(a["image"].min()) and float(a["image"].max()) <= 1


def test_digits_metric_classifier_reads_real_digits_and_writes_a_png(tmp_path):
    from deephtm.nodes.source_digits import digits_split
    m, _ = build("metric.digits", {"pred": (1, 8, 8), "target": (1, 8, 8), "label": (1,)})
    assert m.real_accuracy > 0.9
    x, y, _, _ = digits_split(0, 0.3)
    imgs, labels = torch.from_numpy(x[:40]).unsqueeze(1), torch.from_numpy(y[:40]).float().unsqueeze(1)
    m(CTX, imgs, imgs, labels)  # the real images as 'generated' ones
    v = m.value()
    assert v["image_mse"] == 0 and v["generated_accuracy"] > 0.85
    m(CTX, torch.zeros(40, 1, 8, 8), imgs, labels)
    assert m.value()["image_mse"] > 0
    m.on_end(tmp_path)
    data = (tmp_path / "generated_digits.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-12:]
    with pytest.raises(GraphError, match="port 'label'"):
        infer("metric.digits", {"pred": (1, 8, 8), "target": (1, 8, 8), "label": (10,)})
    with pytest.raises(GraphError, match="plain file name"):
        infer("metric.digits", {"pred": None, "target": None, "label": None}, png="../x.png")


def test_png_writer_round_trips_through_zlib():
    import struct
    import zlib

    from deephtm.png import png_bytes
    img = torch.tensor([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25]])
    data = png_bytes(img)
    w, h = struct.unpack(">II", data[16:24])
    assert (w, h) == (3, 2)
    idat_len = struct.unpack(">I", data[33:37])[0]
    raw = zlib.decompress(data[41:41 + idat_len])
    assert raw == bytes([0, 0, 255, 128, 0, 255, 0, 64])


def test_random_walk_velocity_integrates_to_position_and_stays_in_arena():
    walk, out = build("source.random_walk", {}, steps=20, side=2.0, speed=0.2)
    assert out["velocity"] == (2,) and out["reset"] == ()
    pos = None
    for step in range(60):
        o = walk(Context(step=step, batch=4, device=CTX.device, generator=CTX.generator))
        assert float(o["position"].min()) >= 0 and float(o["position"].max()) <= 2.0
        if step % 21 == 0:
            assert o["reset"].eq(1).all() and o["velocity"].eq(0).all()
            assert torch.equal(o["start"], o["position"])
            pos = o["position"].clone()
        else:
            pos = pos + o["velocity"]
            assert torch.allclose(pos, o["position"], atol=1e-5)
        assert o["last"].eq(1).all() == (step % 21 == 20)


def test_grid_modules_path_integrate_and_emit_k_winners_per_module():
    grid, out = build("gridcell.module", {"velocity": (2,), "reset": (), "anchor": (2,)},
                      modules=3, cells=6, winners=4)
    assert out == {"code": (3 * 36,), "phase": (6,), "position": (2,)}
    anchor = torch.rand(4, 2)
    code0 = grid(CTX, torch.zeros(4, 2), torch.ones(4), anchor)["code"]
    assert ((code0.view(4, 3, 36) != 0).sum(2) == 4).all()
    steps = torch.randn(10, 4, 2) * 0.05
    for v in steps:
        o = grid(CTX, v, torch.zeros(4), anchor)
    # The same place reached directly gives the same code: the phase integrated the path.
    direct = grid(CTX, torch.zeros(4, 2), torch.ones(4), anchor + steps.sum(0))
    assert torch.allclose(o["phase"], direct["phase"], atol=1e-4)
    # Scales and orientations learn: the code's gradient reaches them.
    o["code"].sum().backward()
    assert grid.log_scale.grad.abs().sum() > 0 and grid.orientation.grad.abs().sum() > 0


def test_grid_module_refusals():
    with pytest.raises(GraphError, match="port 'velocity'"):
        infer("gridcell.module", {"velocity": (3,), "reset": None, "anchor": None})
    with pytest.raises(GraphError, match="port 'anchor'"):
        infer("gridcell.module", {"velocity": (2,), "reset": None, "anchor": (1,)})
    with pytest.raises(GraphError, match="winners"):
        infer("gridcell.module", {"velocity": (2,), "reset": None, "anchor": None}, cells=3, winners=10)


def test_grid_fields_are_periodic_with_the_module_spacing():
    grid, _ = build("gridcell.module", {"velocity": (2,), "reset": (), "anchor": (2,)},
                    modules=1, cells=8, winners=3, scale_min=0.5, learn_transform=False)
    b1 = 0.5 * torch.tensor([math.cos(0.1), math.sin(0.1)])  # first lattice vector (orientation 0.1)
    start = torch.rand(4, 2)
    a = grid(CTX, torch.zeros(4, 2), torch.ones(4), start)["code"]
    b = grid(CTX, torch.zeros(4, 2), torch.ones(4), start + b1)["code"]
    c = grid(CTX, torch.zeros(4, 2), torch.ones(4), start + b1 / 2)["code"]
    assert torch.allclose(a, b, atol=1e-3)
    assert not torch.equal(a != 0, c != 0)


def test_temporal_pool_modes_and_reset():
    x1, x2 = torch.tensor([[1.0, 0, 0]] * 4), torch.tensor([[0, 1.0, 0]] * 4)
    pool, out = build("pool.temporal", {"x": (3,), "reset": ()}, mode="union", decay=0.5)
    assert out == {"y": (3,)}
    pool(CTX, x1)
    assert torch.allclose(pool(CTX, x2)["y"][0], torch.tensor([0.5, 1.0, 0]))
    assert torch.allclose(pool(CTX, x2, torch.ones(4))["y"][0], torch.tensor([0, 1.0, 0]))
    avg, _ = build("pool.temporal", {"x": (3,), "reset": None}, mode="average", decay=0.5)
    avg(CTX, x1)
    assert torch.allclose(avg(CTX, x2)["y"][0], torch.tensor([0.25, 0.5, 0]))
    with pytest.raises(GraphError, match="port 'x'"):
        infer("pool.temporal", {"x": (2, 3), "reset": None})


def test_objects_source_episodes_and_refusal():
    src, out = build("source.objects", {}, objects=6, grid=3, points=5, features=2, touches=7)
    assert out["feature"] == (2,) and out["object"] == (1,)
    seen = []
    for step in range(14):
        o = src(Context(step=step, batch=4, device=CTX.device, generator=CTX.generator))
        seen.append(o)
        assert o["touch"].flatten().eq(step % 7 + 1).all()
        assert o["reset"].eq(1.0 if step % 7 == 0 else 0.0).all()
    for i in range(1, 7):  # the movement leads from one touched location to the next
        assert torch.allclose(seen[i - 1]["location"] + seen[i]["velocity"], seen[i]["location"])
        assert torch.equal(seen[i]["object"], seen[0]["object"])
    with pytest.raises(GraphError, match="points"):
        infer("source.objects", {}, grid=2, points=5)


def test_object_layer_accumulates_evidence_until_reset():
    layer, out = build("sensorimotor.object_layer", {"location": (6,), "feature": (3,), "reset": ()}, objects=4)
    assert out == {"logits": (4,), "evidence": (4,), "class": (1,)}
    with torch.no_grad():
        layer.map.weight.normal_()
    loc, feat = torch.rand(4, 6), torch.eye(3)[[0, 1, 2, 0]]
    e1 = layer(CTX, loc, feat, torch.ones(4))["evidence"]
    e2 = layer(CTX, loc, feat, torch.zeros(4))["evidence"]
    assert torch.allclose(e2, 2 * e1, atol=1e-5)
    assert torch.allclose(layer(CTX, loc, feat, torch.ones(4))["evidence"], e1, atol=1e-5)
    with pytest.raises(GraphError, match="port 'feature'"):
        infer("sensorimotor.object_layer", {"location": (6,), "feature": None, "reset": None})


def test_touch_accuracy_curve():
    m, _ = build("metric.touch_accuracy", {"pred": (1,), "target": (1,), "touch": (1,)}, max_touches=3, report=2)
    assert m.value() is None
    for t, right in ((1, False), (2, True), (3, True), (1, True), (2, True), (3, True)):
        m(CTX, torch.tensor([[1.0 if right else 0.0]]), torch.tensor([[1.0]]), torch.tensor([[float(t)]]))
    v = m.value()
    assert v["accuracy_after_touches"] == [0.5, 1.0, 1.0] and v["accuracy_after_2_touches"] == 1.0
    assert list(v)[0] == "accuracy_after_2_touches"  # a float first, for the progress bar
    with pytest.raises(GraphError, match="report"):
        infer("metric.touch_accuracy", {"pred": None, "target": None, "touch": None}, max_touches=3, report=5)


def test_position_error_metric():
    m, _ = build("metric.position_error", {"pred": (2,), "target": (2,), "mask": ()}, side=2.0)
    m(CTX, torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.6, 0.8], [0.0, 0.0]]), torch.tensor([1.0, 0.0]))
    assert m.value() == pytest.approx(0.5)
    with pytest.raises(GraphError, match="port 'pred'"):
        infer("metric.position_error", {"pred": (3,), "target": (2,), "mask": None})


def test_digit_images_draw_training_samples_of_the_given_class_and_next_steps_image():
    from deephtm.nodes.source_digits import digits_split
    node, out = build("util.digit_images", {"symbol": (1,), "target_symbol": (1,)})
    assert out == {"image": (1, 8, 8), "target": (1, 8, 8)}
    x, y, _, _ = digits_split(0, 0.3)
    flat = torch.from_numpy(x).flatten(1)
    sym, nxt = torch.tensor([[3.0], [1.0], [4.0], [1.0]]), torch.tensor([[1.0], [4.0], [1.0], [5.0]])
    now = node(Context(step=7, batch=4, device=CTX.device, generator=CTX.generator), sym, nxt)
    later = node(Context(step=8, batch=4, device=CTX.device, generator=CTX.generator), nxt, sym)
    for b in range(4):
        hits = (flat == now["image"][b].flatten()).all(1).nonzero().flatten()
        assert len(hits) >= 1 and int(y[int(hits[0])]) == int(sym[b])
    # The target of a step is the image the next step shows.
    assert torch.equal(now["target"], later["image"])


def test_successor_baseline_draws_the_mean_of_the_most_frequent_successor_seen_so_far():
    from deephtm.nodes.source_digits import digits_split
    node, out = build("baseline.successor_image", {"label": (1,), "target_label": (1,)})
    assert out == {"image": (1, 8, 8), "class": (1,)}
    x, y, _, _ = digits_split(0, 0.3)
    one = Context(step=0, batch=1, device=CTX.device, generator=CTX.generator)
    node.setup(1, CTX.generator)
    guesses = []
    # 1 is followed by 4, 4, 5: after those, the likely successor of 1 is 4; then 5 twice more makes it 5.
    for cur, nxt in ((1, 4), (1, 4), (1, 5), (1, 5), (1, 5), (1, 0)):
        o = node(one, torch.tensor([[float(cur)]]), torch.tensor([[float(nxt)]]))
        guesses.append(int(o["class"]))
    assert guesses == [0, 4, 4, 4, 4, 5]  # 0: nothing seen yet (ties go to the lowest class)
    assert torch.allclose(o["image"][0, 0], torch.from_numpy(x[y == 5].mean(0)), atol=1e-6)


def test_digits_metric_scores_only_masked_steps_under_its_prefix():
    m, _ = build("metric.digits", {"pred": (1, 8, 8), "target": (1, 8, 8), "label": (1,), "mask": ()},
                 prefix="no_tm_", png="")
    from deephtm.nodes.source_digits import digits_split
    x, y, hx, hy = digits_split(0, 0.3)
    right = [int(i) for i in range(len(x)) if m.classify(torch.from_numpy(x[i:i + 1]).unsqueeze(1))[0] == y[i]][:4]
    imgs = torch.from_numpy(x[right]).unsqueeze(1)
    labels = torch.tensor([[float(y[i])] for i in right])
    wrong = (labels + 1) % 10
    # Right labels on the two masked rows, wrong ones on the others: the unmasked rows do not count.
    m(CTX, imgs, imgs, torch.cat([labels[:2], wrong[2:]]), torch.tensor([1.0, 1.0, 0.0, 0.0]))
    v = m.value()
    assert v == {"no_tm_generated_accuracy": 1.0, "no_tm_image_mse": 0.0}


def test_dead_reckoning_sums_velocity_from_the_anchor_and_restarts_on_reset():
    node, out = build("baseline.dead_reckoning", {"velocity": (2,), "reset": (), "anchor": (2,)})
    assert out == {"position": (2,)}
    node.setup(1, CTX.generator)
    anchor = torch.tensor([[0.5, 0.25]])
    seq = [((0.0, 0.0), 1), ((0.1, 0.0), 0), ((0.0, -0.2), 0), ((0.3, 0.3), 1)]
    got = torch.stack([node(CTX, torch.tensor([v]), torch.tensor([float(r)]), anchor)["position"][0] for v, r in seq])
    assert torch.allclose(got, torch.tensor([[0.5, 0.25], [0.6, 0.25], [0.6, 0.05], [0.8, 0.55]]))
    with pytest.raises(GraphError, match="port 'velocity'"):
        infer("baseline.dead_reckoning", {"velocity": (3,), "reset": None, "anchor": None})


def test_grid_phases_decode_to_the_integrated_position():
    grid, _ = build("gridcell.module", {"velocity": (2,), "reset": (), "anchor": (2,)},
                    modules=4, cells=6, winners=4, decode_points=25)
    start = torch.tensor([[0.2, 0.3], [0.7, 0.4], [0.5, 0.5], [0.25, 0.75]])
    pos, out = start.clone(), grid(CTX, torch.zeros(4, 2), torch.ones(4), start)
    g = torch.Generator().manual_seed(3)
    for _ in range(20):
        v = (torch.rand(4, 2, generator=g) - 0.5) * 0.04
        pos = (pos + v)
        out = grid(CTX, v, torch.zeros(4), start)
    inside = ((pos > 0) & (pos < 1)).all(1)
    assert inside.all()
    # Exact up to half a step of the fine lattice: 1 / (20 x 25) = 0.002 per axis.
    assert (out["position"] - pos).abs().max() <= 0.0021


def test_random_walk_velocity_noise_leaves_the_position_true():
    clean, _ = build("source.random_walk", {}, steps=50)
    noisy, _ = build("source.random_walk", {}, steps=50, velocity_noise=0.01)
    errs = []
    for step in range(40):
        g1, g2 = torch.Generator().manual_seed(step), torch.Generator().manual_seed(step)
        a = clean(Context(step=step, batch=4, device=CTX.device, generator=g1))
        b = noisy(Context(step=step, batch=4, device=CTX.device, generator=g2))
        assert torch.allclose(a["position"], b["position"])  # the same walk
        if step:
            errs.append(b["velocity"] - a["velocity"])
        else:
            assert b["velocity"].eq(0).all()
    std = float(torch.cat(errs).std())
    assert 0.007 < std < 0.013


def test_objects_source_feature_noise_replaces_features_at_the_given_rate():
    src, _ = build("source.objects", {}, objects=6, grid=3, points=5, features=4, touches=5, feature_noise=0.4)
    locs, feats = src.locs, src.feats
    changed, n = 0, 0
    for step in range(400):
        o = src(Context(step=step, batch=4, device=CTX.device, generator=CTX.generator))
        obj = o["object"].flatten().long()
        xy = (o["location"] / 0.25).round().long()
        loc = xy[:, 0] * 3 + xy[:, 1]
        for b in range(4):
            point = int((locs[obj[b]] == loc[b]).nonzero())
            changed += int(o["feature"][b].argmax()) != int(feats[obj[b], point])
            n += 1
    # A replaced feature is another one 3 times in 4.
    assert changed / n == pytest.approx(0.4 * 0.75, abs=0.05)


def _brute_posterior(locs, feats, L, s, start, obs, sigma, eps, F):
    """The object posterior by enumerating every path of points (no approximation but the same
    first-order touch model as the baseline: the next point is any other point)."""
    import itertools
    O, P = feats.shape
    xy = torch.stack([locs // L, locs % L], -1).double() * s
    post = torch.zeros(O, dtype=torch.float64)
    for o in range(O):
        for path in itertools.product(range(P), repeat=len(obs)):
            if any(a == b for a, b in zip(path, path[1:])) or not torch.allclose(xy[o, path[0]], start.double()):
                continue
            w = 1.0
            for t, (f, v) in enumerate(obs):
                w *= (1 - eps + eps / F) if int(feats[o, path[t]]) == f else eps / F
                if t:
                    d = xy[o, path[t]] - xy[o, path[t - 1]] - v.double()
                    w *= math.exp(-float(d.pow(2).sum()) / (2 * sigma ** 2))
            post[o] += w
    return post / post.sum()


def test_bayes_baseline_matches_a_brute_force_posterior_on_a_tiny_world():
    params = dict(objects=3, grid=2, points=3, features=2, spacing=1.0, seed=5, velocity_noise=0.5,
                  feature_noise=0.2)
    node, out = build("baseline.bayes_objects", {"feature": (2,), "velocity": (2,), "start": (2,), "reset": ()},
                      **params)
    assert out == {"logits": (3,), "class": (1,)}
    node.setup(1, CTX.generator)
    src, _ = build("source.objects", {}, touches=3, **params)
    src.setup(1, CTX.generator)
    g = torch.Generator().manual_seed(1)
    obs = []
    for step in range(3):
        o = src(Context(step=step, batch=1, device=CTX.device, generator=g))
        obs.append((int(o["feature"][0].argmax()), o["velocity"][0]))
        got = node(CTX, o["feature"], o["velocity"], o["start"], o["reset"])["logits"][0].double()
        want = _brute_posterior(src.locs, src.feats, 2, 1.0, o["start"][0], obs,
                                0.5, 0.2, 2)
        assert torch.allclose(got.exp() / got.exp().sum(), want, atol=1e-5)
    with pytest.raises(GraphError, match="port 'feature'"):
        infer("baseline.bayes_objects", {"feature": (5,), "velocity": (2,), "start": (2,), "reset": ()}, features=2)


def test_prototype_encoder_gives_alike_digits_alike_codes_and_learns_only_in_training():
    from deephtm.nodes.source_digits import digits_split
    torch.manual_seed(0)
    node, out = build("encoder.prototypes", {"x": (1, 8, 8)}, units=64, winners=8)
    assert out == {"code": (64,)}
    x, y, _, _ = digits_split(0, 0.3)
    images = torch.from_numpy(x).unsqueeze(1)
    g = torch.Generator().manual_seed(1)
    before = node(CTX, images)["code"]
    for _ in range(400):
        node(CTX, images[torch.randint(len(images), (16,), generator=g)])
    node.eval()
    frozen = node.prototypes.clone()
    code = node(CTX, images)["code"]
    assert torch.equal(node.prototypes, frozen)  # no learning outside training
    assert torch.equal(code.sum(1), torch.full((len(images),), 8.0)) and set(code.unique().tolist()) == {0.0, 1.0}
    labels = torch.from_numpy(y)
    same = labels[:, None] == labels[None]
    off_diagonal = ~torch.eye(len(labels), dtype=torch.bool)

    def shared(c):  # mean share of active units between two images: same class, other class
        ov = c @ c.T / 8
        return float(ov[same & off_diagonal].mean()), float(ov[~same].mean())

    within, across = shared(code)
    within_before, across_before = shared(before)
    # Learning makes two samples of one digit share several times more units than two digits do,
    # and far more than the random prototypes it started from.
    assert within > 4 * across and within > within_before + 0.2, (within, across, within_before, across_before)
    with pytest.raises(GraphError, match="winners"):
        infer("encoder.prototypes", {"x": (64,)}, units=8, winners=9)


def test_prototype_encoder_averaging_schedule_settles_while_a_constant_rate_keeps_drifting():
    from deephtm.nodes.source_digits import digits_split
    x, _, _, _ = digits_split(0, 0.3)
    images = torch.from_numpy(x).unsqueeze(1)

    def drift(**params):
        """Share of the images' active units that change over 50 more steps after 150."""
        torch.manual_seed(0)
        node, _ = build("encoder.prototypes", {"x": (1, 8, 8)}, units=64, winners=8, boost_strength=0.0, **params)
        g = torch.Generator().manual_seed(1)
        batches = [images[torch.randint(len(images), (16,), generator=g)] for _ in range(200)]
        codes = []
        for start, end in ((0, 150), (150, 200)):
            node.train()
            for b in batches[start:end]:
                node(CTX, b)
            node.eval()
            codes.append(node(CTX, images)["code"])
        return float((codes[0] != codes[1]).sum() / (2 * 8 * len(images)))

    constant, average = drift(rate=0.05, schedule="constant"), drift(rate=0.0, schedule="average")
    # A prototype that is the mean of every input it won moves less with each input.
    assert constant > 0.02 and average < constant / 3, (constant, average)


def test_classifier_onehot_marks_the_most_likely_class_and_passes_no_gradient():
    clf, out = build("decoder.classifier", {"x": (6,)}, classes=5)
    assert out["onehot"] == (5,)
    x = torch.randn(4, 6, requires_grad=True)
    y = clf(CTX, x)
    expected = torch.nn.functional.one_hot(y["logits"].argmax(1), 5).float()
    assert torch.equal(y["onehot"], expected)
    assert torch.equal(y["onehot"].argmax(1, keepdim=True).float(), y["class"])
    assert not y["onehot"].requires_grad
