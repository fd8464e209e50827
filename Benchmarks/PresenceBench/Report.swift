/// A JSON value for `--json` output, objects keep their key order.
indirect enum JValue {
    case int(Int)
    case double(Double)
    case string(String)
    case bool(Bool)
    case null
    case object(JObject)
    case array([JValue])

    func render(into out: inout String) {
        switch self {
        case .int(let v): out += String(v)
        case .double(let v):
            if v.isFinite {
                let rounded = (v * 1000).rounded() / 1000
                out += rounded == rounded.rounded() && abs(rounded) < 1e15 ? String(Int64(rounded)) : String(rounded)
            } else {
                out += "null"
            }
        case .string(let s): out += JSONText.quoted(s)
        case .bool(let b): out += b ? "true" : "false"
        case .null: out += "null"
        case .object(let o): o.render(into: &out)
        case .array(let a):
            out += "["
            for (i, v) in a.enumerated() {
                if i > 0 { out += "," }
                v.render(into: &out)
            }
            out += "]"
        }
    }
}

/// An ordered JSON object.
struct JObject {
    private(set) var entries: [(String, JValue)] = []

    subscript(key: String) -> JValue? {
        get { entries.first { $0.0 == key }?.1 }
        set {
            if let i = entries.firstIndex(where: { $0.0 == key }) {
                if let newValue { entries[i].1 = newValue } else { entries.remove(at: i) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    func render(into out: inout String) {
        out += "{"
        for (i, (k, v)) in entries.enumerated() {
            if i > 0 { out += "," }
            out += JSONText.quoted(k)
            out += ":"
            v.render(into: &out)
        }
        out += "}"
    }

    var text: String {
        var s = ""
        render(into: &s)
        return s
    }
}

extension JValue {
    static func optional(_ v: Double?) -> JValue { v.map { .double($0) } ?? .null }
    static func optional(_ v: Int?) -> JValue { v.map { .int($0) } ?? .null }
    static func counts(_ d: [String: Int]) -> JValue {
        var o = JObject()
        for (k, v) in d.sorted(by: { $0.key < $1.key }) { o[k] = .int(v) }
        return .object(o)
    }
    static func counts(_ d: [Int: Int]) -> JValue {
        var o = JObject()
        for (k, v) in d.sorted(by: { $0.key < $1.key }) { o[String(k)] = .int(v) }
        return .object(o)
    }
}

/// Latency summary of a histogram, in microseconds.
func latencyJSON(_ h: Histogram) -> JValue {
    var o = JObject()
    o["count"] = .int(Int(h.total))
    o["p50_us"] = .double(h.percentile(0.50) / 1000)
    o["p90_us"] = .double(h.percentile(0.90) / 1000)
    o["p99_us"] = .double(h.percentile(0.99) / 1000)
    o["p999_us"] = .double(h.percentile(0.999) / 1000)
    o["max_us"] = .double(Double(h.total > 0 ? h.maxValue : 0) / 1000)
    o["mean_us"] = .double(h.mean / 1000)
    return .object(o)
}

/// Human text for durations and counts.
enum Fmt {
    /// A latency in ns as `123 µs` / `4.56 ms`.
    static func latency(_ ns: Double) -> String {
        if ns < 1_000_000 { return fixed(ns / 1000, ns < 10_000 ? 1 : 0) + " µs" }
        if ns < 1_000_000_000 { return fixed(ns / 1_000_000, 2) + " ms" }
        return fixed(ns / 1e9, 2) + " s"
    }

    static func latencyLine(_ h: Histogram) -> String {
        guard h.total > 0 else { return "(no samples)" }
        return "p50 \(latency(h.percentile(0.5)))  p90 \(latency(h.percentile(0.9)))  p99 \(latency(h.percentile(0.99)))  "
            + "p99.9 \(latency(h.percentile(0.999)))  max \(latency(Double(h.maxValue)))  (n=\(h.total))"
    }

    /// `value` with `digits` decimals.
    static func fixed(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "-" }
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let r = (value * scale).rounded() / scale
        if digits == 0 { return String(Int64(r)) }
        var s = String(r)
        if let dot = s.firstIndex(of: ".") {
            let decimals = s.distance(from: dot, to: s.endIndex) - 1
            if decimals < digits { s += String(repeating: "0", count: digits - decimals) }
        }
        return s
    }

    /// 1234567 → `1,234,567`.
    static func count(_ v: Int) -> String {
        let digits = String(abs(v))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return v < 0 ? "-" + out : out
    }

    static func counts(_ d: [String: Int]) -> String {
        d.isEmpty ? "none" : d.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }

    static func counts(_ d: [Int: Int]) -> String {
        d.isEmpty ? "none" : d.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
    }
}
