/// W3C trace context: `00-<32 hex trace id>-<16 hex span id>-01`; the trace id derived from a 32-hex request id when it is one, random otherwise.
///
/// A request id in UUID form (8-4-4-4-12 hex) counts as 32 hex digits once its dashes are
/// removed; an all-zero id (invalid as a trace id) does not. The span id is always fresh.
package enum TraceParent {
    package static func make(requestID: String) -> String {
        "00-\(traceID(from: requestID) ?? randomHex(bytes: 16))-\(randomHex(bytes: 8))-01"
    }

    /// The trace id a request id maps to, or nil when it is not 32 hex digits (or a UUID).
    static func traceID(from requestID: String) -> String? {
        var text = requestID.lowercased()
        if text.utf8.count == 36 {
            let dashes = text.utf8.enumerated().filter { $0.element == UInt8(ascii: "-") }.map(\.offset)
            guard dashes == [8, 13, 18, 23] else { return nil }
            text.removeAll { $0 == "-" }
        }
        guard text.utf8.count == 32, text.utf8.allSatisfy(isLowerHex), text.utf8.contains(where: { $0 != UInt8(ascii: "0") }) else {
            return nil
        }
        return text
    }

    /// Whether `header` is a well-formed version-00 traceparent with non-zero ids.
    package static func isValid(_ header: String) -> Bool {
        let b = Array(header.utf8)
        guard b.count == 55, b[0] == UInt8(ascii: "0"), b[1] == UInt8(ascii: "0"),
            b[2] == UInt8(ascii: "-"), b[35] == UInt8(ascii: "-"), b[52] == UInt8(ascii: "-")
        else { return false }
        let trace = b[3..<35], span = b[36..<52], flags = b[53..<55]
        return trace.allSatisfy(isLowerHex) && span.allSatisfy(isLowerHex) && flags.allSatisfy(isLowerHex)
            && trace.contains { $0 != UInt8(ascii: "0") } && span.contains { $0 != UInt8(ascii: "0") }
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }

    /// `bytes` random bytes as lowercase hex, never all zero.
    private static func randomHex(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        while true {
            var out = ""
            var nonZero = false
            for _ in 0..<bytes {
                let byte = UInt8.random(in: 0...255, using: &rng)
                if byte != 0 { nonZero = true }
                let digits = String(byte, radix: 16)
                out += byte < 16 ? "0" + digits : digits
            }
            if nonZero { return out }
        }
    }
}
