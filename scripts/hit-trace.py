#!/usr/bin/env python3
"""Traces the true hits tagstream did not call certain (BENCHMARKS.md, session 10).

Usage: scripts/hit-trace.py TRUTH.jsonl HITS.jsonl [--fixes]

TRUTH.jsonl is `tagsim generate`'s truth, HITS.jsonl the `hits.jsonl` of `tagstream replay`.
For each true `hit` whose tagstream hit is not `certain` it prints the crime, the true closest
approach, the hit's closest approach, the best GPS fix in the window (distance d, precision p:
certain needs d + p <= radius), the fixes either side of the hit's closest point (speed, gap)
and a reason:
  path between fixes only    no fix in the window overlaps the vicinity: a walk-past (most
                             often in a vehicle) seen only on the straight line between fixes
  gps circle straddles edge  GPS fixes overlap the vicinity, none wholly inside
  only network fixes overlap Wi-Fi/LBS circles (100 m and wider) overlap it, no GPS fix does
(fixes less precise than the rule's max_precision_m are left out, as the rule leaves them)
  only an outlier inside     the only fix wholly inside is a simulated multipath outlier
  RULE?                      a non-outlier fix lies wholly inside: a rule fault
With --fixes, every in-window fix that overlaps the vicinity is listed too. Finally it checks
that truth's `confirmable` agrees with the hits: certain exactly when confirmable.
"""
import json
import sys
from collections import Counter
from datetime import datetime


def ms(s):
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


def main(truth_path, hits_path, show_fixes):
    truth = [json.loads(line) for line in open(truth_path)]
    hits = {}
    for h in map(json.loads, open(hits_path)):
        if not h.get("withdrawn"):
            hits[(h["activation"], h["force"], h["crime_ref"], h["crime_version"])] = h
    outliers = {(t["activation"], ms(t["start"])): t.get("error_m")
                for t in truth if t["type"] == "gps_outlier"}
    true_hits = [t for t in truth if t["type"] == "hit"]
    reasons, disagree = Counter(), 0
    for t in true_hits:
        key = (t["activation"], t["force"], t["crime_ref"], t.get("crime_version"))
        h = hits.get(key)
        certain = h is not None and h["certainty"] == "certain"
        if certain != t.get("confirmable", True):
            disagree += 1
            print(f"!! {key}: certain={certain}, confirmable={t.get('confirmable', True)}")
        if certain:
            continue
        name = f"{t['crime_ref']} v{t.get('crime_version')} {t['activation']}"
        if h is None:
            reasons["no hit at all"] += 1
            print(f"{name}: true closest {t.get('closest_m')} m, NO HIT")
            continue
        r = h["radius_m"]
        window = [p for p in h["positions"] if p["in_window"]]
        usable = [p for p in window if p["precision_m"] <= h["algorithm"]["max_precision_m"]]
        inside = [p for p in usable if p["distance_m"] + p["precision_m"] <= r]
        overlap = [p for p in usable if p["distance_m"] - p["precision_m"] <= r]
        if any((t["activation"], ms(p["t"])) not in outliers for p in inside):
            why = "RULE?"
        elif inside:
            why = "only an outlier inside"
        elif any(p["source"] == "gps" for p in overlap):
            why = "gps circle straddles edge"
        elif overlap:
            why = "only network fixes overlap"
        else:
            why = "path between fixes only"
        reasons[why] += 1
        gps = [p for p in window if p["source"] == "gps"]
        best = min(gps, key=lambda p: p["distance_m"] + p["precision_m"], default=None)
        best_s = (f"best GPS d {best['distance_m']} p {best['precision_m']}"
                  if best else "no GPS fix in window")
        ct = ms(h["closest_t"])
        before = [p for p in h["positions"] if ms(p["t"]) <= ct]
        after = [p for p in h["positions"] if ms(p["t"]) > ct]
        side = lambda p: (f"{p['source']} d {p['distance_m']} p {p['precision_m']} "
                          f"v {p['speed_kmh']}") if p else "-"
        b, a = (before[-1] if before else None), (after[0] if after else None)
        gap = f"{(ms(a['t']) - ms(b['t'])) // 1000} s" if a and b else "-"
        print(f"{name}: true closest {t.get('closest_m')} m, hit {h['closest_m']} m; "
              f"{len(window)} fixes in window ({len(gps)} GPS); {best_s}; "
              f"around closest [{side(b)}] [{side(a)}] gap {gap}: {why}")
        if show_fixes:
            for p in overlap:
                out = outliers.get((t["activation"], ms(p["t"])))
                print(f"    {p['label']:>5} {p['t']} {p['source']:<4} d {p['distance_m']:7.1f} "
                      f"p {p['precision_m']:7.1f} d+p {p['distance_m'] + p['precision_m']:7.1f}"
                      + (f" outlier {out} m" if out is not None else ""))
    n_conf = sum(1 for t in true_hits if t.get("confirmable", True))
    print(f"true hits {len(true_hits)}, confirmable {n_conf}, not certain "
          f"{sum(reasons.values())}: {dict(reasons)}; certain vs confirmable disagree: {disagree}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        sys.exit(__doc__)
    main(args[0], args[1], "--fixes" in sys.argv)
