import Foundation
import Kernels
@_exported import ProgramABI

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

    /// One kernel's totals while profiling.
    public struct KernelCounter: Sendable, Equatable {
        public var nanoseconds: Double
        public var calls: Double
    }

    /// Per-kernel time and calls (indexed like `manifest.kernels`) while profiling, else nil.
    public var counters: [KernelCounter]? {
        profileBuffer.map { p in
            (0..<kernelCount).map { k in
                KernelCounter(nanoseconds: p[Int(LA_PROF_KERNELS) + 2 * k], calls: p[Int(LA_PROF_KERNELS) + 2 * k + 1])
            }
        }
    }

    /// Calls per kernel while profiling (zeros when it is off).
    public var kernelCalls: [Double] { counters?.map(\.calls) ?? Array(repeating: 0, count: kernelCount) }

    /// One recorded kernel call: which kernel, and its start and end in nanoseconds (monotonic clock).
    public struct KernelEvent: Sendable, Equatable {
        public var kernel: Int
        public var start: Double
        public var end: Double
    }

    /// Kernel calls recorded while profiling (up to the capacity given to `setProfiling`).
    public var events: [KernelEvent] {
        guard let p = profileBuffer else { return [] }
        let base = Int(LA_PROF_KERNELS) + 2 * kernelCount, size = Int(LA_PROF_EVENT_SIZE)
        return (0..<Int(p[Int(LA_PROF_RECORDED)])).map { i in
            KernelEvent(kernel: Int(p[base + size * i]), start: p[base + size * i + 1], end: p[base + size * i + 2])
        }
    }

    init(info: UnsafePointer<la_program_info>, manifest: ProgramManifest) {
        self.info = info
        self.manifest = manifest
    }

    /// Every program in the Kernels target's manifest.
    public static let manifests: [ProgramManifest] = {
        (try? ManifestFile.parse(String(cString: la_manifest_json)).programs) ?? []
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
        var b = [Double](repeating: 0, count: Int(LA_PROF_KERNELS) + 2 * kernelCount + Int(LA_PROF_EVENT_SIZE) * max(events, 0))
        b[Int(LA_PROF_CAPACITY)] = Double(max(events, 0))
        profileBuffer = b
    }

    /// Runs the program. `buffers` maps every parameter, input and output name to memory of
    /// the right size; `sizes` binds every size symbol. The arena is allocated and kept.
    public func run(buffers: [String: UnsafeMutableRawPointer], sizes: [String: Int]) throws {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        for f in manifest.fields {
            switch f.kind {
            case .param, .input, .output:
                guard let p = buffers[f.name] else { throw RuntimeError("\(manifest.name): no buffer for '\(f.name)'") }
                slots[f.slot] = Int(bitPattern: p)
            case .size:
                guard let v = sizes[f.name] else { throw RuntimeError("\(manifest.name): size '\(f.name)' is not bound") }
                slots[f.slot] = v
            default: break
            }
        }
        let arenaSlot = manifest.fields.first { $0.kind == .arena }?.slot ?? 0
        let profileSlot = manifest.fields.first { $0.kind == .profile }?.slot ?? 0
        let need = slots.withUnsafeBytes { info.pointee.arena_floats($0.baseAddress) }
        if arena == nil || arena.map({ $0.byteCount < need * 4 }) ?? true { arena = AlignedBuffer(floats: need) }
        slots[arenaSlot] = Int(bitPattern: arena?.raw)
        if profileBuffer != nil {
            profileBuffer!.withUnsafeMutableBufferPointer { p in
                slots[profileSlot] = Int(bitPattern: p.baseAddress)
                slots.withUnsafeBytes { info.pointee.run($0.baseAddress) }
            }
        } else {
            slots.withUnsafeBytes { info.pointee.run($0.baseAddress) }
        }
    }

    /// Bytes of the arena currently held.
    public var arenaBytes: Int { arena?.byteCount ?? 0 }

    /// Per-kernel FLOPs and bytes of one call at these sizes.
    public func costs(sizes: [String: Int]) -> (flops: [Double], bytes: [Double]) {
        var slots = [Int](repeating: 0, count: Int(info.pointee.n_fields))
        for f in manifest.fields where f.kind == .size { slots[f.slot] = sizes[f.name] ?? 0 }
        var fl = [Double](repeating: 0, count: kernelCount), by = fl
        slots.withUnsafeBytes { s in
            fl.withUnsafeMutableBufferPointer { f in
                by.withUnsafeMutableBufferPointer { b in info.pointee.costs(s.baseAddress, f.baseAddress, b.baseAddress) }
            }
        }
        return (fl, by)
    }
}
