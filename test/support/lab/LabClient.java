// A TLS client for the lab: one handshake to ADDRESS:PORT with its own SNI, certificate not verified, one
// HTTP/1.0 request; prints what JSSE's SSLSession reports as one JSON line.
//
//   java LabClient ADDRESS PORT SNI
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

public class LabClient {
  /** Accepts any certificate: the lab's is self-signed and the test is about the handshake. */
  static final class TrustAll implements X509TrustManager {
    public void checkClientTrusted(X509Certificate[] chain, String type) {}
    public void checkServerTrusted(X509Certificate[] chain, String type) {}
    public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: java LabClient ADDRESS PORT SNI");
      System.exit(2);
    }
    String address = args[0];
    int port = Integer.parseInt(args[1]);
    String sni = args[2];
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(null, new TrustManager[] {new TrustAll()}, null);
    Socket raw = new Socket();
    raw.connect(new InetSocketAddress(address, port), 10_000);
    SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(raw, sni, port, true);
    SSLParameters params = socket.getSSLParameters();
    params.setServerNames(List.of(new SNIHostName(sni)));
    socket.setSSLParameters(params);
    socket.startHandshake();
    SSLSession session = socket.getSession();
    OutputStream out = socket.getOutputStream();
    out.write(("GET / HTTP/1.0\r\nHost: " + sni + "\r\n\r\n").getBytes(StandardCharsets.US_ASCII));
    out.flush();
    String status = new BufferedReader(new InputStreamReader(socket.getInputStream(), StandardCharsets.US_ASCII)).readLine();
    socket.close();
    // Java 17's public API does not say which key-exchange group was used
    System.out.println("{\"pid\":" + ProcessHandle.current().pid()
        + ",\"local_port\":" + raw.getLocalPort()
        + ",\"version\":\"" + session.getProtocol() + "\""
        + ",\"cipher\":\"" + session.getCipherSuite() + "\""
        + ",\"group\":null"
        + ",\"status\":\"" + (status == null ? "" : status.replace("\"", "")) + "\"}");
  }
}
