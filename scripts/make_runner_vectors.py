#!/usr/bin/env python3
"""Writes the runner protocol's test vectors (test/fixtures/runner-protocol/), which docs/runner-protocol.md
specifies and both runners' tests read: the TypeScript side (test/runner-protocol.test.ts) and the device side's C++
(ios/runner-core, runner_core_test.cc).

An encoder of its own, written from the document with struct and json, so that neither implementation is checked
only against itself. Deterministic: running it again gives the same bytes (`--check` says whether they match).

Usage: /usr/bin/python3 scripts/make_runner_vectors.py [--check]
"""
import argparse
import json
import struct
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "runner-protocol"
ALIGN = 8
DTYPES = {"float32": ("<f", 4), "float16": ("<e", 2), "int64": ("<q", 8), "int32": ("<i", 4)}


def tensor(dtype, dims, values):
    fmt, size = DTYPES[dtype]
    data = b"".join(struct.pack(fmt, v) for v in values)
    count = 1
    for d in dims:
        count *= d
    assert len(data) == count * size, (dtype, dims, values)
    return {"dtype": dtype, "dims": dims, "data": data}


def header_text(header):
    return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def frame(header, tensors=(), payload_override=None, magic=b"OSRP", header_override=None):
    """The frame's bytes; `tensors` are appended to the header as its last field, as the document says."""
    full = dict(header)
    if tensors:
        full["tensors"] = [{"dtype": t["dtype"], "dims": t["dims"]} for t in tensors]
    text = header_override if header_override is not None else header_text(full)
    payload = b""
    for t in tensors:
        payload += b"\0" * ((-len(payload)) % ALIGN)
        payload += t["data"]
    if payload_override is not None:
        payload = payload_override
    return magic + struct.pack("<IQ", len(text), len(payload)) + text + payload, full


def described(tensors):
    return [{"dtype": t["dtype"], "dims": t["dims"], "hex": t["data"].hex()} for t in tensors]


def build():
    files = {}
    frames = []

    def good(name, note, header, tensors=()):
        data, full = frame(header, tensors)
        files[f"{name}.bin"] = data
        frames.append({"name": name, "note": note, "file": f"{name}.bin", "header": full, "tensors": described(tensors)})

    good("hello", "the client's hello: no payload", {"type": "hello", "id": 0, "versions": [1], "client": "vectors"})
    good(
        "put-two",
        "float32 [2,3] then int64 [1]: the second starts at offset 24, a multiple of 8",
        {"type": "put", "id": 1},
        [tensor("float32", [2, 3], [1.0, -2.0, 0.5, 3.25, 0.0, -0.125]), tensor("int64", [1], [2**40 + 7])],
    )
    good(
        "padding",
        "float16 [3] (6 bytes), then float32 [1] at offset 8: two zero bytes of padding",
        {"type": "put", "id": 2},
        [tensor("float16", [3], [1.0, -2.0, 65504.0]), tensor("float32", [1], [1.5])],
    )
    good(
        "run",
        "a run: one input by handle, one in the payload; keep and consume",
        {"type": "run", "id": 3, "block": 4, "inputs": {"x": {"handle": 2}, "t": {"tensor": 0}}, "keep": ["output"], "consume": ["x"]},
        [tensor("float32", [2], [999.0, 999.0])],
    )
    good(
        "run-reply",
        "a run's reply: a kept output named by handle, a returned one in the payload",
        {
            "type": "run",
            "id": 3,
            "outputs": {"output": {"handle": 5, "dtype": "float32", "dims": [2, 4]}, "T": {"tensor": 0}},
            "ms": 12,
            "memory": {"inUse": 1048576, "peak": 2097152, "available": 4294967296},
        },
        [tensor("int32", [1], [5])],
    )
    good("empty", "a tensor with no elements takes no bytes", {"type": "put", "id": 4}, [tensor("int32", [0, 3], [])])
    good("error", "an error reply to no request in particular", {"type": "error", "id": None, "code": "bad-frame", "message": "the frame does not start with OSRP"})

    bad = []
    limits = {"maxHeaderBytes": 1024, "maxFrameBytes": 4096}

    def problem(name, note, data, code, fatal, id=None, next_frame=False, frame_limits=limits):
        if next_frame:
            follow, _ = frame({"type": "stats", "id": 99})
            data += follow
        files[f"{name}.bin"] = data
        entry = {"name": name, "note": note, "file": f"{name}.bin", "limits": frame_limits, "problem": {"code": code, "fatal": fatal, "id": id}}
        if next_frame:
            entry["next"] = {"type": "stats", "id": 99}
        bad.append(entry)

    problem("bad-magic", "not OSRP: the stream cannot be followed", frame({"type": "stats", "id": 1}, magic=b"HTTP")[0], "bad-frame", True)
    big_header = header_text({"type": "stats", "id": 1, "pad": "x" * 2000})
    problem(
        "header-over-limit",
        "a header longer than maxHeaderBytes: cannot be skipped safely",
        b"OSRP" + struct.pack("<IQ", len(big_header), 0) + big_header,
        "frame-too-large",
        True,
    )
    problem(
        "frame-over-limit",
        "a frame longer than maxFrameBytes: answered at once with its id, its payload skipped, the next frame read",
        frame({"type": "put", "id": 7}, [tensor("float32", [2048], [0.0] * 2048)])[0],
        "frame-too-large",
        False,
        id=7,
        next_frame=True,
    )
    problem("not-json", "a header that is not JSON", frame({}, header_override=b"{type: stats}")[0], "bad-frame", False, next_frame=True)
    problem("no-id", "a header without an id", frame({"type": "stats"})[0], "bad-frame", False, next_frame=True)
    problem(
        "short-payload",
        "the tensors need 16 bytes, the payload has 8",
        frame({"type": "put", "id": 3}, [tensor("float32", [4], [1, 2, 3, 4])], payload_override=b"\0" * 8)[0],
        "bad-tensor",
        False,
        id=3,
        next_frame=True,
    )
    problem(
        "long-payload",
        "the payload has 4 bytes the tensors do not account for",
        frame({"type": "put", "id": 3}, [tensor("float32", [1], [1])], payload_override=b"\0" * 8)[0],
        "bad-tensor",
        False,
        id=3,
    )
    problem(
        "unknown-dtype",
        "float64 is not a protocol dtype",
        frame({"type": "put", "id": 5, "tensors": [{"dtype": "float64", "dims": [1]}]}, payload_override=b"\0" * 8)[0],
        "bad-tensor",
        False,
        id=5,
    )
    problem(
        "negative-dim",
        "dims must be non-negative integers",
        frame({"type": "put", "id": 6, "tensors": [{"dtype": "int32", "dims": [-1]}]}, payload_override=b"")[0],
        "bad-tensor",
        False,
        id=6,
    )

    sessions = []

    def session(name, note, steps):
        entry = {"name": name, "note": note, "steps": []}
        for i, (header, tensors, expect) in enumerate(steps):
            data, _ = frame(header, tensors)
            file = f"session-{name}-{i}.bin"
            files[file] = data
            entry["steps"].append({"send": file, "expect": expect})
        sessions.append(entry)

    hello = ({"type": "hello", "id": 0, "versions": [1]}, [], [{"type": "hello", "id": 0, "version": 1}])
    session(
        "tensors",
        "put, fetch, release; handles are numbered from 1 in the order the runner makes them",
        [
            hello,
            (
                {"type": "put", "id": 1},
                [tensor("float32", [2], [1.5, -2.5]), tensor("int64", [2], [3, -4])],
                [{"type": "put", "id": 1, "handles": [1, 2]}],
            ),
            ({"type": "fetch", "id": 2, "handles": [2]}, [], [{"type": "fetch", "id": 2, "tensors": described([tensor("int64", [2], [3, -4])])}]),
            ({"type": "stats", "id": 3}, [], [{"type": "stats", "id": 3, "held": {"count": 2, "bytes": 24}}]),
            ({"type": "release", "id": 4, "handles": [1, 9]}, [], [{"type": "error", "id": 4, "code": "no-such-handle"}]),
            ({"type": "release", "id": 5, "handles": [1, 2]}, [], [{"type": "release", "id": 5}]),
            ({"type": "fetch", "id": 6, "handles": [1]}, [], [{"type": "error", "id": 6, "code": "no-such-handle"}]),
            ({"type": "stats", "id": 7}, [], [{"type": "stats", "id": 7, "held": {"count": 0, "bytes": 0}}]),
            ({"type": "close", "id": 8}, [], [{"type": "close", "id": 8}]),
        ],
    )
    session(
        "requests",
        "requests the runner cannot carry out get error replies, and the session goes on",
        [
            hello,
            ({"type": "teleport", "id": 1}, [], [{"type": "error", "id": 1, "code": "unknown-message"}]),
            ({"type": "load", "id": 2, "name": "no_such_block"}, [], [{"type": "error", "id": 2, "code": "no-such-block"}]),
            ({"type": "run", "id": 3, "block": 99, "inputs": {}}, [], [{"type": "error", "id": 3, "code": "no-such-handle"}]),
            ({"type": "fetch", "id": 4}, [], [{"type": "error", "id": 4, "code": "bad-request"}]),
            ({"type": "hello", "id": 5, "versions": [1]}, [], [{"type": "error", "id": 5, "code": "bad-request"}]),
            ({"type": "stats", "id": 6}, [], [{"type": "stats", "id": 6, "held": {"count": 0, "bytes": 0}}]),
        ],
    )
    session(
        "before-hello",
        "nothing but hello is answered before hello",
        [({"type": "stats", "id": 1}, [], [{"type": "error", "id": 1, "code": "not-ready"}]), hello],
    )
    session(
        "version",
        "no version in common: an error, then the runner ends the connection",
        [({"type": "hello", "id": 0, "versions": [99]}, [], [{"type": "error", "id": 0, "code": "version"}])],
    )

    index = {
        "about": "Test vectors of docs/runner-protocol.md, written by scripts/make_runner_vectors.py. Tensor data is hex of its little-endian bytes.",
        "frames": frames,
        "bad": bad,
        "sessions": sessions,
    }
    files["vectors.json"] = (json.dumps(index, indent=2) + "\n").encode("utf-8")
    return files


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the files in place instead of writing")
    args = parser.parse_args()
    files = build()
    if args.check:
        stale = [name for name, data in files.items() if not (OUT / name).exists() or (OUT / name).read_bytes() != data]
        extra = sorted(p.name for p in OUT.iterdir() if p.name not in files)
        if stale or extra:
            print(f"make_runner_vectors: differ: {', '.join(stale + extra)}", file=sys.stderr)
            return 1
        print(f"make_runner_vectors: {len(files)} files match")
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    print(f"make_runner_vectors: wrote {len(files)} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
