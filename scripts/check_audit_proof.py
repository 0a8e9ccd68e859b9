#!/usr/bin/env python3
# Checks a `gng audit proof` (JSON on stdin) with nothing of gng: the entry gives its leaf hash by
# the canonical encoding of docs/security.md, the RFC 9162 inclusion proof gives the root.
import hashlib, json, struct, sys

def H(b): return hashlib.sha256(b).digest()

def leaf(e):  # gng's canonical entry (docs/security.md), then RFC 9162's leaf hash
    def text(s): b = s.encode(); return struct.pack(">I", len(b)) + b
    entry = b"\x01" + struct.pack(">Qq", e["seq"], e["time_us"]) + text(e["kind"]) + text(e["actor"]) + text(e["detail"])
    return H(b"\x00" + entry)

def root_from_inclusion(index, size, h, path):  # RFC 9162, 2.1.3.2
    if index >= size: return None
    fn, sn, r = index, size - 1, h
    for p in path:
        if sn == 0: return None
        if fn & 1 or fn == sn:
            r = H(b"\x01" + p + r)
            while not fn & 1 and fn != 0: fn >>= 1; sn >>= 1
        else:
            r = H(b"\x01" + r + p)
        fn >>= 1; sn >>= 1
    return r if sn == 0 else None

proof = json.load(sys.stdin)
h = leaf(proof["entry"])
assert h.hex() == proof["leaf_hash"], "the entry does not give the leaf hash"
r = root_from_inclusion(proof["index"], proof["tree_size"], h, [bytes.fromhex(p) for p in proof["inclusion_proof"]])
print("entry", proof["index"], "is in the tree of", proof["tree_size"], "with root", r.hex()) if r and r.hex() == proof["root"] else sys.exit("proof FAILED")
