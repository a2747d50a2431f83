"""Writes the GGUF fixtures of GGUFTests (Fixtures/gguf/), made once with outside code:

- quant_blocks.json: float32 rows and the Q8_0 / Q4_0 blocks the `gguf` package (0.19.0;
  `gguf.quants.quantize`, bit-exact with ggml's reference quantizer) makes of them.
- tiny_mixed.gguf: a tiny LLaMA (GQA, untied) written by the `gguf` package's own GGUFWriter with
  tensors in F32, F16, BF16, Q8_0 and Q4_0 (blocks by `gguf.quants`), q/k rows permuted as
  llama.cpp's convert_hf_to_gguf.py does, and a small SentencePiece BPE vocabulary with byte
  fallback; tiny_golden.json: transformers' float64 logits of that model (its weights the
  dequantized tensors, q/k permuted back) and SentencePiece's own ids for a few strings.

Run with torch, transformers, sentencepiece and gguf installed:
    python Tests/LlamaAlignTests/Fixtures/make_gguf_fixtures.py
"""
import json
import os

import numpy as np
import torch
import gguf
from gguf import GGMLQuantizationType as Q
from gguf.quants import quantize, dequantize
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf")
os.makedirs(HERE, exist_ok=True)
rng = np.random.default_rng(10)


def quant_cases():
    """Rows of float32 (multiples of 32) covering ggml's rounding and tie rules."""
    rows = [
        (rng.standard_normal(96) * 0.02).astype(np.float32),          # typical weights, 3 blocks
        (rng.standard_normal(64) * 3).astype(np.float32),
        np.zeros(32, np.float32),                                      # d = 0: id = 0, all q = 0 (Q4_0: 8)
        np.array([-3.0, 3.0] + [0.5] * 30, np.float32),                # tie in |x|: Q4_0 takes the first (−3)
        np.array([3.0, -3.0] + [-1.25] * 30, np.float32),
        np.array([127.0, 2.5, -2.5, 0.5, -0.5, 1.5, -1.5] + list(np.arange(25) - 12.5), np.float32),  # roundf halves
        np.array([-8.0, 7.0, -0.5, 6.5, 7.5, -7.5, 0.0] + list(np.linspace(-8, 8, 25)), np.float32),  # Q4_0 edges
        (rng.standard_normal(32) * 1e-30).astype(np.float32),          # scale underflows fp16
        (rng.standard_normal(32) * 1e5).astype(np.float32),            # Q8_0 d ≈ 2e3
        np.array([1e7] + [1.0] * 31, np.float32),                       # d overflows fp16 (inf)
        (rng.uniform(-1, 1, 32) * np.float32(0.1)).astype(np.float32),
    ]
    out = {"q8_0": [], "q4_0": []}
    for x in rows:
        for name, qt in (("q8_0", Q.Q8_0), ("q4_0", Q.Q4_0)):
            b = quantize(x.reshape(1, -1), qt)
            out[name].append({"x": [float(v) for v in x], "blocks": bytes(b.reshape(-1)).hex()})
    with open(os.path.join(HERE, "quant_blocks.json"), "w") as f:
        json.dump({"gguf_version": gguf.__version__ if hasattr(gguf, "__version__") else "0.19.0", **out}, f)


def vocabulary():
    """<unk>, <s>, </s>, 256 byte pieces, then characters and merges with falling scores."""
    pieces = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
    pieces += [(f"<0x{b:02X}>", 0.0, 6) for b in range(256)]
    merges = ["▁t", "he", "▁the", "▁a", "at", "▁c", "▁cat", "ab", "▁ab", "c", "▁s", "at", "▁sat", "▁", "a", "b", "t",
              "h", "e", "s", "o", "n", "▁on"]
    seen = set()
    for i, m in enumerate(merges):
        if m in seen:
            continue
        seen.add(m)
        pieces.append((m, -float(i), 1))
    return pieces


def sentencepiece_ids(pieces, texts):
    m = sp_pb2.ModelProto()
    for p, s, t in pieces:
        sp = m.pieces.add()
        sp.piece, sp.score, sp.type = p, s, t
    m.trainer_spec.model_type = sp_pb2.TrainerSpec.BPE
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = True
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    return [sp.encode(t) for t in texts]


def permute(w, n_head):
    """llama.cpp's convert_hf_to_gguf.py LlamaModel.permute: rotate-half rows → interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def unpermute(w, n_head):
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tiny_model():
    pieces = vocabulary()
    vocab = len(pieces)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                      vocab_size=vocab, max_position_embeddings=32, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=False, attention_bias=False, mlp_bias=False)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).double().eval()
    sd = {k: v for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    for k, v in sd.items():
        noise = torch.randn(v.shape, generator=g, dtype=torch.float64)
        sd[k] = (1 + 0.1 * noise) if k.endswith("norm.weight") else 0.15 * noise
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                 "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
                 "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for l in range(cfg.num_hidden_layers):
        for hf, gg in per_layer.items():
            names[f"model.layers.{l}.{hf}.weight"] = f"blk.{l}.{gg}.weight"
    types = {"token_embd.weight": Q.Q8_0, "output.weight": Q.BF16,
             "blk.0.attn_q.weight": Q.Q4_0, "blk.0.attn_k.weight": Q.Q8_0, "blk.0.attn_v.weight": Q.F16, "blk.0.attn_output.weight": Q.F32,
             "blk.0.ffn_gate.weight": Q.Q8_0, "blk.0.ffn_up.weight": Q.Q4_0, "blk.0.ffn_down.weight": Q.F16,
             "blk.1.attn_q.weight": Q.F16, "blk.1.attn_k.weight": Q.Q4_0, "blk.1.attn_v.weight": Q.Q8_0, "blk.1.attn_output.weight": Q.Q4_0,
             "blk.1.ffn_gate.weight": Q.F32, "blk.1.ffn_up.weight": Q.Q8_0, "blk.1.ffn_down.weight": Q.Q4_0}

    path = os.path.join(HERE, "tiny_mixed.gguf")
    w = gguf.GGUFWriter(path, "llama")
    w.add_name("tiny-mixed")
    w.add_context_length(32)
    w.add_embedding_length(32)
    w.add_block_count(2)
    w.add_feed_forward_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_rope_dimension_count(8)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_tokenizer_model("llama")
    w.add_token_list([p for p, _, _ in pieces])
    w.add_token_scores([s for _, s, _ in pieces])
    w.add_token_types([t for _, _, t in pieces])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    dequantized = {}
    for hf, gg in names.items():
        x = sd[hf].to(torch.float32).numpy()
        heads = 4 if "attn_q" in gg else 2 if "attn_k" in gg else None
        if heads:
            x = permute(x, heads)
        t = types.get(gg, Q.F32)
        if t == Q.F32:
            w.add_tensor(gg, x)
            back = x
        elif t == Q.F16:
            w.add_tensor(gg, x.astype(np.float16))
            back = x.astype(np.float16).astype(np.float32)
        else:
            data = quantize(x, t)
            w.add_tensor(gg, data, raw_dtype=t)
            back = dequantize(data, t).reshape(x.shape)
        if heads:
            back = unpermute(back, heads)
        dequantized[hf] = torch.tensor(back, dtype=torch.float64)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    model.load_state_dict(dequantized)
    ids = [[1, 260, 270, 275, 280, 3, 100, 265, 278, 1, 272, 261]]
    with torch.no_grad():
        logits = model(torch.tensor(ids)).logits[0]
    texts = ["the cat sat on the mat", "ab abc", "hello", "日本", " the  cat"]
    golden = {"ids": ids, "logits": [float(v) for v in logits.reshape(-1)], "vocab_size": vocab,
              "texts": texts, "text_ids": sentencepiece_ids(pieces, texts)}
    with open(os.path.join(HERE, "tiny_golden.json"), "w") as f:
        json.dump(golden, f)


if __name__ == "__main__":
    quant_cases()
    tiny_model()
