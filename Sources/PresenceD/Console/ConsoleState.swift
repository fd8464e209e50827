/// What the console needs beside the hub: whether its two optional parts are on, this
/// instance's id and start time, and the history ring (only with CONSOLE_ADMIN_TOKEN).
final class ConsoleState: Sendable {
    /// `POST /api/v1/dev-token` exists (CONSOLE_DEV_TOKENS, auto = embedded mode).
    let devTokens: Bool
    /// The bearer token of `GET /api/v1/admin/stats` (nil: the route and the view are off).
    let adminToken: [UInt8]?
    /// Redis mode: the instance id the other instances see; embedded: a random one for this run.
    let instanceID: String
    let startedMillis = EventLoop.monotonicMillis()
    let history: ConsoleHistory?

    init(config: Config, instanceID: String?) {
        devTokens = config.devTokensEnabled
        adminToken = config.consoleAdminToken.map { Array($0.utf8) }
        self.instanceID = instanceID ?? String(RequestID.make().prefix(16))
        history = config.consoleAdminToken == nil ? nil : ConsoleHistory()
    }

    /// Whether an `Authorization` header carries the admin token: compared in constant time
    /// (every byte of the longer of the two is looked at, whatever differs first).
    func isAdmin(authorization: String?) -> Bool {
        guard let adminToken, let authorization, authorization.utf8.count > 7,
              authorization.prefix(7).lowercased() == "bearer " else { return false }
        return ConsoleState.constantTimeEquals(Array(authorization.utf8.dropFirst(7)), adminToken)
    }

    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt64(a.count ^ b.count)
        let n = max(a.count, b.count)
        for i in 0..<n {
            let x = i < a.count ? a[i] : 0, y = i < b.count ? b[i] : 0
            difference |= UInt64(x ^ y)
        }
        return difference == 0
    }
}

