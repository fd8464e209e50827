import XCTest

@testable import PresenceOutbound

/// `OutboundURL` parsing: schemes, hosts, ports, path prefixes and what is refused.
final class OutboundURLTests: XCTestCase {
    func testDefaultsAndPaths() throws {
        let plain = try XCTUnwrap(OutboundURL("http://auth.internal"))
        XCTAssertEqual(plain, OutboundURL("http://auth.internal/"))
        XCTAssertFalse(plain.isTLS)
        XCTAssertEqual(plain.host, "auth.internal")
        XCTAssertEqual(plain.port, 80)
        XCTAssertEqual(plain.path, "")
        XCTAssertEqual(plain.hostHeader, "auth.internal")

        let secure = try XCTUnwrap(OutboundURL("HTTPS://Casa.Devarno.Cloud:8443/auth//"))
        XCTAssertTrue(secure.isTLS)
        XCTAssertEqual(secure.host, "casa.devarno.cloud")
        XCTAssertEqual(secure.port, 8443)
        XCTAssertEqual(secure.path, "/auth")
        XCTAssertEqual(secure.hostHeader, "casa.devarno.cloud:8443")
        XCTAssertEqual(OutboundURL("https://a.example:443")?.hostHeader, "a.example")
    }

    func testIPLiterals() throws {
        let v4 = try XCTUnwrap(OutboundURL("http://127.0.0.1:3000/x"))
        XCTAssertEqual(v4.host, "127.0.0.1")
        XCTAssertEqual(v4.port, 3000)
        let v6 = try XCTUnwrap(OutboundURL("https://[::1]:8443"))
        XCTAssertEqual(v6.host, "::1")
        XCTAssertEqual(v6.hostHeader, "[::1]:8443")
        XCTAssertEqual(OutboundURL("https://[2001:db8::1]")?.hostHeader, "[2001:db8::1]")
    }

    func testRefusals() {
        for bad in [
            "", "auth.internal", "ftp://x", "http://", "http:///path", "http://host:0", "http://host:65536",
            "http://host:", "http://host:8a", "http://user:pw@host", "http://host/?q=1", "http://host/#f",
            "http://ho st", "http://[::1", "http://[::1]x", "http://[host]", "http://hö.st", "http://host\\x",
        ] {
            XCTAssertNil(OutboundURL(bad), bad)
        }
    }
}
