import XCTest

/// Every pointer to documentation in Sources/, Tests/ and docs/ stays inside the repository: no
/// mention of documents that only existed beside it, and every `docs/<name>.md, "Heading"`
/// names a file in docs/ and a heading in it (docs/architecture.md, "Source code layout").
final class RepositoryReferencesTests: XCTestCase {
    /// The repository root: three levels above Tests/PresenceDTests/Ops/.
    private static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// This file, which names what it forbids.
    private static let selfPath = "Tests/PresenceDTests/Ops/RepositoryReferencesTests.swift"

    /// Text that points outside the repository. Spelled in pieces so that this file, were it ever
    /// scanned, would not match itself.
    private static let outsidePointers = [
        "CONTRACT" + " §", "CONTRACT" + ".md", "PLATFORM" + ".md", "ARCHITECTURE" + ".md",
        ".." + "/shared",
    ]

    func testNoReferenceLeavesTheRepository() throws {
        var found: [String] = []
        for file in try Self.scannedFiles() {
            for (number, line) in file.lines.enumerated() {
                for pointer in Self.outsidePointers where line.contains(pointer) {
                    found.append("\(file.path):\(number + 1): '\(pointer)' points outside the repository")
                }
            }
        }
        XCTAssertEqual(found, [], "\n" + found.joined(separator: "\n"))
    }

    func testEveryDocsReferenceNamesAnExistingHeading() throws {
        let docs = try Self.docsHeadings()
        XCTAssertFalse(docs.isEmpty, "no docs/*.md found under \(Self.root.path)")
        var broken: [String] = []
        var checked = 0
        for file in try Self.scannedFiles() {
            for (number, line) in file.lines.enumerated() {
                for reference in Self.references(in: line) {
                    checked += 1
                    let place = "\(file.path):\(number + 1)"
                    guard let headings = docs[reference.document] else {
                        broken.append("\(place): docs/\(reference.document).md does not exist")
                        continue
                    }
                    if let heading = reference.heading, !headings.contains(heading) {
                        broken.append("\(place): docs/\(reference.document).md has no heading \"\(heading)\"")
                    }
                }
            }
        }
        XCTAssertGreaterThan(checked, 0, "no docs/<name>.md reference found: is the scan looking in the right place?")
        XCTAssertEqual(broken, [], "\n" + broken.joined(separator: "\n"))
    }

    // MARK: Scanning

    private struct ScannedFile {
        /// Relative to the repository root.
        var path: String
        var lines: [Substring]
    }

    /// The text files under Sources/, Tests/ and docs/, this file excepted.
    private static func scannedFiles() throws -> [ScannedFile] {
        var files: [ScannedFile] = []
        for top in ["Sources", "Tests", "docs"] {
            let directory = root.appendingPathComponent(top)
            guard let walker = FileManager.default.enumerator(at: directory, includingPropertiesForKeys: [.isRegularFileKey]) else {
                throw NSError(
                    domain: "RepositoryReferencesTests", code: 1, userInfo: [NSLocalizedDescriptionKey: "cannot list \(directory.path)"])
            }
            for case let url as URL in walker {
                guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true else { continue }
                let path = String(url.standardizedFileURL.path.dropFirst(root.standardizedFileURL.path.count + 1))
                guard path != selfPath, let data = FileManager.default.contents(atPath: url.path),
                    let text = String(data: data, encoding: .utf8)
                else { continue }  // binary files (images) are skipped
                files.append(ScannedFile(path: path, lines: text.split(separator: "\n", omittingEmptySubsequences: false)))
            }
        }
        XCTAssertGreaterThan(files.count, 100, "too few files under \(root.path): is the repository root right?")
        return files
    }

    /// The headings of every docs/<name>.md, by name (without `.md`). Lines inside fenced code
    /// blocks are not headings.
    private static func docsHeadings() throws -> [String: Set<String>] {
        var result: [String: Set<String>] = [:]
        let directory = root.appendingPathComponent("docs")
        for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".md") {
            let text = try String(contentsOf: directory.appendingPathComponent(name), encoding: .utf8)
            var headings = Set<String>()
            var inFence = false
            for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
                if line.hasPrefix("```") || line.hasPrefix("~~~") {
                    inFence.toggle()
                    continue
                }
                guard !inFence, let heading = heading(line) else { continue }
                headings.insert(heading)
            }
            result[String(name.dropLast(3))] = headings
        }
        return result
    }

    /// The text of an ATX heading line (`## Text`), or nil.
    static func heading(_ line: Substring) -> String? {
        let hashes = line.prefix(while: { $0 == "#" }).count
        guard (1...6).contains(hashes), line.dropFirst(hashes).first == " " else { return nil }
        var text = line.dropFirst(hashes).trimmingCharacters(in: .whitespaces)
        // An optional closing sequence of #s.
        if text.hasSuffix("#") {
            let trimmed = String(text.reversed().drop(while: { $0 == "#" }).reversed())
            if trimmed.hasSuffix(" ") { text = trimmed.trimmingCharacters(in: .whitespaces) }
        }
        return text
    }

    /// A pointer into docs/: the file (without `.md`) and, when given, the heading.
    struct Reference: Equatable {
        var document: String
        var heading: String?
    }

    /// Every `docs/<name>.md` in `line`, with the heading when it is followed by `, "Heading"`.
    static func references(in line: Substring) -> [Reference] {
        var result: [Reference] = []
        var rest = line[...]
        while let start = rest.range(of: "docs/") {
            // Not part of a longer path (`clients/js/docs/…`) or word.
            if start.lowerBound > line.startIndex {
                let before = line[line.index(before: start.lowerBound)]
                if before.isLetter || before.isNumber || before == "/" || before == "_" || before == "-" || before == "." {
                    rest = line[start.upperBound...]
                    continue
                }
            }
            let nameEnd =
                line[start.upperBound...].firstIndex(where: { !($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
                ?? line.endIndex
            let name = line[start.upperBound..<nameEnd]
            guard !name.isEmpty, line[nameEnd...].hasPrefix(".md") else {
                rest = line[start.upperBound...]
                continue
            }
            var after = line[line.index(nameEnd, offsetBy: 3)...]
            var heading: String?
            if after.hasPrefix(", \"") || after.hasPrefix(", \\\"") {
                let escaped = after.hasPrefix(", \\\"")
                let open = after.index(after.startIndex, offsetBy: escaped ? 4 : 3)
                let close = escaped ? after[open...].range(of: "\\\"")?.lowerBound : after[open...].firstIndex(of: "\"")
                if let close {
                    heading = String(after[open..<close])
                    after = after[close...]
                }
            }
            result.append(Reference(document: String(name), heading: heading))
            rest = after
        }
        return result
    }

    /// The reference parser itself, on the forms the sources use.
    func testReferenceParsing() {
        XCTAssertEqual(
            Self.references(in: #"/// Fan-out (docs/protocol.md, "Chat messages"): a frame"#),
            [Reference(document: "protocol", heading: "Chat messages")])
        XCTAssertEqual(
            Self.references(in: #"see docs/operations.md and docs/protocol.md, "Server API"."#),
            [Reference(document: "operations", heading: nil), Reference(document: "protocol", heading: "Server API")])
        XCTAssertEqual(
            Self.references(in: #"text += "(docs/operations.md, \"Configuration\")""#),
            [Reference(document: "operations", heading: "Configuration")])
        XCTAssertEqual(Self.references(in: "clients/js/docs/guide.md and docs/"), [])
        XCTAssertEqual(Self.heading("## Delivery: recovery and nonces"), "Delivery: recovery and nonces")
        XCTAssertEqual(Self.heading("### presenced.socket: socket activation ##"), "presenced.socket: socket activation")
        XCTAssertNil(Self.heading("#include <liburing.h>"))
    }
}
