"""SSRF probe for the network-namespace policy test (stdlib only).

Runs INSIDE a network namespace the test created, where every peer address below is put on
the namespace's own `lo`, so a broken policy can only ever reach a sink of this script.

  python3 policy_probe.py SERVER_PORT SECRET PEER_PORT ADDR...

For each ADDR it binds a UDP sink on ADDR:PEER_PORT, then through the TURN server:
CreatePermission (prints its result), a Send indication regardless, and ChannelBind. At the
end it prints, per address, the permission result and whether the sink received anything:
`RESULT <addr> <SUCCESS|error N> <received|silent>`.
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import sys
import time
import zlib

MAGIC = 0x2112A442


def attr(t, v):
    return struct.pack("!HH", t, len(v)) + v + b"\0" * ((4 - len(v) % 4) % 4)


def xor_addr(ip, port, tid):
    xport = port ^ (MAGIC >> 16)
    packed = socket.inet_pton(socket.AF_INET, ip)
    x = struct.unpack("!I", packed)[0] ^ MAGIC
    return struct.pack("!BBHI", 0, 1, xport, x)


def message(mtype, tid, attrs, key=None):
    body = b"".join(attrs)
    if key is not None:
        head = struct.pack("!HHI", mtype, len(body) + 24, MAGIC) + tid
        body += attr(0x0008, hmac.new(key, head + body, hashlib.sha1).digest())
    head = struct.pack("!HHI", mtype, len(body) + 8, MAGIC) + tid
    crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    body += attr(0x8028, struct.pack("!I", crc))
    return struct.pack("!HHI", mtype, len(body), MAGIC) + tid + body


def parse(data):
    mtype, mlen, _ = struct.unpack("!HHI", data[:8])
    out, i = {}, 20
    while i + 4 <= 20 + mlen:
        t, n = struct.unpack("!HH", data[i:i + 4])
        out.setdefault(t, data[i + 4:i + 4 + n])
        i += 4 + n + ((4 - n % 4) % 4)
    return mtype, out


def code(a):
    e = a.get(0x0009)
    return (e[2] & 7) * 100 + e[3] if e else 0


def main():
    port, secret, peer_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    addrs = sys.argv[4:]
    sinks = {}
    for a in addrs:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((a, peer_port))
        s.setblocking(False)
        sinks[a] = s

    username = "%d:@probe:example.org" % (int(time.time()) + 3600)
    password = base64.b64encode(
        hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.settimeout(2)
    c.connect(("127.0.0.1", port))

    def request(mtype, attrs, key=None):
        tid = os.urandom(12)
        c.send(message(mtype, tid, attrs(tid), key))
        while True:
            mt, a = parse(c.recv(2048))
            return mt, a

    _, a = request(0x0003, lambda tid: [attr(0x0019, b"\x11\0\0\0")])
    realm, nonce = a[0x0014], a[0x0015]
    key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
    base = [attr(0x0006, username.encode()), attr(0x0014, realm), attr(0x0015, nonce)]
    mt, a = request(0x0003, lambda tid: [attr(0x0019, b"\x11\0\0\0")] + base, key)
    if mt != 0x0103:
        print("ALLOCATE failed", code(a), flush=True)
        sys.exit(1)
    print("ALLOCATE ok", flush=True)

    results = {}
    for n, a_ in enumerate(addrs):
        mt, r = request(0x0008, lambda tid: [attr(0x0012, xor_addr(a_, peer_port, tid))] + base, key)
        results[a_] = "SUCCESS" if mt == 0x0108 else "error %d" % code(r)
        # A Send indication whatever the answer: it must not reach the sink without permission.
        tid = os.urandom(12)
        c.send(message(0x0016, tid, [attr(0x0012, xor_addr(a_, peer_port, tid)),
                                     attr(0x0013, b"probe-send")]))
        mt, r = request(0x0009, lambda tid: [attr(0x000C, struct.pack("!HH", 0x4000 + n, 0)),
                                             attr(0x0012, xor_addr(a_, peer_port, tid))] + base, key)
        if mt == 0x0109:
            c.send(struct.pack("!HH", 0x4000 + n, 12) + b"probe-chdata")
    time.sleep(0.5)
    for a_ in addrs:
        try:
            sinks[a_].recv(2048)
            got = "received"
        except BlockingIOError:
            got = "silent"
        print("RESULT", a_, results[a_].replace(" ", "_"), got, flush=True)


main()
