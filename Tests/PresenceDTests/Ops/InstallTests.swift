import Foundation
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// The Makefile's `install` and `uninstall`, staged into a DESTDIR with the already built debug
/// binary (BINARY=) so that no release build runs.
final class InstallTests: XCTestCase {
    private var stage: URL!

    override func setUpWithError() throws {
        stage = FileManager.default.temporaryDirectory.appendingPathComponent(
            "presenced-install-\(getpid())-\(UInt32.random(in: 0 ... .max))")
        try FileManager.default.createDirectory(at: stage, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: stage)
    }

    private func make(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try ExternalCommand.run("make", ["--no-print-directory", "-C", SystemdUnitTests.repository.path] + arguments)
    }

    private func file(_ path: String) -> URL { stage.appendingPathComponent(String(path.dropFirst())) }

    private func mode(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: file(path).path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    private func secret(in envFile: String) throws -> String? {
        try String(contentsOf: file(envFile), encoding: .utf8).split(separator: "\n")
            .first { $0.hasPrefix("WS_TOKEN_SECRET=") }.map { String($0.dropFirst("WS_TOKEN_SECRET=".count)) }
    }

    func testInstallStagesTheLayoutAndKeepsAnExistingEnvironmentFile() throws {
        let first = try make(["install", "DESTDIR=\(stage.path)", "BINARY=\(DaemonProcess.binary)"])
        XCTAssertEqual(first.status, 0, first.output)
        XCTAssertFalse(first.output.contains("swift build"), "BINARY= must skip the build")
        XCTAssertTrue(first.output.contains("systemctl enable --now presenced.socket presenced.service"), first.output)

        XCTAssertEqual(try mode("/usr/local/bin/presenced"), 0o755)
        XCTAssertEqual(try mode("/etc/systemd/system/presenced.service"), 0o644)
        XCTAssertEqual(try mode("/etc/systemd/system/presenced.socket"), 0o644)
        XCTAssertEqual(try mode("/etc/presenced/env.example"), 0o644)
        XCTAssertEqual(try mode("/etc/presenced/env"), 0o640)
        XCTAssertEqual(try mode("/usr/local/share/doc/presenced/operations.md"), 0o644)
        XCTAssertTrue(FileManager.default.contentsEqual(atPath: file("/usr/local/bin/presenced").path, andPath: DaemonProcess.binary))
        XCTAssertEqual(
            try String(contentsOf: file("/etc/systemd/system/presenced.service"), encoding: .utf8),
            try String(contentsOf: SystemdUnitTests.systemdDirectory.appendingPathComponent("presenced.service"), encoding: .utf8))

        // The live file: a fresh 32-byte secret that presenced accepts, the rest as in the example.
        let generated = try XCTUnwrap(try secret(in: "/etc/presenced/env"))
        XCTAssertEqual(generated.count, 64)
        XCTAssertTrue(generated.allSatisfy(\.isHexDigit))
        XCTAssertNoThrow(try Config.parse(environment: ["WS_TOKEN_SECRET": generated], arguments: []))
        XCTAssertFalse(first.output.contains(generated), "the secret must not be printed")

        // A second install keeps the operator's file.
        let second = try make(["install", "DESTDIR=\(stage.path)", "BINARY=\(DaemonProcess.binary)"])
        XCTAssertEqual(second.status, 0, second.output)
        XCTAssertEqual(try secret(in: "/etc/presenced/env"), generated)
        XCTAssertTrue(second.output.contains("keeping the existing"), second.output)

        // Uninstall removes what install put there except the secrets.
        let uninstall = try make(["uninstall", "DESTDIR=\(stage.path)"])
        XCTAssertEqual(uninstall.status, 0, uninstall.output)
        for gone in [
            "/usr/local/bin/presenced", "/etc/systemd/system/presenced.service", "/etc/systemd/system/presenced.socket",
            "/etc/presenced/env.example", "/usr/local/share/doc/presenced/operations.md",
        ] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: file(gone).path), "\(gone) left behind")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: file("/etc/presenced/env").path))
    }

    func testPrefixAndConfigurationDirectoryReachTheUnit() throws {
        let result = try make([
            "install", "DESTDIR=\(stage.path)", "BINARY=\(DaemonProcess.binary)",
            "PREFIX=/opt/presenced", "CONFDIR=/etc/presenced-b",
        ])
        XCTAssertEqual(result.status, 0, result.output)
        let unit = try String(contentsOf: file("/etc/systemd/system/presenced.service"), encoding: .utf8)
        XCTAssertTrue(unit.contains("\nExecStart=/opt/presenced/bin/presenced\n"), unit)
        XCTAssertTrue(unit.contains("\nEnvironmentFile=/etc/presenced-b/env\n"))
        XCTAssertTrue(unit.contains("\nEnvironment=ENV_FILE=/etc/presenced-b/env\n"))
        XCTAssertFalse(unit.contains("/usr/local/"), "a path still points at the default prefix")
        XCTAssertEqual(try mode("/opt/presenced/bin/presenced"), 0o755)
        XCTAssertEqual(try mode("/etc/presenced-b/env"), 0o640)
    }

    func testInstallWithoutBinaryBuildsARelease() throws {
        let dryRun = try make(["-n", "install", "DESTDIR=\(stage.path)"])
        XCTAssertEqual(dryRun.status, 0, dryRun.output)
        XCTAssertTrue(dryRun.output.contains("swift build -c release"), dryRun.output)
        XCTAssertTrue(dryRun.output.contains(".build/release/presenced"), dryRun.output)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: stage.path), [], "make -n must not write")
    }
}
