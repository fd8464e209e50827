import PresenceJSON

/// Why JSON was refused: message and byte offset.
package struct JSONError: Error, Equatable, Sendable {
    /// Short description of the failed check (never echoes the input).
    package var message: String
    /// Byte offset in the input where the problem was found.
    package var offset: Int
}

/// Strict RFC 8259 pull tokenizer over UTF-8 bytes: no allocation (below 64 levels), no recursion.
///
/// `next()` returns one token at a time and enforces the whole grammar (commas, colons, nesting, one
/// top-level value with nothing but whitespace after it), the nesting limit, UTF-8 validity inside
/// strings, escapes (surrogate pairs must be complete) and the number grammar. After `.key`/`.string`
/// the string is in `stringToken`, after `.number` the number is in `numberToken` (offsets into the
/// input); decode them with `string(_:)`, `decode(_:into:)`, `equals(_:_:)` and `double(_:)`.
/// The input must outlive the reader. Noncopyable: it owns the level stack beyond 64 levels.
package struct JSONReader: ~Copyable {
    /// One step through the document.
    package enum Token: UInt8 {
        case objectStart, objectEnd, arrayStart, arrayEnd
        /// An object member's name (in `stringToken`); the member's value is the next token.
        case key
        /// A string value (in `stringToken`).
        case string
        /// A number (in `numberToken`).
        case number
        case `true`, `false`, null
        /// The document is complete (only whitespace followed it). Returned again on later calls.
        case end

        /// Whether this token opens an object or an array.
        var opensContainer: Bool { self == .objectStart || self == .arrayStart }
    }

    /// A validated string: the raw bytes between the quotes and the length once unescaped.
    package struct StringToken: Equatable {
        /// Offset of the first byte after the opening quote.
        var start: Int
        /// Offset of the closing quote.
        var end: Int
        /// UTF-8 bytes of the unescaped value.
        package var decodedCount: Int
        /// Every escape makes the value shorter than its source, so this is exact.
        package var hasEscapes: Bool { decodedCount != end &- start }

        package init(start: Int, end: Int, decodedCount: Int) {
            self.start = start
            self.end = end
            self.decodedCount = decodedCount
        }
    }

    /// A validated number: its bytes and whether it had a fraction or an exponent.
    package struct NumberToken: Equatable {
        var start: Int
        var end: Int
        /// No '.' and no exponent: an optional '-' and digits only.
        package var isPlainInteger: Bool
    }

    /// Where the reader stands in the grammar.
    private enum State: UInt8 {
        case start, value, objectFirst, objectNext, arrayFirst, arrayNext, done
    }

    private let base: UnsafeRawPointer
    private let count: Int
    private let maxDepth: Int
    /// Offset of the next unread byte.
    private(set) var position: Int = 0
    /// Open objects and arrays.
    private(set) var depth: Int = 0
    /// The last key or string value read.
    package private(set) var stringToken = StringToken(start: 0, end: 0, decodedCount: 0)
    /// The last number read.
    package private(set) var numberToken = NumberToken(start: 0, end: 0, isPlainInteger: true)
    private var state: State = .start
    /// Bit i set: nesting level i is an object (levels 0..<64).
    private var kinds: UInt64 = 0
    /// Levels 64 and deeper, one bit each (allocated only for such documents).
    private var deepKinds: UnsafeMutablePointer<UInt64>?
    private var deepWords = 0

    /// A reader over `bytes` allowing at most `maxDepth` nested objects and arrays.
    package init(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 32) {
        // An empty buffer may have no address; nothing is ever loaded from it then.
        self.base = bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!
        self.count = bytes.count
        self.maxDepth = maxDepth
    }

    deinit {
        deepKinds?.deallocate()
    }

    // MARK: Events

    /// The next event; throws at the first byte that cannot continue a valid document.
    package mutating func next() throws(JSONError) -> Token {
        skipWhitespace()
        switch state {
        case .start, .value:
            return try value()
        case .objectFirst:
            if position < count, byte(position) == UInt8(ascii: "}") {
                return closeContainer()
            }
            return try key()
        case .objectNext:
            guard position < count else { throw fail("unexpected end of input in an object") }
            let c = byte(position)
            if c == UInt8(ascii: ",") {
                position &+= 1
                skipWhitespace()
                return try key()
            }
            if c == UInt8(ascii: "}") { return closeContainer() }
            throw fail("expected ',' or '}'")
        case .arrayFirst:
            if position < count, byte(position) == UInt8(ascii: "]") {
                return closeContainer()
            }
            return try value()
        case .arrayNext:
            guard position < count else { throw fail("unexpected end of input in an array") }
            let c = byte(position)
            if c == UInt8(ascii: ",") {
                position &+= 1
                skipWhitespace()
                return try value()
            }
            if c == UInt8(ascii: "]") { return closeContainer() }
            throw fail("expected ',' or ']'")
        case .done:
            if position < count { throw fail("unexpected data after the document") }
            return .end
        }
    }

    /// Skips the rest of the value `token` started (nothing to do for scalars). Bounded by the depth limit.
    package mutating func skipValue(startedBy token: Token) throws(JSONError) {
        guard token.opensContainer else { return }
        let outer = depth &- 1
        while depth > outer { _ = try next() }
    }

    // MARK: Token access

    /// The unescaped value of a string token.
    package func string(_ token: StringToken) -> String {
        let n = token.decodedCount
        if n == 0 { return "" }
        if !token.hasEscapes {
            return String(decoding: UnsafeRawBufferPointer(start: base + token.start, count: n), as: UTF8.self)
        }
        return String(unsafeUninitializedCapacity: n) { buffer in
            decode(token, into: UnsafeMutableRawPointer(buffer.baseAddress!))
            return n
        }
    }

    /// Raw bytes of a token without escapes (for tokens with escapes, use `decode`).
    package func rawBytes(_ token: StringToken) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base + token.start, count: token.end &- token.start)
    }

    /// Whether the unescaped value equals `literal`, without allocating.
    @inline(__always)
    package func equals(_ token: StringToken, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        guard token.decodedCount == n else { return false }
        if token.hasEscapes { return escapedEquals(token, literal) }
        let a = base + token.start
        let b = UnsafeRawPointer(literal.utf8Start)
        if n >= 4, n <= 8 {
            // Two overlapping 4-byte compares cover 4...8 bytes.
            return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self)
                && a.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self) == b.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self)
        }
        return Self.bytesEqual(a, b, n)
    }

    /// `equals` for a token with escapes: decode into scratch space, then compare.
    private func escapedEquals(_ token: StringToken, _ literal: StaticString) -> Bool {
        let n = literal.utf8CodeUnitCount
        return withUnsafeTemporaryAllocation(byteCount: n, alignment: 1) { buffer in
            decode(token, into: buffer.baseAddress!)
            return Self.bytesEqual(UnsafeRawPointer(buffer.baseAddress!), UnsafeRawPointer(literal.utf8Start), n)
        }
    }

    /// Writes the unescaped value (exactly `token.decodedCount` bytes) at `into`.
    package func decode(_ token: StringToken, into: UnsafeMutableRawPointer) {
        var i = token.start
        let end = token.end
        var out = 0
        while i < end {
            // Copy the run up to the next backslash in one go.
            var j = i
            while j < end, byte(j) != UInt8(ascii: "\\") { j &+= 1 }
            if j > i {
                (into + out).copyMemory(from: base + i, byteCount: j &- i)
                out &+= j &- i
            }
            if j >= end { break }
            let e = byte(j &+ 1)
            var scalar: UInt32
            var advance = 2
            switch e {
            case UInt8(ascii: "b"): scalar = 0x08
            case UInt8(ascii: "f"): scalar = 0x0C
            case UInt8(ascii: "n"): scalar = 0x0A
            case UInt8(ascii: "r"): scalar = 0x0D
            case UInt8(ascii: "t"): scalar = 0x09
            case UInt8(ascii: "u"):
                scalar = UInt32(hex4(j &+ 2)!)
                advance = 6
                if scalar >= 0xD800, scalar <= 0xDBFF {
                    let low = UInt32(hex4(j &+ 8)!)
                    scalar = 0x10000 &+ ((scalar &- 0xD800) << 10) &+ (low &- 0xDC00)
                    advance = 12
                }
            default: scalar = UInt32(e)  // '"', '\\', '/'
            }
            out &+= Self.writeUTF8(scalar, into + out)
            i = j &+ advance
        }
    }

    /// The number's value; throws for magnitudes beyond Double's range.
    package func double(_ token: NumberToken) throws(JSONError) -> Double {
        let length = token.end &- token.start
        if token.isPlainInteger {
            var i = token.start
            let negative = byte(i) == UInt8(ascii: "-")
            if negative { i &+= 1 }
            // Up to 15 digits is exact in Int64 and Double: convert without going through text.
            if token.end &- i <= 15 {
                var value: Int64 = 0
                while i < token.end {
                    value = value &* 10 &+ Int64(byte(i) &- UInt8(ascii: "0"))
                    i &+= 1
                }
                return negative ? -Double(value) : Double(value)
            }
        }
        let text = String(decoding: UnsafeRawBufferPointer(start: base + token.start, count: length), as: UTF8.self)
        guard let value = Double(text), value.isFinite else {
            throw JSONError(message: "number out of range", offset: token.start)
        }
        return value
    }

    // MARK: Grammar

    @inline(__always)
    private func byte(_ i: Int) -> UInt8 {
        base.load(fromByteOffset: i, as: UInt8.self)
    }

    @inline(__always)
    private func fail(_ message: String) -> JSONError {
        JSONError(message: message, offset: position)
    }

    @inline(__always)
    private mutating func skipWhitespace() {
        while position < count {
            let c = byte(position)
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            position &+= 1
        }
    }

    private mutating func value() throws(JSONError) -> Token {
        guard position < count else {
            throw fail(depth == 0 && state == .start ? "empty document" : "unexpected end of input, expected a value")
        }
        switch byte(position) {
        case UInt8(ascii: "{"):
            try push(object: true)
            state = .objectFirst
            return .objectStart
        case UInt8(ascii: "["):
            try push(object: false)
            state = .arrayFirst
            return .arrayStart
        case UInt8(ascii: "\""):
            stringToken = try scanString()
            afterValue()
            return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            numberToken = try scanNumber()
            afterValue()
            return .number
        case UInt8(ascii: "t"):
            try literal("true")
            afterValue()
            return .true
        case UInt8(ascii: "f"):
            try literal("false")
            afterValue()
            return .false
        case UInt8(ascii: "n"):
            try literal("null")
            afterValue()
            return .null
        default:
            throw fail("unexpected character, expected a value")
        }
    }

    @inline(__always)
    private mutating func key() throws(JSONError) -> Token {
        guard position < count, byte(position) == UInt8(ascii: "\"") else {
            throw fail(position < count ? "expected a string key" : "unexpected end of input, expected a key")
        }
        stringToken = try scanString()
        skipWhitespace()
        guard position < count, byte(position) == UInt8(ascii: ":") else { throw fail("expected ':'") }
        position &+= 1
        state = .value
        return .key
    }

    @inline(__always)
    private mutating func afterValue() {
        state = depth == 0 ? .done : (topIsObject ? .objectNext : .arrayNext)
    }

    @inline(__always)
    private var topIsObject: Bool {
        let level = depth &- 1
        if level < 64 { return kinds & (1 &<< UInt64(level)) != 0 }
        let extra = level &- 64
        return deepKinds![extra >> 6] & (1 &<< UInt64(extra & 63)) != 0
    }

    @inline(__always)
    private mutating func push(object: Bool) throws(JSONError) {
        guard depth < maxDepth else { throw fail("nesting deeper than \(maxDepth)") }
        let level = depth
        if level < 64 {
            let bit: UInt64 = 1 &<< UInt64(level)
            kinds = object ? kinds | bit : kinds & ~bit
        } else {
            pushDeep(level &- 64, object: object)
        }
        depth &+= 1
        position &+= 1
    }

    /// Records the kind of a level beyond 64, growing the bit storage as needed.
    private mutating func pushDeep(_ extra: Int, object: Bool) {
        let word = extra >> 6
        if word >= deepWords {
            let words = max(4, deepWords * 2)
            let grown = UnsafeMutablePointer<UInt64>.allocate(capacity: words)
            grown.initialize(repeating: 0, count: words)
            if let old = deepKinds {
                grown.update(from: old, count: deepWords)
                old.deallocate()
            }
            deepKinds = grown
            deepWords = words
        }
        let bit: UInt64 = 1 &<< UInt64(extra & 63)
        deepKinds![word] = object ? deepKinds![word] | bit : deepKinds![word] & ~bit
    }

    @inline(__always)
    private mutating func closeContainer() -> Token {
        let wasObject = topIsObject
        depth &-= 1
        position &+= 1
        afterValue()
        return wasObject ? .objectEnd : .arrayEnd
    }

    private mutating func literal(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard count &- position >= n, Self.bytesEqual(base + position, UnsafeRawPointer(word.utf8Start), n) else {
            throw fail("invalid literal")
        }
        position &+= n
    }

    /// Number per RFC 8259: `-? (0 | [1-9][0-9]*) (.[0-9]+)? ([eE][+-]?[0-9]+)?`.
    private mutating func scanNumber() throws(JSONError) -> NumberToken {
        let start = position
        var i = position
        var plain = true
        if byte(i) == UInt8(ascii: "-") { i &+= 1 }
        guard i < count, Self.isDigit(byte(i)) else {
            throw JSONError(message: "invalid number: expected a digit", offset: i)
        }
        if byte(i) == UInt8(ascii: "0") {
            i &+= 1
            if i < count, Self.isDigit(byte(i)) {
                throw JSONError(message: "invalid number: leading zero", offset: start)
            }
        } else {
            while i < count, Self.isDigit(byte(i)) { i &+= 1 }
        }
        if i < count, byte(i) == UInt8(ascii: ".") {
            plain = false
            i &+= 1
            guard i < count, Self.isDigit(byte(i)) else {
                throw JSONError(message: "invalid number: expected a digit after '.'", offset: i)
            }
            while i < count, Self.isDigit(byte(i)) { i &+= 1 }
        }
        if i < count, byte(i) | 0x20 == UInt8(ascii: "e") {
            plain = false
            i &+= 1
            if i < count, byte(i) == UInt8(ascii: "+") || byte(i) == UInt8(ascii: "-") { i &+= 1 }
            guard i < count, Self.isDigit(byte(i)) else {
                throw JSONError(message: "invalid number: expected a digit in the exponent", offset: i)
            }
            while i < count, Self.isDigit(byte(i)) { i &+= 1 }
        }
        position = i
        return NumberToken(start: start, end: i, isPlainInteger: plain)
    }

    /// Scans a string starting at the opening quote; validates escapes and UTF-8.
    @inline(__always)
    private mutating func scanString() throws(JSONError) -> StringToken {
        let start = position &+ 1
        var i = start
        var saved = 0
        while true {
            // Fast path: 8 bytes at a time, jumping straight to the first special byte of a word.
            while i &+ 8 <= count {
                let special = Self.specialBytes(UInt64(littleEndian: base.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                if special != 0 {
                    i &+= special.trailingZeroBitCount &>> 3
                    break
                }
                i &+= 8
            }
            if i &+ 8 > count, count >= 8, i < count {
                // Fewer than 8 bytes left: look at the input's last word, dropping the lanes before `i`.
                // (A lane can be marked by a borrow from a dropped one; the bytewise code below copes.)
                let lanes = i &- (count &- 8)
                let special =
                    Self.specialBytes(UInt64(littleEndian: base.loadUnaligned(fromByteOffset: count &- 8, as: UInt64.self)))
                    &>> UInt64(lanes &<< 3)
                i = special == 0 ? count : i &+ (special.trailingZeroBitCount &>> 3)
            }
            guard i < count else { throw JSONError(message: "unterminated string", offset: position) }
            let c = byte(i)
            if c == UInt8(ascii: "\"") { break }
            if c == UInt8(ascii: "\\") {
                saved &+= try scanEscape(&i)
            } else if c < 0x20 {
                throw JSONError(message: "unescaped control character in string", offset: i)
            } else if c >= 0x80 {
                i = try scanUTF8(i)
            } else {
                i &+= 1
            }
        }
        position = i &+ 1
        return StringToken(start: start, end: i, decodedCount: i &- start &- saved)
    }

    /// Validates the escape at `i` (a backslash), advances past it; returns the bytes it saves when decoded.
    private func scanEscape(_ i: inout Int) throws(JSONError) -> Int {
        guard i &+ 1 < count else { throw JSONError(message: "unterminated string", offset: i) }
        switch byte(i &+ 1) {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
            UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            i &+= 2
            return 1
        case UInt8(ascii: "u"):
            guard let unit = hex4(i &+ 2) else { throw JSONError(message: "invalid \\u escape", offset: i) }
            if unit >= 0xDC00, unit <= 0xDFFF {
                throw JSONError(message: "lone low surrogate", offset: i)
            }
            if unit >= 0xD800, unit <= 0xDBFF {
                guard i &+ 12 <= count, byte(i &+ 6) == UInt8(ascii: "\\"), byte(i &+ 7) == UInt8(ascii: "u"),
                    let low = hex4(i &+ 8), low >= 0xDC00, low <= 0xDFFF
                else {
                    throw JSONError(message: "lone high surrogate", offset: i)
                }
                i &+= 12
                return 8  // 12 bytes of escapes become 4 bytes of UTF-8
            }
            i &+= 6
            return unit < 0x80 ? 5 : (unit < 0x800 ? 4 : 3)
        default:
            throw JSONError(message: "invalid escape", offset: i)
        }
    }

    /// The 4 hex digits at `i` as a UTF-16 code unit, or nil.
    private func hex4(_ i: Int) -> UInt16? {
        guard i &+ 4 <= count else { return nil }
        var value: UInt16 = 0
        for k in 0..<4 {
            let c = byte(i &+ k)
            let digit: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c &- UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c &- UInt8(ascii: "a") &+ 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c &- UInt8(ascii: "A") &+ 10
            default: return nil
            }
            value = value << 4 | UInt16(digit)
        }
        return value
    }

    /// Validates one multi-byte UTF-8 sequence at `i` (Unicode Table 3-7); returns the offset after it.
    private func scanUTF8(_ i: Int) throws(JSONError) -> Int {
        let b0 = byte(i)
        let length: Int
        var low: UInt8 = 0x80
        var high: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0:
            length = 3
            low = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED:
            length = 3
            high = 0x9F
        case 0xF0:
            length = 4
            low = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4:
            length = 4
            high = 0x8F
        default: throw JSONError(message: "invalid UTF-8", offset: i)
        }
        guard i &+ length <= count else { throw JSONError(message: "invalid UTF-8", offset: i) }
        let b1 = byte(i &+ 1)
        guard b1 >= low, b1 <= high else { throw JSONError(message: "invalid UTF-8", offset: i) }
        var k = 2
        while k < length {
            guard byte(i &+ k) & 0xC0 == 0x80 else { throw JSONError(message: "invalid UTF-8", offset: i) }
            k &+= 1
        }
        return i &+ length
    }

    // MARK: Helpers

    @inline(__always)
    private static func isDigit(_ c: UInt8) -> Bool {
        c &- UInt8(ascii: "0") < 10
    }

    /// High bit set in each byte of the (little-endian) word that is < 0x20, '"', '\\' or >= 0x80 (SWAR):
    /// `JSONWriter.escapeBytes` plus the non-ASCII bytes. The lowest set bit is exact.
    @inline(__always)
    package static func specialBytes(_ w: UInt64) -> UInt64 {
        JSONWriter.escapeBytes(w) | (w & 0x8080_8080_8080_8080)
    }

    /// Whether any byte of the word is < 0x20, '"', '\\' or >= 0x80.
    @inline(__always)
    package static func hasSpecialByte(_ w: UInt64) -> Bool {
        specialBytes(w) != 0
    }

    @inline(__always)
    private static func bytesEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
        var i = 0
        while i < n {
            if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
            i &+= 1
        }
        return true
    }

    /// Encodes a Unicode scalar as UTF-8 at `p`; returns the bytes written.
    @inline(__always)
    private static func writeUTF8(_ scalar: UInt32, _ p: UnsafeMutableRawPointer) -> Int {
        if scalar < 0x80 {
            p.storeBytes(of: UInt8(scalar), as: UInt8.self)
            return 1
        }
        if scalar < 0x800 {
            p.storeBytes(of: UInt8(0xC0 | scalar >> 6), as: UInt8.self)
            p.storeBytes(of: UInt8(0x80 | scalar & 0x3F), toByteOffset: 1, as: UInt8.self)
            return 2
        }
        if scalar < 0x10000 {
            p.storeBytes(of: UInt8(0xE0 | scalar >> 12), as: UInt8.self)
            p.storeBytes(of: UInt8(0x80 | (scalar >> 6) & 0x3F), toByteOffset: 1, as: UInt8.self)
            p.storeBytes(of: UInt8(0x80 | scalar & 0x3F), toByteOffset: 2, as: UInt8.self)
            return 3
        }
        p.storeBytes(of: UInt8(0xF0 | scalar >> 18), as: UInt8.self)
        p.storeBytes(of: UInt8(0x80 | (scalar >> 12) & 0x3F), toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: UInt8(0x80 | (scalar >> 6) & 0x3F), toByteOffset: 2, as: UInt8.self)
        p.storeBytes(of: UInt8(0x80 | scalar & 0x3F), toByteOffset: 3, as: UInt8.self)
        return 4
    }
}
