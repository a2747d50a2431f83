import LlamaGraphs

/// Weight-only quantization types: groups of `G` values along a row share one symmetric absmax
/// scale (no zero point), computed exactly as ggml's `Q8_0` / `Q4_0` (with G = 32 these are
/// GGUF's blocks).
public enum QuantType: String, CaseIterable, Sendable, Codable {
    /// int8 values −127…127 (`q = round(x / d)`, `d = max|x| / 127`).
    case q8_0
    /// 4-bit values −8…7 (`d = m / −8` for `m` the value of largest magnitude, sign kept).
    case q4_0

    /// The type named `name`: `q8_0`, `q4_0`, or PaddleNLP's `weight_only_int8` / `weight_only_int4`
    /// (also `wint8` / `wint4`, `int8` / `int4`).
    public init?(name: String) {
        switch name.lowercased() {
        case "q8_0", "q8", "weight_only_int8", "wint8", "int8": self = .q8_0
        case "q4_0", "q4", "weight_only_int4", "wint4", "int4": self = .q4_0
        default: return nil
        }
    }

    /// Names accepted by `init(name:)`, for help and errors.
    public static let acceptedNames = "q8_0, q4_0 (or weight_only_int8, weight_only_int4)"

    /// The output matrix's type when none is asked for: `q8_0` for both (see the README's
    /// "Quantization": the 4-bit output matrix is `--lm-head q4_0`).
    public var defaultHead: QuantType { .q8_0 }

    /// The graphs' weight type.
    var graph: WeightQuant { self == .q8_0 ? .q8_0 : .q4_0 }
    /// Bits per stored value.
    public var bits: Int { self == .q8_0 ? 8 : 4 }
    /// The smallest and largest quantized value.
    public var range: ClosedRange<Int> { self == .q8_0 ? -128...127 : -8...7 }
}
