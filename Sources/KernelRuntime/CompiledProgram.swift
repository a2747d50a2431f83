import Foundation
import Kernels

/// The manifest the compiler embedded into the generated C: argument slots, kernels, arena plan.
public struct ProgramManifest: Decodable, Sendable {
    public struct Field: Decodable, Sendable {
        public var slot: Int
        public var name: String
        public var kind: String
        public var dtype: String?
        public var shape: [String]?
        public var per_layer: Bool?
        public var mutable: Bool?
    }
    public struct KernelEntry: Decodable, Sendable {
        public var index: Int
        public var name: String
        public var kind: String
        public var ops: [String]
        public var scopes: [String]
        public var stage: String
        public var flops: String
        public var bytes: String
    }
    public struct Arena: Decodable, Sendable {
        public var slots: Int
        public var planned_floats: String
        public var intermediates_floats: String
    }
    public var name: String
    public var symbol: String
    public var fields: [Field]
    public var sizes: [String]
    public var kernels: [KernelEntry]
    public var arena: Arena
}

/// Errors from calling compiled programs.
public struct RuntimeError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

/// One compiled program of the `Kernels` target, callable by name with named buffers and sizes.
public final class CompiledProgram: @unchecked Sendable {
    public let manifest: ProgramManifest
    private let info: UnsafePointer<la_program_info>
    private var arena: AlignedBuffer?
    /// The profiling buffer the C fills (see `la_tock`); nil keeps timing off.
    private var profileBuffer: [Double]?

    /// Per-kernel nanoseconds and call counts (`[ns₀, calls₀, ns₁, calls₁, …]`) while profiling.
    public var profile: [Double]? { profileBuffer.map { Array($0[2..<(2 + 2 * kernelCount)]) } }

    /// One recorded kernel call: which kernel, and its start and end in nanoseconds (monotonic clock).
    public struct KernelEvent: Sendable, Equatable {
        public var kernel: Int
        public var start: Double
        public var end: Double
    }

    /// Kernel calls recorded while profiling (up to the capacity given to `setProfiling`).
    public var events: [KernelEvent] {
        guard let p = profileBuffer else { return [] }
        let base = 2 + 2 * kernelCount
        return (0..<Int(p[1])).map { i in KernelEvent(kernel: Int(p[base + 3 * i]), start: p[base + 3 * i + 1], end: p[base + 3 * i + 2]) }
    }

    /// Where the arena and the profiling buffer go in the argument slots.
    private let arenaSlot: Int
    private let profileSlot: Int

    init(info: UnsafePointer<la_program_info>, manifest: ProgramManifest) {
        self.info = info
        self.manifest = manifest
        arenaSlot = manifest.fields.first { $0.kind == "arena" }?.slot ?? 0
        profileSlot = manifest.fields.first { $0.kind == "profile" }?.slot ?? 0
    }

    /// Every program in the Kernels target's manifest.
    public static let manifests: [ProgramManifest] = {
        struct Root: Decodable { var programs: [ProgramManifest] }
        let json = String(cString: la_manifest_json)
        return (try? JSONDecoder().decode(Root.self, from: Data(json.utf8)).programs) ?? []
    }()

    /// Loads `family.program` (e.g. `llama.decode`).
    public static func load(_ name: String) throws -> CompiledProgram {
        guard let m = manifests.first(where: { $0.name == name }) else {
            throw RuntimeError("no compiled program named '\(name)' (have: \(manifests.map(\.name).joined(separator: ", ")))")
        }
        for i in 0..<Int(la_program_count) {
            guard let p = la_program_at(Int32(i)) else { continue }
            if String(cString: p.pointee.name) == name { return CompiledProgram(info: p, manifest: m) }
        }
        throw RuntimeError("program '\(name)' is in the manifest but not in the program table")
    }

    public var kernelCount: Int { Int(info.pointee.n_kernels) }

    /// Turns per-kernel timing on (zeroing the counters, recording up to `events` calls) or off.
    public func setProfiling(_ on: Bool, events: Int = 0) {
        guard on else { profileBuffer = nil; return }
        var b = [Double](repeating: 0, count: 2 + 2 * kernelCount + 3 * max(events, 0))
        b[0] = Double(max(events, 0))
        profileBuffer = b
    }

    /// The argument slots of one call, bound once: a program run many times with the same
    /// buffers (decode, one call per token) changes only its sizes between calls, and running
    /// it allocates nothing unless the arena must grow.
    public struct Arguments: Sendable {
        fileprivate var slots: [Int]
        fileprivate let sizeSlots: [String: Int]

        /// Binds size `name` (ignored when the program has no such size).
        public mutating func setSize(_ name: String, _ value: Int) {
            if let slot = sizeSlots[name] { slots[slot] = value }
        }
    }

    /// Binds the arguments of a call. `buffers` maps every parameter, input and output name to
    /// memory of the right size; `sizes` binds every size symbol.
    public func bind(buffers: [String: UnsafeMutableRawPointer], sizes: [String: Int]) throws -> Arguments {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        var sizeSlots: [String: Int] = [:]
        for f in manifest.fields {
            switch f.kind {
            case "param", "input", "output":
                guard let p = buffers[f.name] else { throw RuntimeError("\(manifest.name): no buffer for '\(f.name)'") }
                slots[f.slot] = Int(bitPattern: p)
            case "size":
                guard let v = sizes[f.name] else { throw RuntimeError("\(manifest.name): size '\(f.name)' is not bound") }
                slots[f.slot] = v
                sizeSlots[f.name] = f.slot
            default: break
            }
        }
        return Arguments(slots: slots, sizeSlots: sizeSlots)
    }

    /// Runs the program. `buffers` maps every parameter, input and output name to memory of
    /// the right size; `sizes` binds every size symbol. The arena is allocated and kept.
    public func run(buffers: [String: UnsafeMutableRawPointer], sizes: [String: Int]) throws {
        var arguments = try bind(buffers: buffers, sizes: sizes)
        run(&arguments)
    }

    /// Runs the program with bound arguments (the arena grows if these sizes need more).
    public func run(_ arguments: inout Arguments) {
        reserveArena(arguments)
        arguments.slots[arenaSlot] = Int(bitPattern: arena?.raw)
        if profileBuffer != nil {
            profileBuffer!.withUnsafeMutableBufferPointer { p in
                arguments.slots[profileSlot] = Int(bitPattern: p.baseAddress)
                arguments.slots.withUnsafeBytes { info.pointee.run($0.baseAddress) }
            }
            arguments.slots[profileSlot] = 0
        } else {
            arguments.slots.withUnsafeBytes { info.pointee.run($0.baseAddress) }
        }
    }

    /// Allocates the arena for calls with these arguments' sizes, if the one held is smaller
    /// (arena sizes grow with every size, so binding the largest sizes once covers all calls).
    public func reserveArena(_ arguments: Arguments) {
        let need = arguments.slots.withUnsafeBytes { info.pointee.arena_floats($0.baseAddress) }
        if arena == nil || arena.map({ $0.byteCount < need * 4 }) ?? true { arena = AlignedBuffer(floats: need) }
    }

    /// Bytes of the arena currently held.
    public var arenaBytes: Int { arena?.byteCount ?? 0 }

    /// Per-kernel FLOPs and bytes of one call at these sizes.
    public func costs(sizes: [String: Int]) -> (flops: [Double], bytes: [Double]) {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        for f in manifest.fields where f.kind == "size" { slots[f.slot] = sizes[f.name] ?? 0 }
        var fl = [Double](repeating: 0, count: kernelCount), by = fl
        slots.withUnsafeBytes { s in
            fl.withUnsafeMutableBufferPointer { f in
                by.withUnsafeMutableBufferPointer { b in info.pointee.costs(s.baseAddress, f.baseAddress, b.baseAddress) }
            }
        }
        return (fl, by)
    }
}
