import TestSupport
import XCTest

@testable import PresenceD
@testable import PresenceRealtime

/// SmallUserTable against a plain Dictionary: random operations through growth past
/// `pairsLimit`, shrinking below `pairsFloor` and emptying; the switch-over both ways with every
/// entry kept; tight growth and memory given back; mutation in place; 8 bytes in the table of
/// channels (issue 19).
final class SmallUserTableTests: XCTestCase {
    typealias Table = SmallUserTable
    typealias Entry = EmbeddedPresenceStore.Entry

    /// An entry that stands for `n`.
    private func entry(_ n: Int) -> Entry {
        Entry(name: "n\(n)", connections: Int32(n), generation: UInt32(truncatingIfNeeded: n))
    }

    private func isDictionary(_ table: Table) -> Bool {
        if case .dictionary = table.storage { return true }
        return false
    }

    /// Room for pairs; nil for a dictionary.
    private func pairsCapacity(_ table: Table) -> Int? {
        if case .pairs(let pairs) = table.storage { return pairs.capacity }
        return nil
    }

    /// The table's contents, checked against what iteration, `count`, `isEmpty` and lookups say.
    private func contents(_ table: Table, file: StaticString = #filePath, line: UInt = #line) -> [String: Entry] {
        var seen: [String: Entry] = [:]
        for (user, entry) in table {
            XCTAssertNil(seen.updateValue(entry, forKey: user), "\(user) twice", file: file, line: line)
            XCTAssertEqual(table[user], entry, file: file, line: line)
        }
        XCTAssertEqual(table.count, seen.count, file: file, line: line)
        XCTAssertEqual(table.isEmpty, seen.isEmpty, file: file, line: line)
        XCTAssertEqual(table.underestimatedCount, seen.count, file: file, line: line)
        return seen
    }

    func testEightBytesInTheTableOfChannels() {
        XCTAssertEqual(MemoryLayout<Table>.size, 8)
        XCTAssertEqual(MemoryLayout<Table>.stride, 8)
    }

    /// Random joins (modify with a default), in-place updates, removals and lookups over 61 users,
    /// in phases that grow the table well past the limit and shrink it to nothing, each operation's
    /// result and the contents compared with a Dictionary's, and the form with the hysteresis.
    func testAgainstADictionary() {
        var rng = SplitMix(seed: 19)
        let users = (0..<60).map { "user-\($0)" } + ["a-rather-long-user-identifier-\(UInt64.max)"]
        var table = Table()
        var model: [String: Entry] = [:]
        var expectDictionary = false
        var sawDictionary = false
        var sawSwitchBack = false
        // Chance in 100 that an operation is a join (adding the user when it is not there), per
        // phase; of the rest a third are updates and two thirds removals.
        for joinChance in [90, 70, 50, 20, 5, 60, 10, 80, 0] {
            for _ in 0..<600 {
                let user = users.randomElement(using: &rng)!
                let roll = Int.random(in: 0..<100, using: &rng)
                let delta = Int32.random(in: 1...9, using: &rng)
                if roll < joinChance {
                    var expected = model[user] ?? entry(1_000)
                    expected.connections += delta
                    let got = table.modify(user, default: entry(1_000)) { entry -> Entry in
                        entry.connections += delta
                        return entry
                    }
                    XCTAssertEqual(got, expected)
                    model[user] = expected
                    if model.count > Table.pairsLimit { expectDictionary = true }
                } else if roll < joinChance + (100 - joinChance) / 3 {
                    let got = table.modifyIfPresent(user) { entry -> Entry in
                        entry.generation &+= UInt32(delta)
                        return entry
                    }
                    model[user]?.generation &+= UInt32(delta)
                    XCTAssertEqual(got, model[user])
                } else {
                    XCTAssertEqual(table.removeValue(forKey: user), model.removeValue(forKey: user))
                    if model.count < Table.pairsFloor {
                        if expectDictionary { sawSwitchBack = true }
                        expectDictionary = false
                    }
                }
                XCTAssertEqual(table[user], model[user])
                XCTAssertEqual(isDictionary(table), expectDictionary, "\(model.count) users")
                sawDictionary = sawDictionary || expectDictionary
            }
            XCTAssertEqual(contents(table), model)
        }
        XCTAssertTrue(sawDictionary && sawSwitchBack, "the phases must cross the limit both ways")
        for user in model.keys {
            XCTAssertEqual(table.removeValue(forKey: user), model.removeValue(forKey: user))
            XCTAssertEqual(contents(table), model)
        }
        XCTAssertTrue(table.isEmpty)
        XCTAssertEqual(pairsCapacity(table), 0)
    }

    /// Past `pairsLimit` a dictionary with every entry; down to `pairsFloor` still one, below it
    /// pairs again with every entry; and pairs up to the limit again (hysteresis).
    func testSwitchOverKeepsEveryEntry() {
        var table = Table()
        var model: [String: Entry] = [:]
        for i in 0..<Table.pairsLimit {
            XCTAssertTrue(table.modify("u\(i)", default: entry(i)) { _ in true })
            model["u\(i)"] = entry(i)
        }
        XCTAssertFalse(isDictionary(table))
        XCTAssertEqual(contents(table), model)

        XCTAssertEqual(table.modify("u32", default: entry(32)) { $0 }, entry(32))
        model["u32"] = entry(32)
        XCTAssertTrue(isDictionary(table))
        XCTAssertEqual(contents(table), model)
        // In place in the dictionary too.
        XCTAssertEqual(
            table.modify("u5", default: entry(-1)) { entry -> Int32 in
                entry.connections *= 10
                return entry.connections
            }, 50)
        XCTAssertEqual(
            table.modifyIfPresent("u6") { entry -> Int32 in
                entry.connections *= 10
                return entry.connections
            }, 60)
        XCTAssertNil(table.modifyIfPresent("nobody") { _ in 0 })
        model["u5"]?.connections = 50
        model["u6"]?.connections = 60
        XCTAssertEqual(contents(table), model)

        for i in (Table.pairsFloor..<33).reversed() {
            XCTAssertEqual(table.removeValue(forKey: "u\(i)"), model.removeValue(forKey: "u\(i)"))
        }
        XCTAssertEqual(table.count, Table.pairsFloor)
        XCTAssertTrue(isDictionary(table), "not back to pairs at the floor")
        XCTAssertNil(table.removeValue(forKey: "nobody"))
        XCTAssertTrue(isDictionary(table))

        XCTAssertEqual(table.removeValue(forKey: "u0"), entry(0))
        model["u0"] = nil
        XCTAssertFalse(isDictionary(table), "back to pairs below the floor")
        XCTAssertEqual(contents(table), model)

        for i in 100..<(100 + Table.pairsLimit - table.count) {
            table.modify("u\(i)", default: entry(i)) { _ in }
            model["u\(i)"] = entry(i)
        }
        XCTAssertEqual(table.count, Table.pairsLimit)
        XCTAssertFalse(isDictionary(table), "pairs up to the limit")
        XCTAssertEqual(contents(table), model)
    }

    /// Pairs grow by an eighth, not by doubling, and go back when the table shrinks by half or
    /// empties.
    func testGrowsTightlyAndGivesBack() {
        var table = Table()
        for i in 0..<Table.pairsLimit {
            table.modify("u\(i)", default: entry(i)) { _ in }
            let count = table.count
            let capacity = pairsCapacity(table)!
            XCTAssertGreaterThanOrEqual(capacity, count)
            XCTAssertLessThanOrEqual(capacity, count + count / 8 + 2, "\(count) users")
        }
        for i in 0..<Table.pairsLimit {
            table.removeValue(forKey: "u\(i)")
            let count = table.count
            XCTAssertLessThanOrEqual(
                pairsCapacity(table)!, max(2 * count + 1, count + count / 8 + 2),
                "\(count) users")
        }
        XCTAssertEqual(pairsCapacity(table), 0, "an empty table holds no memory")
    }

    /// The address of the pairs' buffer, or of the dictionary's storage.
    private func storageAddress(_ table: Table) -> UInt {
        switch table.storage {
        case .pairs(let pairs): UInt(bitPattern: pairs.withUnsafeBufferPointer { $0.baseAddress })
        case .dictionary(let box): unsafeBitCast(box.table, to: UInt.self)  // one reference
        }
    }

    /// Updates, appends within the room there is and removals keep the buffer (no copy), also
    /// when the table is a value in a dictionary, as in `EmbeddedPresenceStore`.
    func testMutatesInPlace() {
        func add100(_ entry: inout Entry) -> Int32 {
            entry.connections += 100
            return entry.connections
        }
        var channels: [String: Table] = [:]
        for i in 0..<8 { channels["c", default: Table()].modify("u\(i)", default: entry(i)) { _ in } }
        let pairs = storageAddress(channels["c"]!)
        let room = pairsCapacity(channels["c"]!)!
        XCTAssertEqual(channels["c", default: Table()].modify("u3", default: entry(0), add100), 103)
        XCTAssertEqual(channels["c"]?.modifyIfPresent("u4", add100), 104)
        XCTAssertEqual(storageAddress(channels["c"]!), pairs)
        while channels["c"]!.count < room {
            let user = "v\(channels["c"]!.count)"
            channels["c", default: Table()].modify(user, default: entry(0)) { _ in }
            XCTAssertEqual(storageAddress(channels["c"]!), pairs)
        }
        XCTAssertEqual(channels["c"]?.removeValue(forKey: "u0"), entry(0))
        XCTAssertEqual(storageAddress(channels["c"]!), pairs)
        XCTAssertEqual(channels["c"]?["u3"]?.connections, 103)

        for i in 0..<40 { channels["big", default: Table()].modify("u\(i)", default: entry(i)) { _ in } }
        XCTAssertTrue(isDictionary(channels["big"]!))
        let dictionary = storageAddress(channels["big"]!)
        XCTAssertEqual(channels["big", default: Table()].modify("u7", default: entry(0), add100), 107)
        XCTAssertEqual(channels["big"]?.modifyIfPresent("u8", add100), 108)
        XCTAssertEqual(channels["big"]?.removeValue(forKey: "u9"), entry(9))
        XCTAssertEqual(storageAddress(channels["big"]!), dictionary)
    }
}
