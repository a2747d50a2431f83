import Foundation
import Testing
@testable import Alignment

/// Hugging Face chat templates recognized from their Jinja source and rendered natively, checked
/// against transformers' `apply_chat_template` (Fixtures/chat_templates, written by
/// make_chat_templates.py with transformers), and used for SFT and DPO rows.
@Suite struct ChatTemplateTests {
    struct Case: Decodable { var template: String; var messages: [[String: String]]; var add_generation_prompt: Bool; var text: String }
    struct Fixture: Decodable { var transformers: String; var templates: [String: String]; var cases: [Case] }

    static func fixture() throws -> Fixture {
        let url = SharedFixtures.projectRoot.appendingPathComponent("Tests/LlamaAlignTests/Fixtures/chat_templates/chat_templates.json")
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    @Test func renderingEqualsTransformers() throws {
        let f = try Self.fixture()
        #expect(f.cases.count == 24)
        for c in f.cases {
            let t = try #require(HFChatTemplate(rawValue: c.template))
            let messages = c.messages.map { (role: $0["role"] ?? "", content: $0["content"] ?? "") }
            #expect(try t.render(messages, addGenerationPrompt: c.add_generation_prompt) == c.text, "\(c.template) \(c.messages)")
        }
        for (name, source) in f.templates { #expect(HFChatTemplate.recognize(source)?.rawValue == name) }
    }

    @Test func tokenizerConfigGivesTheTemplateOrANamedError() throws {
        let f = try Self.fixture()
        let dir = SharedFixtures.tempDir("tokcfg")
        let cfg = dir.appendingPathComponent("tokenizer_config.json")
        try JSONSerialization.data(withJSONObject: ["chat_template": f.templates["zephyr"] ?? ""]).write(to: cfg)
        #expect(try ChatTemplate.named(cfg.path) == .hf(.zephyr))
        #expect(try ChatTemplate.named(dir.path) == .hf(.zephyr))
        #expect(try ChatTemplate.named("llama3") == .hf(.llama3))
        try JSONSerialization.data(withJSONObject: ["chat_template": "{{ messages[0]['content'] }}"]).write(to: cfg)
        #expect { try ChatTemplate.named(cfg.path) } throws: { "\($0)".contains(cfg.path) && "\($0)".contains("chat_template") && "\($0)".contains("not one of") }
    }

    /// SFT: the rendered conversation's ids, labels on each assistant answer (its end token
    /// included), nothing else; BOS/EOS text becomes the tokenizer's ids.
    @Test func sftAndDPORowsThroughATemplate() throws {
        let tok = ByteTokenizer()
        let row = #"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}"#
        let (rows, _) = try SFTDataset.load(data: Data(row.utf8), file: "s.jsonl", tokenizer: tok, maxSeqLen: 512, maxPromptLen: 256, template: .hf(.llama2))
        let prompt = [tok.bosId] + tok.encode("[INST] <<SYS>>\nS\n<</SYS>>\n\nHi [/INST]"), answer = tok.encode(" Yo ") + [tok.eosId]
        #expect(rows == [TokenizedExample(inputIds: prompt + answer, labels: Array(repeating: TokenizedExample.ignore, count: prompt.count) + answer)])
        let (chatml, _) = try SFTDataset.load(data: Data(#"{"src": "Hi", "tgt": "Yo"}"#.utf8), file: "s.jsonl", tokenizer: tok, maxSeqLen: 512,
                                              maxPromptLen: 256, template: .hf(.chatml))
        let text = "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        #expect(chatml.first?.inputIds == tok.encode(text) + tok.encode("Yo<|im_end|>\n"))
        let pair = #"{"prompt": "Hi", "chosen": "Yo", "rejected": "No"}"#
        let p = try #require(try PreferenceDataset.load(data: Data(pair.utf8), file: "p.jsonl", tokenizer: tok, maxSeqLen: 512, maxPromptLen: 256,
                                                        template: .hf(.zephyr)).0.first)
        #expect(p.prompt == tok.encode("<|user|>\nHi") + [tok.eosId] + tok.encode("\n<|assistant|>\n"))
        #expect(p.chosen == tok.encode("Yo") + [tok.eosId] + tok.encode("\n"))
        // LLaMA-2's template needs alternating roles: the error names the file, line and field.
        let bad = #"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, {"role": "assistant", "content": "c"}]}"#
        #expect { try SFTDataset.load(data: Data(bad.utf8), file: "s.jsonl", tokenizer: tok, maxSeqLen: 512, maxPromptLen: 256, template: .hf(.llama2)) } throws: {
            "\($0)".contains("s.jsonl:1") && "\($0)".contains("messages") && "\($0)".contains("alternate")
        }
    }

    /// Without `chat_template`, a run renders with the tokenizer's own template (tokenizer_config.json).
    @Test func aRunUsesTheTokenizersTemplate() throws {
        let f = try Self.fixture()
        let dir = SharedFixtures.tempDir("tok-template")
        for name in ["config.json", "tokenizer.byte"] {
            try FileManager.default.copyItem(atPath: Demo.root + "/examples/tiny-model/" + name, toPath: dir.appendingPathComponent(name).path)
        }
        try JSONSerialization.data(withJSONObject: ["chat_template": f.templates["chatml"] ?? ""]).write(to: dir.appendingPathComponent("tokenizer_config.json"))
        let run = TrainingRun(args: try Demo.args(.sft, model: dir.path), task: .sft)
        let (tok, _) = try run.tokenizer()
        let data = Demo.root + "/examples/data/sft_dev.jsonl"
        let viaRun = try run.read(data, tok).0
        let direct = try SFTDataset.load(path: data, tokenizer: tok, maxSeqLen: 96, maxPromptLen: 48, template: .hf(.chatml)).0
        #expect(viaRun == direct && !viaRun.isEmpty)
        #expect(try run.runTemplate().note?.contains("tokenizer_config.json") == true)
    }
}
