/// The tensor types of ggml (`enum ggml_type`) a GGUF file may name. LlamaAlign reads
/// `f32`, `f16`, `bf16`, `q8_0` and `q4_0` and writes all of them but `bf16`; the other
/// numbers are known only to name them in errors.
public struct GGMLType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let f32 = GGMLType(rawValue: 0)
    public static let f16 = GGMLType(rawValue: 1)
    /// Blocks of 32: fp16 scale `d`, then 16 bytes of 4-bit values (low nibbles = elements
    /// 0…15, high nibbles = 16…31), each value `q − 8`: `x = d·(q − 8)`. 18 bytes a block.
    public static let q4_0 = GGMLType(rawValue: 2)
    /// Blocks of 32: fp16 scale `d`, then 32 int8 values: `x = d·q`. 34 bytes a block.
    public static let q8_0 = GGMLType(rawValue: 8)
    public static let bf16 = GGMLType(rawValue: 30)

    /// The types this reader decodes.
    public static let readable: [GGMLType] = [.f32, .f16, .bf16, .q8_0, .q4_0]

    /// Elements per block (1 for the float types, 32 for Q8_0 and Q4_0).
    public var blockSize: Int { self == .q8_0 || self == .q4_0 ? 32 : 1 }

    /// Bytes per block of a readable type, nil for any other.
    public var blockBytes: Int? {
        switch self {
        case .f32: 4
        case .f16, .bf16: 2
        case .q8_0: 34
        case .q4_0: 18
        default: nil
        }
    }

    /// ggml's name of the type (`Q4_K`, `IQ2_XS`, …), or `type N` for a number ggml does not use.
    public var description: String {
        let names: [UInt32: String] = [
            0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 6: "Q5_0", 7: "Q5_1", 8: "Q8_0", 9: "Q8_1", 10: "Q2_K",
            11: "Q3_K", 12: "Q4_K", 13: "Q5_K", 14: "Q6_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
            19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16", 26: "I32",
            27: "I64", 28: "F64", 29: "IQ1_M", 30: "BF16", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
        ]
        return names[rawValue] ?? "type \(rawValue)"
    }

    /// Bytes of a tensor of this type with `elements` elements (a whole number of blocks), or
    /// nil when the type is not readable, the count is not a multiple of the block, or on overflow.
    func byteCount(elements: Int) -> Int? {
        guard let bytes = blockBytes, elements >= 0, elements % blockSize == 0 else { return nil }
        let (n, overflow) = (elements / blockSize).multipliedReportingOverflow(by: bytes)
        return overflow ? nil : n
    }
}
