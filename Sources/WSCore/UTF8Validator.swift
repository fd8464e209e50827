/// Incremental UTF-8 validator (DFA, fast ASCII path 8 bytes at a time); state carries across chunks,
/// so a code point split across fragments/recv calls validates; fails as soon as a byte makes the prefix invalid.
///
/// Follows Unicode Table 3-7 (well-formed byte sequences): rejects overlong forms (C0, C1, E0 80–9F,
/// F0 80–8F), surrogates (ED A0–BF), code points above U+10FFFF (F4 90–BF, F5–FF) and stray or missing
/// continuation bytes.
public struct UTF8Validator: Sendable {
    /// DFA state, premultiplied by the transition table's row width (see `Table`).
    private var state: UInt8

    /// A validator at the start of input.
    public init() {
        state = Table.accept
    }

    /// Feeds bytes; returns false as soon as the input so far cannot be a prefix of valid UTF-8 (sticky).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var s = state
        if s == Table.reject { return false }
        guard let base = bytes.baseAddress else { return true }
        let count = bytes.count
        let valid: Bool = Table.bytes.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            var i = 0
            while i < count {
                if s == Table.accept {
                    // Fast path: skip whole words of ASCII, then single ASCII bytes.
                    while i &+ 8 <= count,
                        base.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 == 0
                    {
                        i &+= 8
                    }
                    while i < count, base.load(fromByteOffset: i, as: UInt8.self) < 0x80 {
                        i &+= 1
                    }
                    if i == count { break }
                }
                let byteClass = table[Int(base.load(fromByteOffset: i, as: UInt8.self))]
                s = table[Table.transitions &+ Int(s) &+ Int(byteClass)]
                if s == Table.reject { return false }
                i &+= 1
            }
            return true
        }
        state = valid ? s : Table.reject
        return valid
    }

    /// True when the bytes fed so far end on a code point boundary (and are valid).
    public var isComplete: Bool { state == Table.accept }

    /// Forgets all input: back to the start state.
    public mutating func reset() {
        state = Table.accept
    }

    /// Convenience one-shot check: the bytes are complete, valid UTF-8.
    public static func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var validator = UTF8Validator()
        return validator.feed(bytes) && validator.isComplete
    }
}

/// The validator's DFA: 256 byte classes, then a transition table of 9 states × 16 classes.
/// States are stored premultiplied by 16 so a transition is `table[transitions + state + class]`.
private enum Table {
    // Byte classes.
    private static let ascii: UInt8 = 0  // 00–7F
    private static let cont80: UInt8 = 1  // 80–8F
    private static let cont90: UInt8 = 2  // 90–9F
    private static let contA0: UInt8 = 3  // A0–BF
    private static let lead2: UInt8 = 4  // C2–DF
    private static let leadE0: UInt8 = 5  // E0: next must be A0–BF (no overlongs)
    private static let lead3: UInt8 = 6  // E1–EC, EE–EF
    private static let leadED: UInt8 = 7  // ED: next must be 80–9F (no surrogates)
    private static let leadF0: UInt8 = 8  // F0: next must be 90–BF (no overlongs)
    private static let lead4: UInt8 = 9  // F1–F3
    private static let leadF4: UInt8 = 10  // F4: next must be 80–8F (≤ U+10FFFF)
    private static let invalid: UInt8 = 11  // C0, C1, F5–FF

    // States (premultiplied by 16).
    static let accept: UInt8 = 0
    static let reject: UInt8 = 16
    private static let need1: UInt8 = 32  // one continuation byte left
    private static let need2: UInt8 = 48  // two continuation bytes left
    private static let need3: UInt8 = 64  // three continuation bytes left
    private static let afterE0: UInt8 = 80
    private static let afterED: UInt8 = 96
    private static let afterF0: UInt8 = 112
    private static let afterF4: UInt8 = 128

    /// Offset of the transition table in `bytes`.
    static let transitions = 256

    static let bytes: [UInt8] = {
        var table = [UInt8](repeating: 0, count: 256 + 9 * 16)
        for byte in 0..<256 {
            let byteClass: UInt8
            switch byte {
            case 0x00...0x7F: byteClass = ascii
            case 0x80...0x8F: byteClass = cont80
            case 0x90...0x9F: byteClass = cont90
            case 0xA0...0xBF: byteClass = contA0
            case 0xC2...0xDF: byteClass = lead2
            case 0xE0: byteClass = leadE0
            case 0xED: byteClass = leadED
            case 0xE1...0xEF: byteClass = lead3
            case 0xF0: byteClass = leadF0
            case 0xF1...0xF3: byteClass = lead4
            case 0xF4: byteClass = leadF4
            default: byteClass = invalid
            }
            table[byte] = byteClass
        }
        // Every transition not set below goes to `reject` (including every transition out of `reject`).
        for index in transitions..<table.count { table[index] = reject }
        func set(_ from: UInt8, _ classes: [UInt8], _ to: UInt8) {
            for byteClass in classes { table[transitions + Int(from) + Int(byteClass)] = to }
        }
        let anyContinuation = [cont80, cont90, contA0]
        set(accept, [ascii], accept)
        set(accept, [lead2], need1)
        set(accept, [leadE0], afterE0)
        set(accept, [lead3], need2)
        set(accept, [leadED], afterED)
        set(accept, [leadF0], afterF0)
        set(accept, [lead4], need3)
        set(accept, [leadF4], afterF4)
        set(need1, anyContinuation, accept)
        set(need2, anyContinuation, need1)
        set(need3, anyContinuation, need2)
        set(afterE0, [contA0], need1)
        set(afterED, [cont80, cont90], need1)
        set(afterF0, [cont90, contA0], need2)
        set(afterF4, [cont80], need2)
        return table
    }()
}
