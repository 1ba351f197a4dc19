import Observability
import Testing

@Suite struct ListenAddressTests {
    @Test(arguments: [
        ("127.0.0.1:9464", ListenAddress.Family.ipv4, "127.0.0.1", 9464),
        ("0.0.0.0:0", .ipv4, "0.0.0.0", 0),
        ("localhost:9187", .ipv4, "127.0.0.1", 9187),
        ("[::1]:9187", .ipv6, "::1", 9187),
        ("[::]:65535", .ipv6, "::", 65535),
        ("[fd00::1:2]:80", .ipv6, "fd00::1:2", 80),
    ])
    func parses(text: String, family: ListenAddress.Family, host: String, port: Int) throws {
        let address = try ListenAddress(parsing: text)
        #expect(address.family == family && address.host == host && Int(address.port) == port)
    }

    @Test(arguments: [
        ("0.0.0.0:99999", "metrics.listen: '0.0.0.0:99999' is not host:port"),
        ("9464", "metrics.listen: '9464' is not host:port"),
        ("127.0.0.1:", "is not host:port"),
        ("::1:9187", "write it as \"[::1]:9187\""),
        ("[127.0.0.1]:80", "'127.0.0.1' in '[127.0.0.1]:80' is not an IPv6 address"),
        (":9464", "has no host"),
        ("metrics.internal:9464", "'metrics.internal' in 'metrics.internal:9464' is not an IP address or localhost"),
        ("256.1.1.1:80", "is not an IP address"),
    ])
    func rejectsWithTheFix(text: String, expected: String) {
        #expect {
            try ListenAddress(parsing: text)
        } throws: { error in
            let error = error as? MetricsServerError
            return error?.code == .invalidAddress && error?.message.contains(expected) == true && error?.message.contains("write") == true
        }
    }
}
