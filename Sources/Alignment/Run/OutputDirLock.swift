import Foundation

/// An advisory lock on `output_dir` for the length of a run (`flock` on `.llama-align.lock` in
/// it), so two runs never write one folder: the second fails at once, naming the first.
/// The lock goes with the process if it dies.
public final class OutputDirLock: @unchecked Sendable {
    private var fd: Int32
    public let path: String

    /// Takes the lock, creating `outputDir` if needed; throws naming the holder if another
    /// process has it.
    public init(outputDir: String) throws {
        try TrainingCheckpoint.checkWritable(outputDir: outputDir)
        path = (outputDir as NSString).appendingPathComponent(".llama-align.lock")
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RuntimeIOError("\(path): cannot open the output_dir lock (\(String(cString: strerror(errno))))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            fd = -1
            throw RuntimeIOError("\(outputDir): output_dir is in use by another run (\(holder.isEmpty ? "unknown process" : holder)); "
                                 + "wait for it to finish or choose another output_dir")
        }
        let note = "pid \(getpid()), started \(ISO8601DateFormatter().string(from: Date()))\n"
        _ = ftruncate(fd, 0)
        _ = note.withCString { write(fd, $0, strlen($0)) }
        removeStaleTemporaries(outputDir)
    }

    /// Folders and files a killed save left (`.checkpoint-N.tmp-…`, `.NAME.tmp-…`): with the
    /// lock held nobody else is writing them, so they go, with a note.
    private func removeStaleTemporaries(_ outputDir: String) {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: outputDir)) ?? [] where name.hasPrefix(".") && name.contains(".tmp-") {
            let p = (outputDir as NSString).appendingPathComponent(name)
            if (try? fm.removeItem(atPath: p)) != nil {
                FileHandle.standardError.write(Data("note: removed \(p), left by an interrupted save\n".utf8))
            }
        }
    }

    /// Gives the lock back (also done when the object goes away).
    public func release() {
        guard fd >= 0 else { return }
        _ = flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
