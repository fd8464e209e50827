import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// `systemd/`: the units pass `systemd-analyze verify`, the service's exposure is at most 2.0,
/// the daemon really runs under the unit's sandbox, and the environment example documents
/// every variable presenced reads (with values that parse).
///
/// None of this needs systemd as PID 1: `systemd-analyze` works on unit files, and
/// `systemd/sandbox-check` boots its own systemd in new namespaces (skipped where that is not
/// allowed, e.g. a container without CAP_SYS_ADMIN).
final class SystemdUnitTests: XCTestCase {
    static let repository = DaemonProcess.repository
    static let systemdDirectory = repository.appendingPathComponent("systemd")

    /// Both units in a temporary directory, ExecStart pointing at the built binary (verify
    /// insists that it exists).
    private func unitsWithBuiltBinary() throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "presenced-units-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        let service = try String(contentsOf: Self.systemdDirectory.appendingPathComponent("presenced.service"), encoding: .utf8)
        XCTAssertTrue(service.contains("\nExecStart=/usr/local/bin/presenced\n"))
        try service.replacingOccurrences(of: "\nExecStart=/usr/local/bin/presenced\n", with: "\nExecStart=\(DaemonProcess.binary)\n")
            .write(to: directory.appendingPathComponent("presenced.service"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(
            at: Self.systemdDirectory.appendingPathComponent("presenced.socket"),
            to: directory.appendingPathComponent("presenced.socket"))
        return directory
    }

    func testUnitsPassSystemdAnalyzeVerifyWithoutWarnings() throws {
        let units = try unitsWithBuiltBinary()
        let result = try ExternalCommand.run(
            "systemd-analyze",
            [
                "verify", "--man=no",
                units.appendingPathComponent("presenced.socket").path,
                units.appendingPathComponent("presenced.service").path,
            ])
        XCTAssertEqual(result.status, 0, result.output)
        // verify exits 0 on unknown keys and unparsable values: any line about our units fails.
        let ours = result.output.split(separator: "\n").filter { $0.contains(units.path) || $0.contains("presenced.") }
        XCTAssertEqual(ours, [], "systemd-analyze verify complains about presenced's units")
    }

    func testVerifyWouldCatchAMistakeInTheUnit() throws {
        // The check above is only worth something if verify reports what we filter for.
        let units = try unitsWithBuiltBinary()
        let service = units.appendingPathComponent("presenced.service")
        try (try String(contentsOf: service, encoding: .utf8) + "ProtectSystem=sometimes\n").write(
            to: service, atomically: true, encoding: .utf8)
        let result = try ExternalCommand.run("systemd-analyze", ["verify", "--man=no", service.path])
        XCTAssertTrue(result.output.contains(units.path), result.output)
    }

    func testServiceExposureIsAtMost2() throws {
        let units = try unitsWithBuiltBinary()
        let result = try ExternalCommand.run(
            "systemd-analyze",
            [
                "security", "--offline=yes", "--no-pager",
                units.appendingPathComponent("presenced.service").path,
            ])
        XCTAssertEqual(result.status, 0, result.output)
        // → Overall exposure level for presenced.service: 1.1 OK 🙂
        guard
            let line = result.output.split(separator: "\n").first(where: { $0.contains("Overall exposure level for presenced.service:") }),
            let number = line.split(separator: ":").last?.split(separator: " ").first,
            let exposure = Double(number)
        else {
            return XCTFail("no overall exposure in:\n\(result.output)")
        }
        XCTAssertLessThanOrEqual(exposure, 2.0, result.output)
        // The sandbox settings that matter most for a network daemon are in force.
        for check in [
            "✓ User=/DynamicUser=", "✓ SystemCallFilter=~@privileged", "✓ CapabilityBoundingSet=~CAP_SYS_ADMIN",
            "✓ MemoryDenyWriteExecute=", "✓ ProtectSystem=", "✓ RestrictNamespaces=~user",
        ] {
            XCTAssertTrue(result.output.contains(check), "\(check) missing:\n\(result.output)")
        }
    }

    /// presenced started by a real systemd with every setting of the unit: io_uring and epoll serve
    /// a WebSocket, the queue reaches the state directory, SIGTERM ends with exit 0.
    func testDaemonRunsUnderTheUnitsSandbox() throws {
        // The unit's seccomp and W^X rules do not admit sanitizer runtimes (Benchmarks/sanitizers.sh).
        if DaemonProcess.sanitizerOptions.contains(where: { ProcessInfo.processInfo.environment[$0] != nil }) {
            throw XCTSkip("a sanitized build cannot run under the hardened unit")
        }
        let result = try ExternalCommand.run(Self.systemdDirectory.appendingPathComponent("sandbox-check").path, [DaemonProcess.binary])
        if result.status == 77 { throw XCTSkip(result.output.trimmingCharacters(in: .whitespacesAndNewlines)) }
        XCTAssertEqual(result.status, 0, result.output)
        XCTAssertTrue(result.output.contains("sandbox-check: all good"), result.output)
    }

    // MARK: The environment example

    /// `NAME` for every `NAME=` or `#NAME=` line, with its value.
    static func exampleAssignments() throws -> [(name: String, value: String, commented: Bool)] {
        let text = try String(contentsOf: systemdDirectory.appendingPathComponent("presenced.env.example"), encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let commented = line.hasPrefix("#")
            let body = commented ? line.dropFirst() : line[...]
            guard let eq = body.firstIndex(of: "="),
                body[..<eq].allSatisfy({ $0.isUppercase || $0.isNumber || $0 == "_" }), !body[..<eq].isEmpty
            else { return nil }
            return (String(body[..<eq]), String(body[body.index(after: eq)...]), commented)
        }
    }

    func testEnvironmentExampleDocumentsEveryVariable() throws {
        let read = Set(ConfigVariable.all.map(\.name))
        XCTAssertGreaterThanOrEqual(read.count, 25, "Config declares too few variables: \(read.sorted())")
        let documented = Set(try Self.exampleAssignments().map(\.name))
        // SSL_CERT_FILE is read by OpenSSL, not by Config.parse.
        XCTAssertEqual(read.union(["SSL_CERT_FILE"]).subtracting(documented).sorted(), [], "read but not in presenced.env.example")
        // And nothing documented that presenced does not read (stale entries mislead operators).
        XCTAssertEqual(documented.subtracting(read).subtracting(["SSL_CERT_FILE"]).sorted(), [], "in the example but never read")
        // Exactly one block each.
        let names = try Self.exampleAssignments().map(\.name)
        XCTAssertEqual(names.count, Set(names).count, "a variable appears twice: \(names)")
    }

    func testEnvironmentExampleValuesParse() throws {
        let assignments = try Self.exampleAssignments()
        // As shipped (the required secret filled in, as make install does): only the required lines are live.
        var live: [String: String] = [:]
        for a in assignments where !a.commented { live[a.name] = a.value }
        XCTAssertEqual(Set(live.keys), ["WS_TOKEN_SECRET", "ALLOWED_ORIGINS"])
        XCTAssertEqual(live["WS_TOKEN_SECRET"], "", "the example must not ship a usable secret")
        live["WS_TOKEN_SECRET"] = String(repeating: "ab", count: 32)
        XCTAssertNoThrow(try Config.parse(environment: live, arguments: []))
        // Every commented example uncommented: each documented value is one presenced accepts.
        var all = live
        for a in assignments where a.commented { all[a.name] = a.value }
        XCTAssertEqual(all["ENV_FILE"], "/etc/presenced/env")
        // Files must exist where presenced runs; not on a build machine.
        for name in ["ENV_FILE", "SSL_CERT_FILE"] where all[name] != nil { all[name] = "/dev/null" }
        let config = try Config.parse(environment: all, arguments: [])
        XCTAssertEqual(config.drainWindowMillis, 5_000)
    }

    func testUnitDeclaresWhatTheDaemonImplements() throws {
        let service = try String(contentsOf: Self.systemdDirectory.appendingPathComponent("presenced.service"), encoding: .utf8)
        let settings = Set(service.split(separator: "\n").filter { !$0.hasPrefix("#") }.map(String.init))
        for line in [
            "Type=notify", "NotifyAccess=main", "ExecReload=/bin/kill -HUP $MAINPID", "Requires=presenced.socket",
            "EnvironmentFile=/etc/presenced/env", "Environment=ENV_FILE=/etc/presenced/env", "StateDirectory=presenced",
            "LimitNOFILE=1048576", "Restart=on-failure", "RestartPreventExitStatus=78", "KillSignal=SIGTERM",
        ] {
            XCTAssertTrue(settings.contains(line), "presenced.service lacks \(line)")
        }
        // The stop timeout leaves room for the default drain window (5 s) plus the close timeout (2 s).
        let stop = settings.first { $0.hasPrefix("TimeoutStopSec=") }.flatMap { Int($0.dropFirst("TimeoutStopSec=".count).dropLast()) }
        XCTAssertGreaterThanOrEqual(stop ?? 0, 5 + 2 + 5)
        let watchdog = settings.first { $0.hasPrefix("WatchdogSec=") }.flatMap { Int($0.dropFirst("WatchdogSec=".count).dropLast()) }
        XCTAssertNotNil(watchdog)
        let socket = try String(contentsOf: Self.systemdDirectory.appendingPathComponent("presenced.socket"), encoding: .utf8)
        for line in ["ListenStream=8082", "ReusePort=no", "Service=presenced.service"] {
            XCTAssertTrue(socket.split(separator: "\n").contains(Substring(line)), "presenced.socket lacks \(line)")
        }
    }
}

/// A tool run to completion with stdout and stderr captured together.
enum ExternalCommand {
    static func run(
        _ tool: String, _ arguments: [String], environment: [String: String]? = nil,
        directory: URL? = nil
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        if tool.contains("/") {
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
        } else {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = [tool] + arguments
        }
        if let environment { process.environment = environment }
        if let directory { process.currentDirectoryURL = directory }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if process.terminationStatus == 127 && output.contains("No such file") {
            XCTFail("\(tool) is not installed (Tests/run installs it: systemd, make)")
        }
        return (process.terminationStatus, output)
    }
}
