/// Which build runs: `presenced --version`, `presenced_build_info` and the console say it.
package enum BuildInfo {
    package static let version = "0.1.0"
}
