"""Wire routes that go around node boxes instead of behind them (no Qt here).

A wire leaves its output port to the right and enters its input port from the left. When
the plain curve between the two would cross a box, the wire is routed orthogonally: the
candidate lines are the box edges pushed out by a margin (the channels between boxes), and
a shortest path with a penalty per bend is searched on that sparse grid. Rectangles are
(left, top, right, bottom) tuples."""
from __future__ import annotations

import heapq

Rect = tuple[float, float, float, float]
Point = tuple[float, float]

BEND_COST = 60.0  # a bend costs as much as this many pixels of wire: fewer, longer segments


def grow(r: Rect, m: float) -> Rect:
    return (r[0] - m, r[1] - m, r[2] + m, r[3] + m)


def _inside(x: float, y: float, r: Rect) -> bool:
    return r[0] < x < r[2] and r[1] < y < r[3]


def segment_hits(p: Point, q: Point, r: Rect) -> bool:
    """Does the axis-parallel segment p-q pass through the open rectangle r?"""
    if p[1] == q[1]:
        lo, hi = sorted((p[0], q[0]))
        return r[1] < p[1] < r[3] and lo < r[2] and hi > r[0]
    lo, hi = sorted((p[1], q[1]))
    return r[0] < p[0] < r[2] and lo < r[3] and hi > r[1]


def route(a: Point, b: Point, boxes: list[Rect], margin: float = 10.0) -> list[Point]:
    """Corner points of an orthogonal route from output port a to input port b that keeps
    `margin` away from every box. The boxes of the wire's own two nodes belong in `boxes`
    (a wire should not cut through them either); a box holding a port is left by a short
    horizontal stub first."""
    # boxes closer together than twice the margin close the channels between them: then
    # try thinner margins before giving up
    for m in (margin, 4.0, 1.5):
        path = _route(a, b, boxes, m)
        if path is not None:
            return path
    return [a, b]  # boxed in: a straight line is the best there is


def _route(a: Point, b: Point, boxes: list[Rect], margin: float) -> list[Point] | None:
    stub = margin + 16.0  # past the port dot, a collapsed group's stacked look and the margin
    start = (a[0] + stub, a[1])
    end = (b[0] - stub, b[1])
    obstacles = [grow(r, margin) for r in boxes]
    if any(_inside(*start, r) or _inside(*end, r) for r in obstacles):
        return None
    # Route among the boxes near the ends first, then add any box the route crosses: the
    # grid stays small for the common case of a short detour.
    near = _bbox([start, end], 3 * margin + 60)
    used = [r for r in obstacles if _overlaps(r, near)]
    while True:
        path = _search(start, end, used)
        if path is None:
            return None
        crossed = [r for r in obstacles if r not in used
                   and any(segment_hits(p, q, r) for p, q in zip(path, path[1:]))]
        if not crossed:
            return _simplify([a] + path + [b])
        used += crossed


def _bbox(points: list[Point], pad: float) -> Rect:
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)


def _overlaps(r: Rect, s: Rect) -> bool:
    return r[0] < s[2] and r[2] > s[0] and r[1] < s[3] and r[3] > s[1]


def _search(start: Point, end: Point, obstacles: list[Rect]) -> list[Point] | None:
    """Dijkstra on the grid of obstacle edges through start and end; a state is a point and
    the direction it was reached from, so bends can be charged."""
    xs = sorted({start[0], end[0], *(r[0] for r in obstacles), *(r[2] for r in obstacles)})
    ys = sorted({start[1], end[1], *(r[1] for r in obstacles), *(r[3] for r in obstacles)})
    # room to go around everything: one more line outside the outermost boxes
    xs = [xs[0] - 20] + xs + [xs[-1] + 20]
    ys = [ys[0] - 20] + ys + [ys[-1] + 20]
    xi = {x: i for i, x in enumerate(xs)}
    yi = {y: i for i, y in enumerate(ys)}

    def free_point(i: int, j: int) -> bool:
        return not any(_inside(xs[i], ys[j], r) for r in obstacles)

    def free_step(i: int, j: int, i2: int, j2: int) -> bool:
        # neighbouring grid lines hold every obstacle edge between them, so a step is
        # blocked exactly when its midpoint is inside an obstacle
        mx, my = (xs[i] + xs[i2]) / 2, (ys[j] + ys[j2]) / 2
        return not any(_inside(mx, my, r) for r in obstacles)

    s = (xi[start[0]], yi[start[1]])
    t = (xi[end[0]], yi[end[1]])
    # a state is (point, axis, sign): axis 0 moves in x, 1 in y; the wire leaves rightwards
    first = (s, 0, 1)
    best = {first: 0.0}
    prev: dict = {}
    heap = [(0.0, first)]
    while heap:
        cost, state = heapq.heappop(heap)
        if cost > best.get(state, float("inf")):
            continue
        (i, j), axis, sign = state
        if (i, j) == t and (axis, sign) != (0, -1):  # the last stub goes on rightwards
            return [(xs[p[0]], ys[p[1]]) for p in _walk(prev, state)]
        for di, dj, ax, sg in ((1, 0, 0, 1), (-1, 0, 0, -1), (0, 1, 1, 1), (0, -1, 1, -1)):
            if ax == axis and sg == -sign:
                continue  # no U-turn on the spot
            i2, j2 = i + di, j + dj
            if not (0 <= i2 < len(xs) and 0 <= j2 < len(ys)):
                continue
            if not free_step(i, j, i2, j2) or not free_point(i2, j2):
                continue
            c = cost + abs(xs[i2] - xs[i]) + abs(ys[j2] - ys[j]) + (BEND_COST if ax != axis else 0.0)
            key = ((i2, j2), ax, sg)
            if c < best.get(key, float("inf")):
                best[key] = c
                prev[key] = state
                heapq.heappush(heap, (c, key))
    return None


def _walk(prev: dict, key) -> list:
    out = [key[0]]
    while key in prev:
        key = prev[key]
        out.append(key[0])
    return out[::-1]


def _simplify(points: list[Point]) -> list[Point]:
    """Drop repeated and collinear points: only the corners remain."""
    out: list[Point] = []
    for p in points:
        if out and abs(out[-1][0] - p[0]) < 1e-6 and abs(out[-1][1] - p[1]) < 1e-6:
            continue
        if len(out) >= 2:
            a, b = out[-2], out[-1]
            if (abs(a[0] - b[0]) < 1e-6 and abs(b[0] - p[0]) < 1e-6) or \
                    (abs(a[1] - b[1]) < 1e-6 and abs(b[1] - p[1]) < 1e-6):
                out[-1] = p
                continue
        out.append(p)
    return out
