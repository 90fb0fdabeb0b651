// A TLS client for the lab: one handshake to ADDRESS:PORT with its own SNI, certificate not verified, one
// HTTP/1.0 request; prints what crypto/tls reports about the connection as one JSON line.
//
//	client ADDRESS PORT SNI
package main

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
)

// versionName is the name OpenSSL and the IANA registry use (Go 1.19 has no tls.VersionName).
func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "TLSv1.3"
	case tls.VersionTLS12:
		return "TLSv1.2"
	case tls.VersionTLS11:
		return "TLSv1.1"
	case tls.VersionTLS10:
		return "TLSv1"
	}
	return fmt.Sprintf("0x%04x", v)
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: client ADDRESS PORT SNI")
		os.Exit(2)
	}
	address, port, sni := os.Args[1], os.Args[2], os.Args[3]
	raw, err := net.Dial("tcp", net.JoinHostPort(address, port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	conn := tls.Client(raw, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err := conn.Handshake(); err != nil {
		fmt.Fprintln(os.Stderr, "handshake:", err)
		os.Exit(1)
	}
	state := conn.ConnectionState()
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", sni)
	status, _ := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	// Go 1.19's ConnectionState does not say which key-exchange group was used
	out, _ := json.Marshal(map[string]any{
		"pid":        os.Getpid(),
		"local_port": raw.LocalAddr().(*net.TCPAddr).Port,
		"version":    versionName(state.Version),
		"cipher":     tls.CipherSuiteName(state.CipherSuite),
		"group":      nil,
		"alpn":       state.NegotiatedProtocol,
		"status":     strings.TrimSpace(status),
	})
	fmt.Println(string(out))
}
