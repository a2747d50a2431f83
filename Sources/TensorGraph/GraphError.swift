/// A graph-construction or compilation error. `description` is one line naming the op,
/// its DSL scope and the Swift call site that built it.
public struct GraphError: Error, CustomStringConvertible, Sendable, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
