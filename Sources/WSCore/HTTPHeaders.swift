/// Header fields in arrival order, names compared case-insensitively (ASCII).
///
/// Duplicates are kept as separate fields, in order. Equality compares the fields in order,
/// names case-insensitively and values exactly.
public struct HTTPHeaders: Sendable, Sequence, Equatable, ExpressibleByDictionaryLiteral {
    /// One header field.
    public typealias Element = (name: String, value: String)

    private var fields: [Element]

    /// Creates headers from `fields`, kept in the given order.
    public init(_ fields: [(name: String, value: String)] = []) {
        self.fields = fields
    }

    /// Creates headers from a literal, e.g. `["X-Request-ID": "abc"]`, in literal order.
    public init(dictionaryLiteral elements: (String, String)...) {
        self.fields = elements.map { (name: $0.0, value: $0.1) }
    }

    /// The first value of the field called `name`, or nil.
    public subscript(_ name: String) -> String? {
        for field in fields where Self.namesEqual(field.name, name) {
            return field.value
        }
        return nil
    }

    /// Every value of the field called `name`, in arrival order.
    public func values(_ name: String) -> [String] {
        fields.compactMap { Self.namesEqual($0.name, name) ? $0.value : nil }
    }

    /// Whether a field called `name` is present.
    public func contains(_ name: String) -> Bool {
        fields.contains { Self.namesEqual($0.name, name) }
    }

    /// True when a comma-separated header (all occurrences) contains `token`, case-insensitive,
    /// e.g. `containsToken("upgrade", in: "Connection")` for `keep-alive, Upgrade`.
    /// List elements are trimmed of spaces and tabs; empty elements are ignored.
    public func containsToken(_ token: String, in name: String) -> Bool {
        var token = token
        return token.withUTF8 { tokenBytes in
            for field in fields where Self.namesEqual(field.name, name) {
                if Self.list(field.value, containsToken: tokenBytes) { return true }
            }
            return false
        }
    }

    /// Appends a field (existing fields of the same name are kept).
    public mutating func add(_ name: String, _ value: String) {
        fields.append((name: name, value: value))
    }

    /// Removes every field called `name`.
    public mutating func remove(_ name: String) {
        fields.removeAll { Self.namesEqual($0.name, name) }
    }

    /// The number of fields, duplicates included.
    public var count: Int { fields.count }

    /// Iterates the fields in arrival order.
    public func makeIterator() -> IndexingIterator<[Element]> {
        fields.makeIterator()
    }

    /// Fields equal in order; names case-insensitively, values exactly.
    public static func == (lhs: HTTPHeaders, rhs: HTTPHeaders) -> Bool {
        guard lhs.fields.count == rhs.fields.count else { return false }
        for (l, r) in zip(lhs.fields, rhs.fields) where !namesEqual(l.name, r.name) || l.value != r.value {
            return false
        }
        return true
    }
}

// MARK: - ASCII helpers

extension HTTPHeaders {
    /// ASCII case-insensitive comparison of two header names.
    static func namesEqual(_ a: String, _ b: String) -> Bool {
        let a = a.utf8, b = b.utf8
        guard a.count == b.count else { return false }
        let contiguous = a.withContiguousStorageIfAvailable { x in
            b.withContiguousStorageIfAvailable { y in bytesEqualIgnoringCase(x, y) }
        }
        if let contiguous, let equal = contiguous { return equal }
        return bytesEqualIgnoringCase(a, b)
    }

    @inline(__always)
    private static func bytesEqualIgnoringCase<A: Collection, B: Collection>(_ a: A, _ b: B) -> Bool
    where A.Element == UInt8, B.Element == UInt8 {
        var i = a.startIndex, j = b.startIndex
        while i != a.endIndex && j != b.endIndex {
            let x = a[i], y = b[j]
            if x != y && asciiLower(x) != asciiLower(y) { return false }
            a.formIndex(after: &i)
            b.formIndex(after: &j)
        }
        return i == a.endIndex && j == b.endIndex
    }

    @inline(__always)
    static func asciiLower(_ byte: UInt8) -> UInt8 {
        byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
    }

    /// Whether `byte` is an RFC 9110 `tchar` (a byte of a method, field name or other token).
    @inlinable @inline(__always)
    public static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    @inline(__always)
    static func isOWS(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
    }

    /// Whether `name` is a non-empty token (safe to put on the wire as a field name).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.allSatisfy(isTokenByte)
    }

    /// The value of an ASCII hex digit (`0–9 a–f A–F`, RFC 5234 `HEXDIG` in either case), nil for
    /// any other byte: chunk sizes, percent escapes.
    @inlinable
    public static func hexDigitValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    /// Whether the comma-separated list `value` has an element equal (ASCII case-insensitively) to `token`.
    private static func list(_ value: String, containsToken token: UnsafeBufferPointer<UInt8>) -> Bool {
        var value = value
        return value.withUTF8 { bytes in
            var start = 0
            while start <= bytes.count {
                var end = start
                while end < bytes.count && bytes[end] != UInt8(ascii: ",") { end += 1 }
                var lo = start, hi = end
                while lo < hi && isOWS(bytes[lo]) { lo += 1 }
                while hi > lo && isOWS(bytes[hi - 1]) { hi -= 1 }
                if hi > lo && hi - lo == token.count {
                    var equal = true
                    for i in 0..<token.count where asciiLower(bytes[lo + i]) != asciiLower(token[i]) {
                        equal = false
                        break
                    }
                    if equal { return true }
                }
                start = end + 1
            }
            return false
        }
    }
}

// MARK: - Wire format

extension HTTPHeaders {
    /// Parses one field line (line ending already removed): `name ":" OWS value OWS`.
    ///
    /// The name must be a non-empty RFC 9110 token directly followed by the colon. A line starting
    /// with SP/HT (obs-fold) is refused. The value must not contain NUL or CR (LF cannot occur);
    /// other bytes, obs-text (0x80–0xFF) included, are kept and decoded as UTF-8, invalid
    /// sequences being replaced by U+FFFD.
    static func parseField(_ line: UnsafeRawBufferPointer) -> Result<Element, HTTPParseError> {
        let count = line.count
        guard count > 0 else { return .failure(.malformed("empty header line")) }
        if isOWS(line[0]) {
            return .failure(.malformed("obsolete line folding (header line starts with whitespace)"))
        }
        var colon = 0
        while colon < count && isTokenByte(line[colon]) { colon += 1 }
        guard colon < count, line[colon] == UInt8(ascii: ":") else {
            guard let realColon = line[colon...].firstIndex(of: UInt8(ascii: ":")) else {
                return .failure(.malformed("header line without a colon"))
            }
            let stop = line[colon]
            if isOWS(stop) && line[colon..<realColon].allSatisfy(isOWS) {
                return .failure(.malformed("whitespace between header name and colon"))
            }
            if stop >= 0x80 { return .failure(.malformed("non-ASCII byte in header name")) }
            return .failure(.malformed("invalid character in header name"))
        }
        guard colon > 0 else { return .failure(.malformed("empty header name")) }

        var lo = colon + 1, hi = count
        while lo < hi && isOWS(line[lo]) { lo += 1 }
        while hi > lo && isOWS(line[hi - 1]) { hi -= 1 }
        for i in lo..<hi {
            let byte = line[i]
            if byte == 0 || byte == UInt8(ascii: "\r") || byte == UInt8(ascii: "\n") {
                return .failure(.malformed("invalid character in header value"))
            }
        }
        let name = String(decoding: UnsafeRawBufferPointer(rebasing: line[0..<colon]), as: UTF8.self)
        let value = String(decoding: UnsafeRawBufferPointer(rebasing: line[lo..<hi]), as: UTF8.self)
        return .success((name: name, value: value))
    }

    /// Parses `line` as a field line and appends it, unless `maxCount` fields are already held
    /// (→ `.headTooLarge`) or the line is malformed.
    mutating func appendField(parsing line: UnsafeRawBufferPointer, maxCount: Int) -> HTTPParseError? {
        guard fields.count < maxCount else { return .headTooLarge }
        switch Self.parseField(line) {
        case .success(let field):
            fields.append(field)
            return nil
        case .failure(let error):
            return error
        }
    }

    /// Appends `name: value\r\n` for every field. Fields whose name is not a token are skipped;
    /// CR, LF and NUL in values become spaces, so no field can break the message framing.
    func serialize(into out: inout [UInt8]) {
        for field in fields where Self.isValidName(field.name) {
            out.append(contentsOf: field.name.utf8)
            out.append(UInt8(ascii: ":"))
            out.append(UInt8(ascii: " "))
            let start = out.count
            out.append(contentsOf: field.value.utf8)
            for i in start..<out.count {
                switch out[i] {
                case 0, UInt8(ascii: "\r"), UInt8(ascii: "\n"): out[i] = UInt8(ascii: " ")
                default: break
                }
            }
            out.append(UInt8(ascii: "\r"))
            out.append(UInt8(ascii: "\n"))
        }
    }
}
