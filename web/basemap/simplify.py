"""Makes force-areas.geojson, the console's offline basemap, from the shared police force area
boundaries: Douglas-Peucker to ~100 m, coordinates rounded to 4 decimals, only the name kept.
Run: python3 web/basemap/simplify.py simulator/data/police-force-areas.geojson > web/basemap/force-areas.geojson
"""
import json
import sys

TOLERANCE_DEG = 0.001


def perpendicular(p, a, b):
    (x, y), (x1, y1), (x2, y2) = p, a, b
    dx, dy = x2 - x1, y2 - y1
    if dx == 0 and dy == 0:
        return ((x - x1) ** 2 + (y - y1) ** 2) ** 0.5
    return abs(dy * x - dx * y + x2 * y1 - y2 * x1) / (dx * dx + dy * dy) ** 0.5


def simplify(points, tol):
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        lo, hi = stack.pop()
        best, at = 0.0, None
        for i in range(lo + 1, hi):
            d = perpendicular(points[i], points[lo], points[hi])
            if d > best:
                best, at = d, i
        if at is not None and best > tol:
            keep[at] = True
            stack += [(lo, at), (at, hi)]
    return [p for p, k in zip(points, keep) if k]


def ring(r):
    out = [[round(x, 4), round(y, 4)] for x, y in simplify(r, TOLERANCE_DEG)]
    return out if len(out) >= 4 else None


def main():
    src = json.load(open(sys.argv[1]))
    features = []
    for f in src["features"]:
        g = f["geometry"]
        polys = g["coordinates"] if g["type"] == "MultiPolygon" else [g["coordinates"]]
        out = []
        for poly in polys:
            rings = [x for x in (ring(r) for r in poly) if x]
            if rings:
                out.append(rings)
        features.append({
            "type": "Feature",
            "properties": {"name": f["properties"]["PFA20NM"]},
            "geometry": {"type": "MultiPolygon", "coordinates": out},
        })
    json.dump({"type": "FeatureCollection", "features": features}, sys.stdout, separators=(",", ":"))


main()
