import WSCore

/// Unpadded base64url (RFC 4648 §5, as JWS compact serialization uses it: `A–Z a–z 0–9 - _`, no `=`):
/// WSCore's `Base64` with the URL alphabet and no padding.
///
/// Decoding is strict: padding, whitespace, the standard alphabet's `+` and `/`, an impossible
/// length (4n+1) and non-zero unused trailing bits are all refused, so each byte string has
/// exactly one accepted encoding.
enum Base64URL {
    /// The unpadded base64url text of `bytes`.
    static func encode<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        Base64.encode(bytes, alphabet: .url, padding: false)
    }

    /// The bytes encoded by `text`, or nil unless it is canonical unpadded base64url.
    static func decode(_ text: String) -> [UInt8]? {
        Base64.decode(text, alphabet: .url, padding: false)
    }

    /// The bytes encoded by the ASCII `text`, or nil unless it is canonical unpadded base64url.
    static func decode(_ text: UnsafeRawBufferPointer) -> [UInt8]? {
        Base64.decode(text, alphabet: .url, padding: false)
    }
}
