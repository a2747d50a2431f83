import Foundation

/// Locates `../shared` beside the project (models, tokenizers, golden outputs).
/// Tests that need it call `SharedFixtures.path(...)` and skip with a message when it is nil.
enum SharedFixtures {
    static let projectRoot: URL = {
        var url = URL(fileURLWithPath: #filePath)
        // Tests/LlamaAlignTests/Support/SharedFixtures.swift → project root
        for _ in 0..<4 { url.deleteLastPathComponent() }
        return url
    }()

    static let root: URL = projectRoot.deletingLastPathComponent().appendingPathComponent("shared")

    /// The absolute path of `relative` inside ../shared, or nil (with a printed note) when absent.
    static func path(_ relative: String) -> String? {
        let p = root.appendingPathComponent(relative).path
        if FileManager.default.fileExists(atPath: p) { return p }
        print("note: skipping, ../shared/\(relative) is absent")
        return nil
    }

    /// A fresh empty temporary directory.
    static func tempDir(_ tag: String = "la") -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}
