import PresenceLoop
import PresenceOutbound

/// What the console needs beside the hub: whether its two optional parts are on, this
/// instance's id and start time, and the history ring (only with CONSOLE_ADMIN_TOKEN).
final class ConsoleState: Sendable {
    /// `POST /api/v1/dev-token` exists (CONSOLE_DEV_TOKENS, auto = embedded mode).
    let devTokens: Bool
    /// The bearer token of `GET /api/v1/admin/stats` (nil: the route and the view are off).
    let adminToken: BearerCredential?
    /// Redis mode: the instance id the other instances see; embedded: a random one for this run.
    let instanceID: String
    let startedMillis = EventLoop.monotonicMillis()
    let history: ConsoleHistory?

    init(config: Config, instanceID: String?) {
        devTokens = config.devTokensEnabled
        adminToken = config.consoleAdminToken.map(BearerCredential.init)
        self.instanceID = instanceID ?? String(RequestID.make().prefix(16))
        history = config.consoleAdminToken == nil ? nil : ConsoleHistory()
    }

    /// Whether an `Authorization` header carries the admin token.
    func isAdmin(authorization: String?) -> Bool { adminToken?.accepts(authorization: authorization) ?? false }
}
