/// A JSON document (RFC 8259), parsed strictly.
package enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Strict parse: one value, optional surrounding whitespace, nothing after; depth ≤ maxDepth
    /// (objects+arrays); duplicate keys rejected; input must be valid UTF-8; escapes incl. \uXXXX
    /// surrogate pairs (lone surrogates rejected); numbers per the RFC grammar (no leading zeros, no
    /// NaN/Infinity, no '+'); numbers beyond Double's range rejected. Iterative: no recursion.
    package static func parse(_ bytes: UnsafeRawBufferPointer, maxDepth: Int = 32) throws(JSONError) -> JSONValue {
        var reader = JSONReader(bytes, maxDepth: maxDepth)
        var stack: [Container] = []
        var root: JSONValue = .null
        while true {
            let produced: JSONValue
            switch try reader.next() {
            case .objectStart:
                stack.append(Container(isObject: true))
                continue
            case .arrayStart:
                stack.append(Container(isObject: false))
                continue
            case .key:
                let token = reader.stringToken
                let key = reader.string(token)
                let top = stack.count - 1
                if stack[top].members[key] != nil {
                    throw JSONError(message: "duplicate key", offset: token.start - 1)
                }
                stack[top].key = key
                continue
            case .objectEnd:
                produced = .object(stack.removeLast().members)
            case .arrayEnd:
                produced = .array(stack.removeLast().elements)
            case .string:
                produced = .string(reader.string(reader.stringToken))
            case .number:
                produced = .number(try reader.double(reader.numberToken))
            case .true:
                produced = .bool(true)
            case .false:
                produced = .bool(false)
            case .null:
                produced = .null
            case .end:
                return root
            }
            if stack.isEmpty {
                root = produced
            } else {
                let top = stack.count - 1
                if stack[top].isObject {
                    stack[top].members[stack[top].key] = produced
                } else {
                    stack[top].elements.append(produced)
                }
            }
        }
    }

    /// Same, over a string's UTF-8.
    package static func parse(_ text: String, maxDepth: Int = 32) throws(JSONError) -> JSONValue {
        var text = text
        let result: Result<JSONValue, JSONError> = text.withUTF8 { utf8 in
            Result { () throws(JSONError) -> JSONValue in try parse(UnsafeRawBufferPointer(utf8), maxDepth: maxDepth) }
        }
        return try result.get()
    }

    /// Same, over bytes that may not be UTF-8 (a frame as it arrived).
    package static func parse(bytes: [UInt8], maxDepth: Int = 32) throws(JSONError) -> JSONValue {
        let result: Result<JSONValue, JSONError> = bytes.withUnsafeBytes { raw in
            Result { () throws(JSONError) -> JSONValue in try parse(raw, maxDepth: maxDepth) }
        }
        return try result.get()
    }

    /// An object or array under construction.
    private struct Container {
        var isObject: Bool
        var elements: [JSONValue] = []
        var members: [String: JSONValue] = [:]
        /// The member whose value comes next.
        var key: String = ""
    }

    /// The member's value; nil unless this is an object with that key.
    package subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members[key]
    }

    package var stringValue: String? {
        guard case .string(let value) = self else { return nil }
        return value
    }

    package var boolValue: Bool? {
        guard case .bool(let value) = self else { return nil }
        return value
    }

    /// An exact integer: the number's value is integral and |n| ≤ 2^53 (judged on the parsed Double,
    /// so `1e2` and `100.0` are 100).
    package var integerValue: Int64? {
        guard case .number(let value) = self, value.rounded(.towardZero) == value,
            value.magnitude <= 9_007_199_254_740_992
        else { return nil }
        return Int64(value)
    }

    package var arrayValue: [JSONValue]? {
        guard case .array(let value) = self else { return nil }
        return value
    }

    package var objectValue: [String: JSONValue]? {
        guard case .object(let value) = self else { return nil }
        return value
    }

    package var doubleValue: Double? {
        guard case .number(let value) = self else { return nil }
        return value
    }

    package var isNull: Bool { self == .null }
}
