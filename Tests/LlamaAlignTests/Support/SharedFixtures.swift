import Foundation

/// Locates `../shared` beside the project (models, tokenizers, golden outputs), or the folder
/// named by the environment variable `LLAMA_ALIGN_SHARED` when it is set and not empty.
///
/// A test that needs a fixture says so with a trait, so that without it the test is reported
/// as skipped (not as passed), and reads the path with `require`, which throws if it is absent:
///
///     @Test(.enabled(if: SharedFixtures.available("models/stories260K.bin"), "needs ../shared"))
///     func loads() throws {
///         let model = try SharedFixtures.require("models/stories260K.bin")
///         …
///     }
enum SharedFixtures {
    static let projectRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        // Tests/LlamaAlignTests/Support/SharedFixtures.swift → project root
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url
    }()

    /// `LLAMA_ALIGN_SHARED` when set and not empty, else `../shared` beside the project root.
    static let root: URL = {
        if let dir = ProcessInfo.processInfo.environment["LLAMA_ALIGN_SHARED"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return projectRoot.deletingLastPathComponent().appendingPathComponent("shared")
    }()

    /// A fixture that `require` did not find.
    struct Missing: Error, CustomStringConvertible {
        var path: String
        var description: String {
            "\(path) is absent (the shared fixtures are looked up in ../shared beside the project, or in LLAMA_ALIGN_SHARED)"
        }
    }

    /// True when every one of `relatives` exists inside the shared folder (for `.enabled(if:)`).
    static func available(_ relatives: String...) -> Bool {
        relatives.allSatisfy { FileManager.default.fileExists(atPath: root.appendingPathComponent($0).path) }
    }

    /// The absolute path of `relative` inside the shared folder; throws `Missing` when it is absent.
    static func require(_ relative: String) throws -> String {
        let p = root.appendingPathComponent(relative).path
        guard FileManager.default.fileExists(atPath: p) else { throw Missing(path: p) }
        return p
    }

    /// The absolute path of `relative` inside the shared folder, or nil (with a printed note) when
    /// absent. For an optional extra check inside a test that has other work to do; a test that
    /// needs the fixture uses `available` in a trait and `require` instead.
    static func path(_ relative: String) -> String? {
        let p = root.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: p) { return p }
        print("note: skipping, \(p) is absent")
        return nil
    }

    /// A fresh empty temporary directory.
    static func tempDir(_ tag: String = "la") -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}
