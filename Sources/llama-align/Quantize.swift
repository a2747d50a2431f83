import Alignment
import ArgumentParser
import Foundation

/// `llama-align quantize`: weight-only int8/int4 with group-wise absmax scales.
struct Quantize: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Quantize a model's projections (q8_0 or q4_0, group-wise scales) into a safetensors directory.")

    @Option(help: "A llama2.c .bin checkpoint or a Hugging Face LLaMA directory (f32/f16/bf16).") var model: String
    @Option(help: "q8_0 | q4_0 (PaddleNLP: weight_only_int8 | weight_only_int4).") var type: String
    @OptionGroup var group: QuantGroupOption
    @Option(help: "Output directory.") var out: String

    func validate() throws {
        guard let t = QuantType(name: type) else { throw ValidationError("--type \(type): expected \(QuantType.acceptedNames)") }
        try group.validate(type: t)
    }

    func run() throws {
        guard let t = QuantType(name: type) else { return }
        let q = try quantizeCheckpoint(model: model, type: t, groupSize: group.groupSize, out: out, head: group.head(for: t))
        print(String(format: "%@: %@, group %d, %.1f MB of quantized matrices (lm_head %@), written to %@",
                     model, t.rawValue, q.groupSize, Double(q.matrixBytes) / 1e6, q.headType.rawValue, out))
    }
}

/// `--group-size 32|64|128` and `--lm-head q8_0|q4_0`.
struct QuantGroupOption: ParsableArguments {
    @Option(name: .customLong("group-size"), help: "Values per scale along a row: 32 (default), 64 or 128.") var groupSizeOption: Int?

    /// Values per scale: `--group-size`, 32 when not given.
    var groupSize: Int { groupSizeOption ?? 32 }
    @Option(name: .customLong("lm-head"), help: "The output matrix's type: q8_0 (default) | q4_0 (only with q4_0 layers).") var lmHead: String?

    func validate() throws {
        guard [32, 64, 128].contains(groupSize) else { throw ValidationError("--group-size must be 32, 64 or 128, got \(groupSize)") }
        if let lmHead, QuantType(name: lmHead) == nil { throw ValidationError("--lm-head \(lmHead): expected q8_0 or q4_0") }
    }

    /// `validate()`, and a 4-bit output matrix only beside 4-bit layers.
    func validate(type: QuantType?) throws {
        try validate()
        if type == nil, let g = groupSizeOption {
            throw ValidationError("--group-size \(g) needs --quant (a quantized checkpoint or GGUF file keeps its own group size)")
        }
        if let lmHead, let h = QuantType(name: lmHead) {
            guard let type else { throw ValidationError("--lm-head \(lmHead) needs --quant") }
            if h == .q4_0 && type != .q4_0 { throw ValidationError("--lm-head q4_0 needs q4_0 layers (the type is \(type.rawValue))") }
        }
    }

    /// The output matrix's type for layers of type `t`.
    func head(for t: QuantType) -> QuantType { lmHead.flatMap(QuantType.init(name:)) ?? t.defaultHead }
}

/// `--quant TYPE [--group-size G]` for commands that run a model.
struct QuantOptions: ParsableArguments {
    @Option(help: "Quantize the model on load: q8_0 | q4_0 (weight_only_int8 | weight_only_int4).") var quant: String?
    @OptionGroup var group: QuantGroupOption

    /// The output matrix's type, when quantizing on load.
    var head: QuantType? { quant.flatMap(QuantType.init(name:)).map(group.head(for:)) }

    func validate() throws {
        if let quant, QuantType(name: quant) == nil { throw ValidationError("--quant \(quant): expected \(QuantType.acceptedNames)") }
        try group.validate(type: quant.flatMap(QuantType.init(name:)))
    }
}
