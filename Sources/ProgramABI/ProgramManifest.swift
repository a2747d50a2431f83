import Foundation

/// The contract between the compiler and the runtime: what the emitter writes about each
/// compiled program (embedded in the generated C as JSON, and in `generated/manifest.json`)
/// and what the runtime reads to call it. One type, written and read with `Codable`.
public struct ProgramManifest: Codable, Sendable, Equatable {
    /// A slot of the program's argument struct (every slot is 8 bytes).
    public struct Field: Codable, Sendable, Equatable {
        /// What a slot holds.
        public enum Kind: String, Codable, Sendable {
            /// A model parameter, read only.
            case param
            /// A caller buffer: read, or written when `mutable` (gradients, KV cache, kept activations).
            case input
            /// A buffer the program writes.
            case output
            /// The program's scratch memory (`arena_floats` floats).
            case arena
            /// NULL, or the profiling buffer (`ProfileLayout`).
            case profile
            /// A size symbol's value.
            case size
        }
        public var slot: Int
        public var name: String
        public var kind: Kind
        /// `f32` or `i32` for buffers.
        public var dtype: String?
        /// Dims as products of symbols and integers (`2*HD2*KVH`), outermost first.
        public var shape: [String]?
        /// A parameter or input stacked over layers (`[L, …]`).
        public var perLayer: Bool?
        /// An input the program writes.
        public var mutable: Bool?

        public init(slot: Int, name: String, kind: Kind, dtype: String? = nil, shape: [String]? = nil,
                    perLayer: Bool? = nil, mutable: Bool? = nil) {
            self.slot = slot; self.name = name; self.kind = kind
            self.dtype = dtype; self.shape = shape; self.perLayer = perLayer; self.mutable = mutable
        }

        enum CodingKeys: String, CodingKey {
            case slot, name, kind, dtype, shape, mutable
            case perLayer = "per_layer"
        }
    }

    /// One fused kernel.
    public struct Kernel: Codable, Sendable, Equatable {
        /// How a kernel computes.
        public enum Kind: String, Codable, Sendable {
            /// A matrix product (OpenBLAS sgemm/sgemv through the runtime's `la_gemm`).
            case sgemm
            /// A mixed-precision product of a bf16 program (bf16 operands, fp32 accumulation:
            /// `la_bf16_gemm`, emitted by `BF16GemmLowering`).
            case bf16Gemm = "bf16_gemm"
            /// A loop over rows × last axis with its absorbed reductions.
            case fusedLoop = "fused_loop"
            /// Rows accumulated at indices.
            case scatterAdd = "scatter_add"
            /// Fused causal attention (forward, or a backward part) over batch × heads.
            case attention
        }
        public var index: Int
        public var name: String
        public var kind: Kind
        /// The IR ops it performs.
        public var ops: [String]
        /// The DSL scopes of those ops.
        public var scopes: [String]
        /// The program stage it runs in.
        public var stage: String
        /// FLOPs and bytes of one call, as C expressions over the sizes.
        public var flops: String
        public var bytes: String

        public init(index: Int, name: String, kind: Kind, ops: [String], scopes: [String], stage: String, flops: String, bytes: String) {
            self.index = index; self.name = name; self.kind = kind; self.ops = ops
            self.scopes = scopes; self.stage = stage; self.flops = flops; self.bytes = bytes
        }
    }

    /// The memory plan.
    public struct Arena: Codable, Sendable, Equatable {
        /// Slots after sharing by liveness.
        public var slots: Int
        /// The arena's size in floats, as a C expression over the sizes.
        public var plannedFloats: String
        /// What the intermediates would take unshared.
        public var intermediatesFloats: String

        public init(slots: Int, plannedFloats: String, intermediatesFloats: String) {
            self.slots = slots; self.plannedFloats = plannedFloats; self.intermediatesFloats = intermediatesFloats
        }

        enum CodingKeys: String, CodingKey {
            case slots
            case plannedFloats = "planned_floats"
            case intermediatesFloats = "intermediates_floats"
        }
    }

    /// `family.program` (`llama.decode`).
    public var name: String
    /// The C prefix of its functions (`llama_decode`).
    public var symbol: String
    public var fields: [Field]
    /// The size symbols it binds, in slot order.
    public var sizes: [String]
    public var kernels: [Kernel]
    public var arena: Arena

    public init(name: String, symbol: String, fields: [Field], sizes: [String], kernels: [Kernel], arena: Arena) {
        self.name = name; self.symbol = symbol; self.fields = fields; self.sizes = sizes; self.kernels = kernels; self.arena = arena
    }

    /// The family a program belongs to (the C file it is emitted into): `llama` for `llama.decode`.
    public var family: String { String(name.prefix { $0 != "." }) }

    /// Whether it has bf16 products (`bf16_gemm` kernels), which need AVX-512 BF16.
    public var needsBF16: Bool { kernels.contains { $0.kind == .bf16Gemm } }
}

/// The manifest file: every compiled program.
public struct ManifestFile: Codable, Sendable, Equatable {
    public var programs: [ProgramManifest]

    public init(programs: [ProgramManifest]) { self.programs = programs }

    /// The JSON text the compiler writes: sorted keys, indented (unless `pretty` is false),
    /// one trailing newline.
    public func json(pretty: Bool = true) throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try e.encode(self), as: UTF8.self) + "\n"
    }

    /// Reads the text `json()` wrote.
    public static func parse(_ text: String) throws -> ManifestFile {
        try JSONDecoder().decode(ManifestFile.self, from: Data(text.utf8))
    }
}
