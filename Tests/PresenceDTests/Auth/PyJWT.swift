import Foundation
import XCTest

/// Runs PyJWT (Debian `python3-jwt`) through `/usr/bin/python3` for interoperability tests.
/// Secrets, claims and tokens travel in environment variables, never on the command line.
/// A missing PyJWT is an error with a clear message, not a skip: Tests/run installs python3-jwt.
enum PyJWT {
    /// Why PyJWT could not run.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private static let prelude = """
        import json, os, sys
        try:
            import jwt
        except ImportError as error:
            sys.stderr.write("PyJWT is not importable by /usr/bin/python3 (%s): install the Debian package python3-jwt (Tests/run does)" % error)
            sys.exit(3)

        """

    /// Signs `claimsJSON` with HS256 (or `algorithm`) under `secret`, with extra `headers`; the token.
    static func encode(
        claimsJSON: String, secret: String, algorithm: String = "HS256",
        headersJSON: String = "null"
    ) throws -> String {
        try run(
            """
            claims = json.loads(os.environ["CLAIMS"])
            headers = json.loads(os.environ["HEADERS"])
            token = jwt.encode(claims, os.environ["SECRET"], algorithm=os.environ["ALG"], headers=headers)
            sys.stdout.write(token if isinstance(token, str) else token.decode())
            """, environment: ["CLAIMS": claimsJSON, "SECRET": secret, "ALG": algorithm, "HEADERS": headersJSON])
    }

    /// Verifies `token` as PyJWT does (HS256 only, audience and the required claims checked);
    /// the decoded claims as JSON with sorted keys, or a `Failure` naming PyJWT's exception.
    static func decode(token: String, secret: String, audience: String) throws -> [String: Any] {
        let json = try run(
            """
            try:
                claims = jwt.decode(os.environ["TOKEN"], os.environ["SECRET"], algorithms=["HS256"],
                                    audience=os.environ["AUDIENCE"],
                                    options={"require": ["exp", "iat", "sub", "jti", "aud"]})
            except jwt.InvalidTokenError as error:
                sys.stderr.write("PyJWT refused the token: %s" % type(error).__name__)
                sys.exit(4)
            sys.stdout.write(json.dumps({"header": jwt.get_unverified_header(os.environ["TOKEN"]), "claims": claims}, sort_keys=True))
            """, environment: ["TOKEN": token, "SECRET": secret, "AUDIENCE": audience])
        guard let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any] else {
            throw Failure(description: "PyJWT printed something other than a JSON object")
        }
        return object
    }

    private static func run(_ script: String, environment: [String: String]) throws -> String {
        let python = URL(fileURLWithPath: "/usr/bin/python3")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            throw Failure(description: "/usr/bin/python3 is missing: install python3 and python3-jwt (Tests/run does)")
        }
        let process = Process()
        process.executableURL = python
        process.arguments = ["-c", prelude + script]
        process.environment = environment.merging(["LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"]) { a, _ in a }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let output = out.fileHandleForReading.readDataToEndOfFile()
        let errors = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "python3 exited \(process.terminationStatus): " + String(decoding: errors, as: UTF8.self))
        }
        return String(decoding: output, as: UTF8.self)
    }
}
