"""Raw TCP traffic for the wire edge cases: given bytes sent in a chosen way, then what came back.

    traffic.py MODE HOST PORT HEX [ARG]

    send      one write (plain HTTP, garbage, a whole ClientHello)
    bytewise  one write per byte, TCP_NODELAY, ARG milliseconds apart (default 5): one segment per byte
    split     two writes, TCP_NODELAY: the first ARG bytes, then the rest (two segments)
    reset     one write, then close with SO_LINGER 0: the kernel sends RST instead of FIN

Prints one JSON line: pid, local_port, bytes sent, bytes received (and the first 16 in hex), and how the
reading ended ("eof", "reset", "timeout" after 1 s of silence; "not read" after a reset).
"""
import json
import os
import socket
import struct
import sys
import time


def main():
    mode, host, port, data = sys.argv[1], sys.argv[2], int(sys.argv[3]), bytes.fromhex(sys.argv[4])
    arg = int(sys.argv[5]) if len(sys.argv) > 5 else None
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    local_port = sock.getsockname()[1]
    if mode == "send" or mode == "reset":
        sock.sendall(data)
    elif mode == "bytewise":
        delay = (arg if arg is not None else 5) / 1000
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            time.sleep(delay)
    elif mode == "split":
        sock.sendall(data[:arg])
        sock.sendall(data[arg:])
    else:
        raise SystemExit("traffic.py: unknown mode " + mode)
    received, ended = b"", "not read"
    if mode == "reset":
        # linger on, timeout 0: close() discards the socket with a RST
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        sock.settimeout(1)  # the reading ends after 1 s of silence: a bare ClientHello never gets further
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    ended = "eof"
                    break
                received += chunk
        except socket.timeout:
            ended = "timeout"
        except ConnectionResetError:
            ended = "reset"
    sock.close()
    print(json.dumps({"pid": os.getpid(), "local_port": local_port, "sent": len(data),
                      "received": len(received), "head": received[:16].hex(), "ended": ended}), flush=True)


if __name__ == "__main__":
    main()
