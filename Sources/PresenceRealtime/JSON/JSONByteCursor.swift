import PresenceJSON

/// Writes a JSON document into a buffer whose size was computed exactly beforehand — or, made with
/// `measuring()`, only counts the bytes it would write, so the same code gives the exact size first.
package struct JSONByteCursor {
    /// Where the document goes; nil when only measuring.
    private let base: UnsafeMutableRawPointer?
    /// Bytes written (or measured) so far.
    package private(set) var count = 0

    /// A cursor writing at `pointer`.
    package init(_ pointer: UnsafeMutableRawPointer) {
        base = pointer
    }

    private init() {
        base = nil
    }

    /// A cursor that writes nothing and only counts bytes.
    package static func measuring() -> JSONByteCursor {
        JSONByteCursor()
    }

    /// The JSON text `write` writes. `write` runs twice: on a measuring cursor, then on one
    /// writing straight into an array of exactly that size.
    package static func document(_ write: (inout JSONByteCursor) -> Void) -> [UInt8] {
        var measure = JSONByteCursor.measuring()
        write(&measure)
        return [UInt8](unsafeUninitializedCapacity: measure.count) { buffer, count in
            var cursor = JSONByteCursor(UnsafeMutableRawPointer(buffer.baseAddress!))
            write(&cursor)
            count = cursor.count
        }
    }

    /// Copies literal bytes (structural JSON, known-safe text).
    @inline(__always)
    package mutating func raw(_ literal: StaticString) {
        let n = literal.utf8CodeUnitCount
        if let base { (base + count).copyMemory(from: literal.utf8Start, byteCount: n) }
        count &+= n
    }

    /// Writes a quoted, escaped string.
    @inline(__always)
    package mutating func string(_ utf8: UnsafeRawBufferPointer) {
        if let base {
            count &+= JSONWriter.writeString(utf8, into: base + count)
        } else {
            count &+= JSONWriter.escapedLength(utf8)
        }
    }

    /// Writes a quoted, escaped string (not on the message path: the caller's `withUTF8` there).
    package mutating func string(_ text: String) {
        JSONWriter.withUTF8(text) { string($0) }
    }

    /// Writes `true` or `false`.
    @inline(__always)
    package mutating func bool(_ value: Bool) {
        if value { raw("true") } else { raw("false") }
    }

    /// Copies bytes that are known to be valid JSON text as they are (a number's digits).
    @inline(__always)
    package mutating func verbatim(_ bytes: UnsafeRawBufferPointer) {
        if let base, let source = bytes.baseAddress { (base + count).copyMemory(from: source, byteCount: bytes.count) }
        count &+= bytes.count
    }

    /// Copies text that is known to be valid JSON as it is.
    package mutating func verbatim(_ text: String) {
        JSONWriter.withUTF8(text) { verbatim($0) }
    }

    /// Writes a whole number (its digits straight from a stack buffer: no String on the message path).
    package mutating func integer(_ value: Int64) {
        var magnitude = value.magnitude
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { digits in
            var start = 20
            repeat {
                start -= 1
                digits[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 { raw("-") }
            verbatim(UnsafeRawBufferPointer(UnsafeMutableBufferPointer(rebasing: digits[start...])))
        }
    }
}
