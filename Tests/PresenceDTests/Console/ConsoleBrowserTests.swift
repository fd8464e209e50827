import Foundation
import Glibc
import XCTest

@testable import PresenceD
@testable import PresenceLoop

/// The console in a real browser: the presenced binary in embedded mode, headless Chromium with
/// two tabs as two users in one channel. Each sees the other come online, type and write; when
/// one tab closes, the other sees it go offline. With PRESENCED_CONSOLE_SCREENSHOT=<path> it
/// saves a 1280×800 PNG of the first tab (both users, typing, the instance view).
final class ConsoleBrowserTests: XCTestCase {
    private let adminToken = "console-test-admin-token-0123"

    func testTwoUsersSeeEachOtherLive() throws {
        guard let binary = HeadlessChromium.find() else {
            throw XCTSkip(
                "chromium not installed: apt-get install chromium (or set CHROMIUM=/path/to/chrome) to run the console browser test")
        }
        let started = EventLoop.monotonicMillis()
        let screenshot = ProcessInfo.processInfo.environment["PRESENCED_CONSOLE_SCREENSHOT"]
        let daemon = try DaemonProcess(environment: ["CONSOLE_ADMIN_TOKEN": adminToken, "PRESENCE_GRACE": "500ms", "THREADS": "2"])
        let chromium = try HeadlessChromium(binary: binary)
        defer { chromium.close() }
        let url = "http://127.0.0.1:\(daemon.port)/"

        let a = try chromium.open(url)
        let b = try chromium.open(url)
        for page in [a, b] {
            try page.waitFor("the console script ran", #"document.body && document.body.dataset.ready === "true""#)
        }
        if screenshot != nil {
            // The instance view, filled before the users arrive so its chart has a few samples.
            try a.waitFor("the instance view is offered", #"!document.getElementById("instance-view").hidden"#)
            _ = try a.evaluate(
                """
                (() => { document.getElementById("admin-token").value = "\(adminToken)";
                         document.getElementById("admin-show").click(); return true })()
                """)
            try a.waitFor("the instance view shows stats", #"!document.getElementById("stats").hidden"#)
        }
        try join(a, as: "alice")
        try a.waitFor("alice sees herself online", online("alice"))
        try join(b, as: "bob")
        try a.waitFor("alice sees bob online", online("bob"))
        try b.waitFor("bob sees alice online", online("alice"))

        try type(b, "hel")
        try a.waitFor("alice sees bob typing", typing("bob"))
        try type(a, "hi")
        try b.waitFor("bob sees alice typing", typing("alice"))

        try send(b, "hello from bob")
        try a.waitFor("alice gets bob's message", message(from: "bob", "hello from bob"))
        try send(a, "hi bob, alice here")
        try b.waitFor("bob gets alice's message", message(from: "alice", "hi bob, alice here"))
        try a.waitFor("alice's own message is echoed to her", message(from: "alice", "hi bob, alice here"))

        if let screenshot {
            try a.waitFor(
                "the chart has samples", #"Number(document.getElementById("chart").dataset.samples || 0) >= 3"#,
                timeoutMillis: 30_000)
            try type(b, "typing again")
            try a.waitFor("alice sees bob typing again", typing("bob"))
            try a.call("Emulation.setDeviceMetricsOverride", ["width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": false])
            pause(millis: 300)
            let shot = try a.call("Page.captureScreenshot", ["format": "png"])
            let data = try XCTUnwrap((shot["data"] as? String).flatMap { Data(base64Encoded: $0) }, "no screenshot data")
            XCTAssertEqual(Array(data.prefix(4)), [0x89, 0x50, 0x4E, 0x47], "not a PNG")
            try data.write(to: URL(fileURLWithPath: screenshot))
        }

        try chromium.closeTarget(b.id)
        try a.waitFor("alice sees bob go offline after his tab closed", "\(member("bob"))?.dataset.online === \"false\"")
        XCTAssertEqual(try a.evaluate("\(member("alice"))?.dataset.online") as? String, "true", "alice is still online")
        print("console browser test: \(EventLoop.monotonicMillis() - started) ms wall time")
        withExtendedLifetime(daemon) {}
    }

    private func join(_ page: DevToolsPage, as user: String) throws {
        _ = try page.evaluate(
            """
            (() => { document.getElementById("user").value = "\(user)";
                     document.getElementById("channel").value = "console-test";
                     document.getElementById("connect").click(); return true })()
            """)
        try page.waitFor("\(user) can write", #"!document.getElementById("text").disabled"#)
    }

    private func type(_ page: DevToolsPage, _ text: String) throws {
        _ = try page.evaluate(
            """
            (() => { const t = document.getElementById("text"); t.value = "\(text)";
                     t.dispatchEvent(new Event("input", { bubbles: true })); return true })()
            """)
    }

    private func send(_ page: DevToolsPage, _ text: String) throws {
        try type(page, text)
        _ = try page.evaluate(#"(() => { document.getElementById("send").click(); return true })()"#)
    }

    private func member(_ user: String) -> String { #"document.querySelector('#members li[data-user="\#(user)"]')"# }
    private func online(_ user: String) -> String { "\(member(user))?.dataset.online === \"true\"" }

    private func typing(_ user: String) -> String {
        #"(document.getElementById("typing").dataset.users || "").split(",").includes("\#(user)") && document.getElementById("typing").textContent.includes("\#(user)")"#
    }

    private func message(from sender: String, _ text: String) -> String {
        #"[...document.querySelectorAll('#messages li[data-sender="\#(sender)"]')].some(li => li.textContent.includes("\#(text)"))"#
    }
}
