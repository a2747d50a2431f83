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
        guard QuantType(name: type) != nil else { throw ValidationError("--type \(type): expected \(QuantType.acceptedNames)") }
        try group.validate()
    }

    func run() throws {
        guard let t = QuantType(name: type) else { return }
        let q = try quantizeCheckpoint(model: model, type: t, groupSize: group.groupSize, out: out)
        print(String(format: "%@: %@, group %d, %.1f MB of quantized matrices (lm_head q8_0), written to %@",
                     model, t.rawValue, q.groupSize, Double(q.matrixBytes) / 1e6, out))
    }
}

/// `--group-size 32|64|128`.
struct QuantGroupOption: ParsableArguments {
    @Option(name: .customLong("group-size"), help: "Values per scale along a row: 32, 64 or 128.") var groupSize = 32

    func validate() throws {
        guard [32, 64, 128].contains(groupSize) else { throw ValidationError("--group-size must be 32, 64 or 128, got \(groupSize)") }
    }
}

/// `--quant TYPE [--group-size G]` for commands that run a model.
struct QuantOptions: ParsableArguments {
    @Option(help: "Quantize the model on load: q8_0 | q4_0 (weight_only_int8 | weight_only_int4).") var quant: String?
    @OptionGroup var group: QuantGroupOption

    func validate() throws {
        if let quant, QuantType(name: quant) == nil { throw ValidationError("--quant \(quant): expected \(QuantType.acceptedNames)") }
        try group.validate()
    }
}
