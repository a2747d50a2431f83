import Foundation

/// Where a command that derives one model from another (`quantize`, `merge`, `export`) may
/// write: never over the source, and, for a checkpoint directory, never into one that already
/// holds a model (its own files would be replaced and the rest left mixed with the new ones).
public enum CheckpointOutput {
    /// The path with `.`/`..` and symbolic links resolved, for comparing two paths.
    static func resolved(_ path: String) -> String {
        URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    }

    /// Files whose presence makes a directory a model checkpoint.
    static let modelFiles = ["config.json", "model.safetensors", "model.safetensors.index.json", "adapter_config.json"]

    /// Throws when `out` (a directory to create or fill) is `source` itself, or the directory
    /// `source` lies in when that is a file, or already holds a checkpoint.
    public static func checkDirectory(_ out: String, source: String) throws {
        let target = resolved(out), from = resolved(source)
        var isDir: ObjCBool = false
        let fm = FileManager.default
        let sourceDir = fm.fileExists(atPath: from, isDirectory: &isDir) && !isDir.boolValue
            ? (from as NSString).deletingLastPathComponent : from
        if target == from || target == sourceDir {
            throw CheckpointError(out, "is where the source model \(source) lives; write to a new directory (--out)")
        }
        if let present = modelFiles.first(where: { fm.fileExists(atPath: (target as NSString).appendingPathComponent($0)) }) {
            throw CheckpointError(out, "already holds a model (\(present)); write to a new directory or remove it first (--out)")
        }
    }

    /// Throws when the file `out` is the file `source`.
    public static func checkFile(_ out: String, source: String) throws {
        if resolved(out) == resolved(source) {
            throw CheckpointError(out, "is the source model itself; write to another file (--out)")
        }
    }
}
