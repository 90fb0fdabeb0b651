// A TLS client for the lab, run by Node.js and by Bun (node:tls in both): one handshake to ADDRESS:PORT with
// its own SNI, certificate not verified, one HTTP/1.0 request; prints what the runtime reports as one JSON line.
//
//   node tls-client.mjs ADDRESS PORT SNI      bun tls-client.mjs ADDRESS PORT SNI
import { connect } from "node:tls";

const [address, port, sni] = process.argv.slice(2);
const socket = connect(
  { host: address, port: Number(port), servername: sni, rejectUnauthorized: false },
  () => {
    const key = socket.getEphemeralKeyInfo?.() ?? null;
    const report = {
      pid: process.pid,
      local_port: socket.localPort ?? null,
      version: socket.getProtocol(),
      cipher: socket.getCipher()?.standardName ?? null,
      group: key?.name ?? null,
      alpn: socket.alpnProtocol || null,
    };
    let response = "";
    socket.on("data", (chunk) => {
      response += chunk.toString("latin1");
    });
    socket.on("end", () => {
      console.log(JSON.stringify({ ...report, status: response.split("\r\n")[0] }));
      socket.destroy();
    });
    socket.write(`GET / HTTP/1.0\r\nHost: ${sni}\r\n\r\n`);
  },
);
socket.on("error", (err) => {
  console.error(`tls-client: ${err.message}`);
  process.exit(1);
});
