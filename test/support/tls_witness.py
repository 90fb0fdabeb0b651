"""A TLS peer that reports what was negotiated, from its own SSL object and from the wire.

    tls_witness.py client PORT SNI [--max-version TLSv1_2] [--curve NAME] [--host ADDRESS]
    tls_witness.py server PORT CERT KEY COUNT [--curve NAME] [--max-version TLSv1_2]   (COUNT handshakes)

Each handshake prints one JSON line: pid, role, the socket's local port, version() and cipher() as the ssl
module reports them, the cipher's IANA code (from get_ciphers()), and the key-exchange group's IANA code point
read from the handshake messages themselves (ServerHello key_share for TLS 1.3, ServerKeyExchange named curve
for TLS 1.2), through the ssl module's message callback. Uses the system python, hence the system libssl.
"""
import json
import os
import socket
import ssl
import sys

HANDSHAKE = 22
CLIENT_HELLO = 1
SERVER_HELLO = 2
SUPPORTED_GROUPS = 10
SERVER_KEY_EXCHANGE = 12
KEY_SHARE = 51


def server_hello_group(data):
    """The key_share group of a ServerHello (HelloRetryRequest included), or None."""
    at = 4 + 2 + 32
    at += 1 + data[at]  # legacy session id
    at += 2 + 1  # cipher suite, compression
    if at + 2 > len(data):
        return None
    end = at + 2 + int.from_bytes(data[at:at + 2], "big")
    at += 2
    while at + 4 <= end:
        kind = int.from_bytes(data[at:at + 2], "big")
        size = int.from_bytes(data[at + 2:at + 4], "big")
        if kind == KEY_SHARE:
            return int.from_bytes(data[at + 4:at + 6], "big")
        at += 4 + size
    return None


def client_hello_groups(data):
    """The supported_groups list of a ClientHello, in order."""
    at = 4 + 2 + 32
    at += 1 + data[at]  # session id
    at += 2 + int.from_bytes(data[at:at + 2], "big")  # cipher suites
    at += 1 + data[at]  # compression methods
    end = at + 2 + int.from_bytes(data[at:at + 2], "big")
    at += 2
    while at + 4 <= end:
        kind = int.from_bytes(data[at:at + 2], "big")
        size = int.from_bytes(data[at + 2:at + 4], "big")
        if kind == SUPPORTED_GROUPS:
            n = int.from_bytes(data[at + 4:at + 6], "big")
            return [int.from_bytes(data[at + 6 + i:at + 8 + i], "big") for i in range(0, n, 2)]
        at += 4 + size
    return None


def server_key_exchange_group(data):
    """The named curve of an ECDHE ServerKeyExchange (curve_type 3), or None (e.g. DHE)."""
    if len(data) >= 7 and data[4] == 3:
        return int.from_bytes(data[5:7], "big")
    return None


def watch(ctx, seen):
    def callback(conn, direction, version, content_type, msg_type, data):
        if content_type != HANDSHAKE or len(data) < 4:
            return
        if msg_type == CLIENT_HELLO and "offered" not in seen:
            seen["offered"] = client_hello_groups(data)  # the first ClientHello: what the client offered
        elif msg_type == SERVER_HELLO:
            group = server_hello_group(data)
            if group is not None:
                seen["group"] = group  # the last one wins: after a HelloRetryRequest, the real ServerHello
        elif msg_type == SERVER_KEY_EXCHANGE:
            group = server_key_exchange_group(data)
            if group is not None:
                seen["group"] = group
    ctx._msg_callback = callback


def report(sock, ctx, role, seen):
    name, _, _ = sock.cipher()
    code = next((c["id"] & 0xFFFF for c in ctx.get_ciphers() if c["name"] == name), None)
    if code is None:
        code = {"TLS_AES_256_GCM_SHA384": 0x1302, "TLS_AES_128_GCM_SHA256": 0x1301,
                "TLS_CHACHA20_POLY1305_SHA256": 0x1303}.get(name)
    print(json.dumps({"pid": os.getpid(), "role": role, "local_port": sock.getsockname()[1],
                      "version": sock.version(), "cipher": name,
                      "cipher_code": code, "group": seen.get("group"), "offered": seen.get("offered")}),
          flush=True)


def options(args):
    opts = {"curve": None, "max_version": None, "host": "127.0.0.1"}
    for i, a in enumerate(args):
        if a == "--curve":
            opts["curve"] = args[i + 1]
        elif a == "--max-version":
            opts["max_version"] = args[i + 1]
        elif a == "--host":
            opts["host"] = args[i + 1]
    return opts


def configure(ctx, opts):
    if opts["curve"]:
        ctx.set_ecdh_curve(opts["curve"])
    if opts["max_version"]:
        ctx.maximum_version = getattr(ssl.TLSVersion, opts["max_version"])


def client(port, sni, opts):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    configure(ctx, opts)
    seen = {}
    watch(ctx, seen)
    with socket.create_connection((opts["host"], port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as sock:
            report(sock, ctx, "client", seen)
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            sock.recv(1024)


def server(port, cert, key, count, opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    configure(ctx, opts)
    with socket.create_server(("127.0.0.1", port)) as listener:
        print(json.dumps({"listening": port, "pid": os.getpid()}), flush=True)
        done = 0
        while done < count:  # connections that never handshake (a port probe) do not count
            raw, _ = listener.accept()
            seen = {}
            watch(ctx, seen)
            try:
                with ctx.wrap_socket(raw, server_side=True) as sock:
                    report(sock, ctx, "server", seen)
                    done += 1
                    sock.recv(1024)
                    sock.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
            except (ssl.SSLError, OSError):
                pass


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "client":
        client(int(sys.argv[2]), sys.argv[3], options(sys.argv[4:]))
    else:
        server(int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), options(sys.argv[6:]))
