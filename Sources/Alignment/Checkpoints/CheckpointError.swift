/// A problem with a checkpoint file or directory, reported as one line `<path>: <problem>`.
public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The file or directory at fault.
    public var path: String
    /// What is wrong, in words (no trailing newline).
    public var problem: String

    public init(_ path: String, _ problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String {
        "\(path): \(problem)".replacingOccurrences(of: "\n", with: " ")
    }
}
