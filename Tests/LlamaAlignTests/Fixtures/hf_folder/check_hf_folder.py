"""One-time check (not run by the tests): a folder llama-align saved loads in transformers 5
with the same token ids, greedy ids and logits as llama-align gives.

    python check_hf_folder.py LLAMA_ALIGN_BINARY FOLDER "prompt text" ...

For each prompt: AutoTokenizer ids (BOS added) == `llama-align tokenize` (with BOS); greedy
continuation of AutoModelForCausalLM.generate == `llama-align generate --temperature 0 --print-ids`;
the LM loss of [BOS] + ids + [EOS] (every position) from transformers' logits against `llama-align eval --json`.
"""
import json, subprocess, sys, tempfile
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

binary, folder, prompts = sys.argv[1], sys.argv[2], sys.argv[3:]
tok = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
gen = GenerationConfig.from_pretrained(folder)
print("tokenizer", type(tok).__name__, "bos", tok.bos_token_id, "eos", tok.eos_token_id, "pad", tok.pad_token_id,
      "| config bos/eos/pad", model.config.bos_token_id, model.config.eos_token_id, model.config.pad_token_id,
      "| generation", gen.do_sample, gen.temperature, gen.top_p, gen.top_k)
ok = True
for p in prompts:
    hf_ids = tok(p).input_ids
    ours = subprocess.run([binary, "tokenize", "--tokenizer", folder, "--ids-only", p], capture_output=True, text=True, check=True).stdout.split()
    ours = [tok.bos_token_id] + [int(x) for x in ours]
    same_ids = hf_ids == ours
    n = 12
    out = model.generate(torch.tensor([hf_ids]), max_new_tokens=n, do_sample=False, eos_token_id=None, pad_token_id=tok.pad_token_id)
    hf_new = out[0, len(hf_ids):].tolist()
    g = subprocess.run([binary, "generate", "--model", folder, "--prompt-ids", " ".join(map(str, hf_ids)), "--temperature", "0",
                        "--max-new-tokens", str(n), "--print-ids"], capture_output=True, text=True, check=True).stdout.split()
    our_new = [int(x) for x in g]
    # llama-align stops at EOS; compare up to its length.
    same_gen = hf_new[:len(our_new)] == our_new
    decoded = tok.decode(hf_ids, skip_special_tokens=True)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(json.dumps({"text": p}) + "\n")
    ev = json.loads(subprocess.run([binary, "eval", "--model", folder, "--data", f.name, "--json"], capture_output=True, text=True, check=True).stdout)
    full = torch.tensor([hf_ids + [tok.eos_token_id]])
    with torch.no_grad():
        hf_loss = model(full, labels=full).loss.item()
    rel = abs(hf_loss - ev["loss"]) / abs(hf_loss)
    print(f"{p!r}: ids equal {same_ids} ({len(hf_ids)}), decode round trip {decoded == p}, greedy equal {same_gen} {our_new[:6]}..., "
          f"loss {hf_loss:.6f} vs {ev['loss']:.6f} (rel {rel:.1e})")
    ok &= same_ids and same_gen and rel < 1e-5
print("ALL OK" if ok else "MISMATCH")
