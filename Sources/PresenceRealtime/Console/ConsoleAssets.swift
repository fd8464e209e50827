/// The console page's files, embedded in the binary at build time (no files to install, no CDN):
/// one HTML document, one style sheet and one JavaScript module, and the client library that
/// module imports. They live in `Console/assets/` and reach the code through SwiftPM's
/// `.embedInCode` resources (Package.swift), which generates `PackageResources`: edit the files
/// there. `presence-client.js` is generated: `clients/js/dist/index.js` byte for byte, copied by
/// `clients/js/scripts/embed.mjs` (`clients/js/scripts/build.sh`); `clients/js/test/build.test.mjs`
/// fails when the copy differs from a fresh build.
enum ConsoleAssets {
    /// The page (`/`, `/console`): markup only; script and style come from the two files below.
    static let html = PackageResources.console_html
    /// The page's style sheet (`/console.css`).
    static let css = PackageResources.console_css
    /// The page's module (`/console.js`); imports `/presence-client.js`.
    static let javascript = PackageResources.console_js
    /// The JavaScript client library (`clients/js`, built) that the console imports as `/presence-client.js`.
    static let clientLibrary = PackageResources.presence_client_js
}
