/// Builds one `Program` with the DSL. Not thread-safe: one builder per program, used
/// from one thread (graph construction happens in the `graphs` tool and in tests).
public final class GraphBuilder {
    public let name: String
    public private(set) var nodes: [Node] = []
    private(set) var stages: [Stage] = [Stage(name: "main", count: nil)]
    private(set) var carries: [Carry] = []
    private(set) var inputs: [TensorDecl] = []
    private(set) var params: [TensorDecl] = []
    private(set) var outputs: [(name: String, node: Int)] = []
    private var scopes: [String] = []
    private var currentStage = 0
    private var errors: [GraphError] = []
    private var leafCache: [Op: [Int]] = [:]

    public init(_ name: String) { self.name = name }

    // MARK: Declarations

    /// Declares a program input; inside a repeated stage `perLayer` inputs are sliced per layer.
    public func input(_ name: String, _ shape: Shape, _ dtype: DType = .f32, perLayer: Bool = false,
                      mutable: Bool = false, file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        declare(&inputs, TensorDecl(name: name, shape: shape, dtype: dtype, perLayer: perLayer, mutable: mutable), file, line)
        return leaf(.input(name), perLayer ? layerShape(shape, name, file, line) : shape, dtype, file, line)
    }

    /// Declares a parameter; `perLayer` parameters have a leading layer axis and are sliced per layer.
    public func param(_ name: String, _ shape: Shape, _ dtype: DType = .f32, perLayer: Bool = false,
                      file: StaticString = #fileID, line: UInt = #line) -> Tensor {
        declare(&params, TensorDecl(name: name, shape: shape, dtype: dtype, perLayer: perLayer), file, line)
        return leaf(.param(name), perLayer ? layerShape(shape, name, file, line) : shape, dtype, file, line)
    }

    /// Names a result of the program.
    public func output(_ name: String, _ t: Tensor) { outputs.append((name, t.id)) }

    private func declare(_ list: inout [TensorDecl], _ d: TensorDecl, _ file: StaticString, _ line: UInt) {
        if let old = list.first(where: { $0.name == d.name }) {
            if old != d { fail("'\(d.name)' declared twice with different shapes", file, line) }
        } else {
            list.append(d)
        }
    }

    private func layerShape(_ shape: Shape, _ name: String, _ file: StaticString, _ line: UInt) -> Shape {
        guard stages[currentStage].count != nil else {
            fail("per-layer tensor '\(name)' used outside a repeated stage", file, line)
            return shape
        }
        return Array(shape.dropFirst())
    }

    // MARK: Stages and scopes

    /// Runs `body` inside a named scope; every node it builds records the scope path.
    @discardableResult
    public func scope<T>(_ name: String, _ body: () throws -> T) rethrows -> T {
        scopes.append(name)
        defer { scopes.removeLast() }
        return try body()
    }

    /// Runs `body` with the scope path replaced by `path` (autodiff files each gradient under
    /// the scope of the op it differentiates).
    public func withScopePath<T>(_ path: String, _ body: () throws -> T) rethrows -> T {
        let saved = scopes
        scopes = path.isEmpty ? [] : path.split(separator: "/").map(String.init)
        defer { scopes = saved }
        return try body()
    }

    /// A stage repeated `count` times (the layer loop). `body` gets the carried values and
    /// returns their next values; the result is the carried values after the last iteration.
    /// With `reversed`, iteration `l` sees layer `count − 1 − l` (backward through the layers).
    public func repeated(_ name: String, count: Dim, reversed: Bool = false, carry initial: [Tensor],
                         _ body: ([Tensor]) throws -> [Tensor], file: StaticString = #fileID, line: UInt = #line) rethrows -> [Tensor] {
        stages.append(Stage(name: name, count: count, reversed: reversed))
        currentStage = stages.count - 1
        let loopStage = currentStage
        let base = carries.count
        var entries: [Tensor] = []
        for (k, t) in initial.enumerated() {
            let p = append(.carry(base + k), [], nodes[t.id].shape, nodes[t.id].dtype, file, line)
            carries.append(Carry(stage: loopStage, entry: p.id, initial: t.id, next: -1))
            entries.append(p)
        }
        scopes.append(name)
        let next = try body(entries)
        scopes.removeLast()
        if next.count != initial.count { fail("repeated stage '\(name)' returned \(next.count) values for \(initial.count) carries", file, line) }
        for (k, t) in zip(0..., next) where k < initial.count {
            if nodes[t.id].shape != nodes[entries[k].id].shape {
                fail("carry \(k) of '\(name)' changes shape \(nodes[entries[k].id].shape.shapeDescription) → \(nodes[t.id].shape.shapeDescription)", file, line)
            }
            carries[base + k].next = t.id
        }
        stages.append(Stage(name: "after_\(name)", count: nil))
        currentStage = stages.count - 1
        return entries.enumerated().map { k, p in
            append(.loopResult(base + k), [], nodes[p.id].shape, nodes[p.id].dtype, file, line)
        }
    }

    // MARK: Node creation

    func leaf(_ op: Op, _ shape: Shape, _ dtype: DType, _ file: StaticString, _ line: UInt) -> Tensor {
        // One node per leaf and stage keeps CSE trivial for inputs and parameters.
        if let ids = leafCache[op], let id = ids.first(where: { nodes[$0].stage == currentStage && nodes[$0].shape == shape }) {
            return Tensor(id: id, builder: self)
        }
        let t = append(op, [], shape, dtype, file, line)
        leafCache[op, default: []].append(t.id)
        return t
    }

    @discardableResult
    func append(_ op: Op, _ inputs: [Int], _ shape: Shape, _ dtype: DType, _ file: StaticString, _ line: UInt) -> Tensor {
        let id = nodes.count
        nodes.append(Node(id: id, op: op, inputs: inputs, shape: shape, dtype: dtype,
                          scope: scopes.joined(separator: "/"), site: "\(file):\(line)", stage: currentStage))
        return Tensor(id: id, builder: self)
    }

    /// Records a shape or type error for the op being built; `build()` reports it.
    func fail(_ message: String, _ file: StaticString, _ line: UInt, op: String? = nil) {
        let scope = scopes.isEmpty ? "" : " in scope '\(scopes.joined(separator: "/"))'"
        let opText = op.map { "\($0): " } ?? ""
        errors.append(GraphError("\(file):\(line): \(opText)\(message)\(scope) (program '\(name)')"))
    }

    /// The tensor of an existing node.
    public func tensor(_ id: Int) -> Tensor { Tensor(id: id, builder: self) }

    /// The index of the stage new nodes go into.
    public var stageIndex: Int { currentStage }

    /// The declaration of an input or parameter (nil for any other value): its full shape
    /// (with the layer axis of a per-layer tensor) and whether it is sliced per layer.
    public func declaration(of t: Tensor) -> TensorDecl? {
        switch nodes[t.id].op {
        case .input(let name): inputs.first { $0.name == name }
        case .param(let name): params.first { $0.name == name }
        default: nil
        }
    }

    func shape(_ t: Tensor) -> Shape { nodes[t.id].shape }
    func dtype(_ t: Tensor) -> DType { nodes[t.id].dtype }

    /// Freezes the program, reporting the first construction error.
    public func build() throws -> Program {
        if let e = errors.first { throw e }
        for c in carries where c.next < 0 { throw GraphError("program '\(name)': a carry has no next value") }
        return Program(name: name, nodes: nodes, stages: stages, carries: carries,
                       inputs: inputs, params: params, outputs: outputs)
    }

    /// Every error recorded so far.
    public var recordedErrors: [GraphError] { errors }
}

/// A value in a program being built. Arithmetic operators and methods add nodes.
public struct Tensor {
    public let id: Int
    public let builder: GraphBuilder
    public var shape: Shape { builder.shape(self) }
    public var dtype: DType { builder.dtype(self) }
    public var rank: Int { shape.count }
    /// The declaration when this is an input or parameter, else nil.
    public var declaration: TensorDecl? { builder.declaration(of: self) }
}
