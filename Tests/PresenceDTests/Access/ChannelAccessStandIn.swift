import Foundation
import Glibc
import TestSupport

@testable import PresenceD

/// A real HTTP stand-in for family-hub's channel access endpoint (CHANNEL_AUTH_URL): a user may
/// join the channels of their family. Special channels answer otherwise, to test every kind of
/// answer: `http500:*` 500, `http404:*` 404, `http403:*` 403, `garbage:*` a 200 that is not the
/// expected object, `silent:*` nothing at all. Every answer waits `delayMillis` first. Every
/// request is recorded with its parsed body.
final class ChannelAccessStandIn: @unchecked Sendable {
    /// One check as received.
    struct Check: Equatable {
        var user: String?
        var channel: String?
        var role: String??
        var sessionID: String??
        var requestID: String?
        var traceparent: String?
        var authorization: String?
    }

    /// Who may join what, and the delay: shared with the server's threads.
    private final class Rules: @unchecked Sendable {
        let lock = NSLock()
        var families: [String: Set<String>]
        var delay: Int
        init(families: [String: Set<String>], delay: Int) {
            self.families = families
            self.delay = delay
        }
    }

    let server: StandInHTTPServer
    private let rules: Rules

    /// `families`: user → the channels they may join.
    init(families: [String: Set<String>], delayMillis: Int = 0) throws {
        let rules = Rules(families: families, delay: delayMillis)
        self.rules = rules
        server = try StandInHTTPServer { request in ChannelAccessStandIn.answer(request, rules) }
    }

    deinit { server.stop() }

    var url: String { server.baseURL + "/internal/channel-access" }

    var delayMillis: Int {
        get { rules.lock.withLock { rules.delay } }
        set { rules.lock.withLock { rules.delay = newValue } }
    }

    func allow(_ user: String, _ channel: String) { rules.lock.withLock { _ = rules.families[user, default: []].insert(channel) } }
    func forbid(_ user: String, _ channel: String) { rules.lock.withLock { _ = rules.families[user]?.remove(channel) } }

    /// Every check received so far, in order.
    var checks: [Check] {
        server.requests.map { request in
            let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] ?? [:]
            func optional(_ key: String) -> String?? {
                guard let value = body[key] else { return .none }
                return .some(value as? String)
            }
            return Check(
                user: body["user_id"] as? String, channel: body["channel"] as? String, role: optional("role"),
                sessionID: optional("session_id"), requestID: request.header("x-request-id"),
                traceparent: request.header("traceparent"), authorization: request.header("authorization"))
        }
    }

    /// Checks of one (user, channel).
    func count(_ user: String, _ channel: String) -> Int { checks.filter { $0.user == user && $0.channel == channel }.count }

    private static func answer(_ request: StandInHTTPServer.Request, _ rules: Rules) -> StandInHTTPServer.Reply {
        let body = (try? JSONSerialization.jsonObject(with: Data(request.body))) as? [String: Any] ?? [:]
        let user = body["user_id"] as? String ?? "", channel = body["channel"] as? String ?? ""
        let (wait, allowed) = rules.lock.withLock { (rules.delay, rules.families[user]?.contains(channel) == true) }
        if channel.hasPrefix("silent:") { return .silent }
        if wait > 0 { usleep(UInt32(wait * 1000)) }
        if channel.hasPrefix("http500:") { return StandInHTTPServer.response(status: 500, body: #"{"error":"boom"}"#) }
        if channel.hasPrefix("http404:") { return StandInHTTPServer.response(status: 404, body: #"{"error":"no"}"#) }
        if channel.hasPrefix("http403:") { return StandInHTTPServer.response(status: 403, body: #"{"error":"forbidden"}"#) }
        if channel.hasPrefix("garbage:") { return StandInHTTPServer.response(status: 200, body: #"{"allowed":"yes"}"#) }
        guard request.requestLine == "POST /internal/channel-access HTTP/1.1",
            request.header("content-type") == "application/json"
        else {
            return StandInHTTPServer.response(status: 400, body: #"{"error":"bad request"}"#)
        }
        return StandInHTTPServer.response(status: 200, body: allowed ? #"{"allowed":true}"# : #"{"allowed":false}"#)
    }
}
