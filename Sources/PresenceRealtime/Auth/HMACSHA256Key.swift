import CSystem

/// An HMAC-SHA256 key (RFC 2104) whose inner and outer padded-key blocks are hashed once, here:
/// a tag then costs the message's SHA-256 blocks and one more. OpenSSL 3's one-shot `HMAC()`
/// fetches the digest from the provider and sets the key up again on every call (~20,000
/// instructions per token check, issue 19). Immutable after `init`; the two prepared states are
/// only copied from, so one key serves every loop thread.
final class HMACSHA256Key: @unchecked Sendable {
    /// Bytes in a tag.
    static let tagBytes = 32
    private static let blockBytes = 64
    /// SHA-256, fetched from the provider once.
    nonisolated(unsafe) private static let sha256: OpaquePointer = {
        guard let md = EVP_MD_fetch(nil, "SHA256", nil) else { fatalError("EVP_MD_fetch(SHA256) failed in OpenSSL") }
        return md
    }()

    /// SHA-256 states after the key XOR ipad and XOR opad blocks.
    private let inner: OpaquePointer
    private let outer: OpaquePointer

    init(_ key: [UInt8]) {
        var block = key.count > Self.blockBytes ? Self.digest(key) : key
        block += [UInt8](repeating: 0, count: Self.blockBytes - block.count)
        inner = Self.state(after: block.map { $0 ^ 0x36 })
        outer = Self.state(after: block.map { $0 ^ 0x5c })
    }

    deinit {
        EVP_MD_CTX_free(inner)
        EVP_MD_CTX_free(outer)
    }

    /// The 32-byte tag of `message`.
    func tag(_ message: UnsafeRawBufferPointer) -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        defer { EVP_MD_CTX_free(context) }
        var innerHash = [UInt8](repeating: 0, count: Self.tagBytes)
        var tag = [UInt8](repeating: 0, count: Self.tagBytes)
        var ok =
            EVP_MD_CTX_copy_ex(context, inner) == 1
            && EVP_DigestUpdate(context, message.baseAddress, message.count) == 1  // nil with 0 bytes: a no-op
            && EVP_DigestFinal_ex(context, &innerHash, nil) == 1
        ok =
            ok && EVP_MD_CTX_copy_ex(context, outer) == 1
            && EVP_DigestUpdate(context, innerHash, Self.tagBytes) == 1
            && EVP_DigestFinal_ex(context, &tag, nil) == 1
        precondition(ok, "HMAC-SHA256 failed in OpenSSL")
        return tag
    }

    /// The 32-byte tag of `message`.
    func tag(_ message: [UInt8]) -> [UInt8] {
        message.withUnsafeBytes { tag($0) }
    }

    private static func state(after block: [UInt8]) -> OpaquePointer {
        guard let context = EVP_MD_CTX_new() else { fatalError("EVP_MD_CTX_new: out of memory") }
        let ok = EVP_DigestInit_ex(context, sha256, nil) == 1 && EVP_DigestUpdate(context, block, block.count) == 1
        precondition(ok, "SHA-256 failed in OpenSSL")
        return context
    }

    private static func digest(_ bytes: [UInt8]) -> [UInt8] {
        let context = state(after: bytes)
        defer { EVP_MD_CTX_free(context) }
        var out = [UInt8](repeating: 0, count: tagBytes)
        precondition(EVP_DigestFinal_ex(context, &out, nil) == 1, "SHA-256 failed in OpenSSL")
        return out
    }
}
