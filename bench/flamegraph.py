#!/usr/bin/env python3
"""Flame graph (SVG) from `perf script` output, standard library only.

    perf record -F 999 --call-graph dwarf,32768 -p <pid> -o perf.data -- sleep 3
    perf script -i perf.data --no-inline | bench/flamegraph.py --title "weft-proxy, T1" > out.svg

Each sample's stack (leaf last) is folded into `frame;frame;...` counts, then drawn root at
the bottom, every frame as wide as the share of samples it is on, children ordered by name
(as Brendan Gregg's flamegraph.pl draws them). Frames are shortened: generic arguments and
closures' noise are dropped so names fit.
"""

import argparse
import collections
import html
import re
import sys

WIDTH = 1200
ROW = 16
MIN_WIDTH_PX = 0.3


def short(frame):
    frame = re.sub(r"^\s*[0-9a-f]+\s+", "", frame)
    frame = re.sub(r"\s+\(\S*\)$", "", frame)
    frame = re.sub(r"\+0x[0-9a-f]+$", "", frame)
    # Drop generic arguments, innermost first.
    while True:
        shorter = re.sub(r"<[^<>]*>", "", frame)
        if shorter == frame:
            break
        frame = shorter
    frame = frame.replace("{{closure}}", "{closure}")
    return frame or "?"


def fold(lines):
    stacks = collections.Counter()
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                stacks[";".join(reversed(stack))] += 1
            stack = []
        elif line.startswith(("\t", " ")):
            stack.append(short(line))
        else:
            stack = []  # the sample's header line: process, pid, time, event
    if stack:
        stacks[";".join(reversed(stack))] += 1
    return stacks


def tree(stacks):
    root = {"n": 0, "kids": {}}
    for stack, count in stacks.items():
        node = root
        node["n"] += count
        for frame in stack.split(";"):
            node = node["kids"].setdefault(frame, {"n": 0, "kids": {}})
            node["n"] += count
    return root


def color(name):
    h = sum(ord(c) for c in name)
    if "[kernel" in name or name.startswith(("__", "_raw", "tcp_", "ip_", "do_", "sys_")):
        return "rgb(230,%d,80)" % (120 + h % 60)
    if "weft_proxy" in name:
        return "rgb(80,%d,220)" % (150 + h % 60)
    return "rgb(240,%d,%d)" % (100 + h % 100, 40 + h % 40)


def draw(root, title):
    total = max(root["n"], 1)
    depth = [0]
    rects = []

    def walk(node, name, x, level):
        width = node["n"] / total * WIDTH
        if width < MIN_WIDTH_PX:
            return
        depth[0] = max(depth[0], level)
        rects.append((x, level, width, name, node["n"]))
        child_x = x
        for kid_name in sorted(node["kids"]):
            kid = node["kids"][kid_name]
            walk(kid, kid_name, child_x, level + 1)
            child_x += kid["n"] / total * WIDTH

    walk(root, "all", 0.0, 0)
    height = (depth[0] + 1) * ROW + 40
    out = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
        'font-family="monospace" font-size="11">' % (WIDTH, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="6" y="16" font-size="14">%s (%d samples)</text>' % (html.escape(title), total),
    ]
    for x, level, width, name, n in rects:
        y = height - (level + 1) * ROW
        label = "%s (%.1f%%)" % (name, n / total * 100)
        out.append(
            '<g><title>%s</title><rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s" '
            'stroke="white" stroke-width="0.3"/>' % (html.escape(label), x, y, width, ROW - 1, color(name))
        )
        chars = int(width / 6.6)
        if chars >= 3:
            text = label if len(label) <= chars else label[: chars - 2] + ".."
            out.append('<text x="%.1f" y="%d">%s</text>' % (x + 2, y + ROW - 4, html.escape(text)))
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--title", default="flame graph")
    args = parser.parse_args()
    sys.stdout.write(draw(tree(fold(sys.stdin)), args.title))


if __name__ == "__main__":
    main()
