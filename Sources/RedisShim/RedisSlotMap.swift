/// A cluster node's client address as `CLUSTER SLOTS` and `MOVED`/`ASK` redirects report it.
public struct RedisNodeAddress: Hashable, Sendable, CustomStringConvertible {
    /// IP literal or host name (IPv6 without brackets).
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `host:port` (the last colon separates the port, so `::1:7000` works); an empty host
    /// (Redis 7 reports one when it does not know its own address) becomes `defaultHost`.
    public init?(_ text: Substring, defaultHost: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (1...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty { host = defaultHost }
        self.init(host: host, port: port)
    }

    /// `127.0.0.1:7000`, `[::1]:7000`.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Which master serves each of the 16384 hash slots. Empty until learned from `CLUSTER SLOTS`.
public struct RedisSlotMap: Hashable, Sendable {
    /// Hash slots in a Redis Cluster.
    public static let slotCount = 16384
    private static let none = UInt16.max

    /// Index into `table` per slot, or `none`.
    private var owners: [UInt16]
    private var table: [RedisNodeAddress] = []
    /// Slots per `table` entry.
    private var counts: [Int] = []

    /// A map in which no slot is served.
    public init() {
        owners = [UInt16](repeating: Self.none, count: Self.slotCount)
    }

    /// True when no slot is served.
    public var isEmpty: Bool { counts.allSatisfy { $0 == 0 } }

    /// Slots that have an owner (16384 in a healthy cluster).
    public var coveredSlots: Int { counts.reduce(0, +) }

    /// The masters that serve at least one slot, in order of first appearance.
    public var nodes: [RedisNodeAddress] {
        var result: [RedisNodeAddress] = []
        for (i, node) in table.enumerated() where counts[i] > 0 { result.append(node) }
        return result
    }

    /// The master serving `slot` (0..<16384), if any.
    public func owner(ofSlot slot: Int) -> RedisNodeAddress? {
        guard slot >= 0, slot < Self.slotCount else { return nil }
        let index = owners[slot]
        return index == Self.none ? nil : table[Int(index)]
    }

    /// The master serving `key`'s slot, if any.
    public func owner(ofKey key: String) -> RedisNodeAddress? {
        owner(ofSlot: RedisCluster.keySlot(key))
    }

    /// The slots `node` serves.
    public func slots(of node: RedisNodeAddress) -> [Int] {
        guard let index = table.firstIndex(of: node) else { return [] }
        return (0..<Self.slotCount).filter { owners[$0] == UInt16(index) }
    }

    /// Makes `node` the owner of `slots`.
    public mutating func assign(_ slots: ClosedRange<Int>, to node: RedisNodeAddress) {
        let lower = max(0, slots.lowerBound), upper = min(Self.slotCount - 1, slots.upperBound)
        guard lower <= upper else { return }
        let index: Int
        if let i = table.firstIndex(of: node) {
            index = i
        } else {
            table.append(node)
            counts.append(0)
            index = table.count - 1
        }
        for slot in lower...upper {
            let old = owners[slot]
            if old != Self.none { counts[Int(old)] -= 1 }
            owners[slot] = UInt16(index)
            counts[index] += 1
        }
    }

    /// The master of every slot range in a `CLUSTER SLOTS` reply:
    /// `[[start, end, [host, port, id, …], replica…], …]`. An empty host means the node that
    /// answered (`replyingHost`); a `?` host (unknown endpoint) leaves the range unserved.
    /// Nil when the reply does not have that shape.
    public init?(clusterSlots reply: RedisValue, replyingHost: String) {
        self.init()
        guard let ranges = reply.array else { return nil }
        for range in ranges {
            guard let items = range.array, items.count >= 3,
                let start = items[0].int, let end = items[1].int, start >= 0, start <= end,
                end < Int64(Self.slotCount),
                let master = items[2].array, master.count >= 2,
                var host = master[0].string, let port = master[1].int, (1...65535).contains(port)
            else { return nil }
            if host == "?" { continue }
            if host.isEmpty { host = replyingHost }
            assign(Int(start)...Int(end), to: RedisNodeAddress(host: host, port: Int(port)))
        }
    }
}

extension RedisCluster {
    /// The hash slot of `key`: CRC16-XMODEM of the key, or of its hash tag — the bytes between
    /// the first `{` and the first `}` after it, when not empty — modulo 16384.
    /// Same as `CLUSTER KEYSLOT`: `{user1000}.following` and `{user1000}.followers` share 3443;
    /// `{}foo` hashes the whole key.
    public static func keySlot(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { keySlot(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// ``keySlot(_:)`` of a binary key.
    public static func keySlot(_ key: [UInt8]) -> Int {
        key.withUnsafeBytes { keySlot(bytes: $0) }
    }

    /// ``keySlot(_:)`` of the bytes in `key`.
    public static func keySlot(bytes key: UnsafeRawBufferPointer) -> Int {
        var hashed = key
        if let open = key.firstIndex(of: UInt8(ascii: "{")) {
            let rest = key[(open + 1)...]
            if let close = rest.firstIndex(of: UInt8(ascii: "}")), close > open + 1 {
                hashed = UnsafeRawBufferPointer(rebasing: key[(open + 1)..<close])
            }
        }
        return Int(crc16(hashed) & 0x3fff)
    }

    /// CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection), as Redis Cluster uses it.
    public static func crc16(_ bytes: UnsafeRawBufferPointer) -> UInt16 {
        var crc: UInt16 = 0
        crc16Table.withUnsafeBufferPointer { table in
            for byte in bytes {
                crc = (crc << 8) ^ table[Int(UInt8(truncatingIfNeeded: crc >> 8) ^ byte)]
            }
        }
        return crc
    }

    private static let crc16Table: [UInt16] = (0..<256).map { i -> UInt16 in
        var crc = UInt16(i) << 8
        for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        return crc
    }
}
