import Alignment
import ArgumentParser

/// `llama-align plot`: training curves of a run as SVG and HTML.
struct Plot: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Plot a run's metrics.jsonl: loss, learning rate, gradient norm and DPO rewards/margins/accuracy against step (train and eval).",
        discussion: "Writes OUTPUT_DIR/curves.svg and OUTPUT_DIR/curves.html.")

    @Argument(help: "A run's output_dir (holding metrics.jsonl).") var outputDir: String

    func run() throws {
        let (svg, html) = try CurvePlot.write(outputDir: outputDir)
        print("wrote \(svg) and \(html)")
    }
}
