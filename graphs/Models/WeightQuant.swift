import TensorGraph

/// Weight-only quantization of the projections: group-wise symmetric absmax scales, no zero
/// point (`value = q · scale` of its group of `G` values along a row). Norm weights and the
/// embedding table stay f32; the output projection (`lm_head`) is always `q8_0`.
///
/// A quantized weight `w` `[out, in]` is two parameters: `w` (dtype `q8` or `q4`, `[out, in]`
/// values) and `w_scales` (f32, `[out, in / G]`). The group counts per row are sizes of their
/// own — `GD` for rows of length `D`, `GF` for rows of length `F` — so one compiled program
/// serves every group size.
public enum WeightQuant: String, CaseIterable, Sendable {
    case q8_0, q4_0

    /// The stored value type.
    public var dtype: DType { self == .q8_0 ? .q8 : .q4 }
    /// The suffix of the programs that read weights of this type (`decode_q8`).
    public var programSuffix: String { self == .q8_0 ? "q8" : "q4" }
    /// Groups per row of length `D`.
    public static let groupsPerDim = Dim.sym("GD")
    /// Groups per row of length `F`.
    public static let groupsPerHidden = Dim.sym("GF")
    /// The scales' name of a quantized weight.
    public static func scalesName(_ weight: String) -> String { "\(weight)_scales" }

    /// The group-count size of rows of length `n` (`D` or `F`).
    static func groups(_ n: Dim) -> Dim { n == LlamaDims.hidden ? groupsPerHidden : groupsPerDim }
}
