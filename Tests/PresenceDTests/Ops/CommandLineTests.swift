import Foundation
import XCTest

@testable import PresenceD

/// The built `presenced` binary as an operator runs it.
final class CommandLineTests: XCTestCase {
    static var binary: URL { URL(fileURLWithPath: DaemonProcess.binary) }

    private func run(_ args: [String], env: [String: String] = [:]) throws -> (status: Int32, out: String, err: String) {
        try DaemonProcess.run(args, environment: env)
    }

    func testHelpAndVersion() throws {
        let help = try run(["--help"])
        XCTAssertEqual(help.status, 0)
        XCTAssertTrue(help.out.contains("--io KIND"))
        let version = try run(["--version"])
        XCTAssertEqual(version.status, 0)
        XCTAssertTrue(version.out.hasPrefix("presenced "))
    }

    func testBadConfigurationExits78WithOneLine() throws {
        let r = try run([], env: ["PING_INTERVAL": "often"])
        XCTAssertEqual(r.status, 78)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1)
        XCTAssertTrue(r.err.contains("PING_INTERVAL"))
    }

    /// Start the real daemon in echo mode on each backend, echo once, stop it with SIGTERM.
    func testDaemonServesEchoAndStopsOnSIGTERM() throws {
        for backend in availableBackends {
            let p = Process()
            p.executableURL = Self.binary
            p.arguments = ["--echo", "--port", "0", "--io", backend.rawValue, "--threads", "2"]
            let out = Pipe()
            p.standardOutput = out
            try p.run()
            // The "listening" log line carries the bound port.
            var port: UInt16 = 0
            var seen = ""
            while port == 0 {
                let data = out.fileHandleForReading.availableData
                if data.isEmpty { break }
                seen += String(decoding: data, as: UTF8.self)
                for line in seen.split(separator: "\n") where line.contains("\"msg\":\"listening\"") {
                    let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: String]
                    XCTAssertEqual(obj["io"], backend.rawValue)
                    port = UInt16(obj["port"]!)!
                }
            }
            XCTAssertNotEqual(port, 0, seen)
            let ws = try TestWebSocket(port: port)
            try ws.sendText("over the wire")
            XCTAssertEqual(try ws.receiveMessage(), .text("over the wire"))
            p.terminate()
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, 0)
        }
    }
}
