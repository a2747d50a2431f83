"""Outside check of `llama-align export --gguf` against llama.cpp (not a test, not a dependency).

For each GGUF file: llama.cpp (through llama-cpp-python, greedy, one token per call, KV cache in
F32 for the ids) decodes N tokens from BOS; the ids are compared with `llama-align generate` on
the same file. With --bench, also decode speed at --threads threads: llama.cpp (default context
settings, F16 KV cache as users get it) beside `llama-align bench generate` on the same file,
run alternately in this one process so both see the same machine load.

    pip install llama-cpp-python   # builds llama.cpp from source
    python scripts/llama_cpp_compare.py --llama-align .build/release/llama-align FILE.gguf ... [--tokens 64] [--bench]
"""
import argparse
import json
import os
import subprocess
import time

import numpy as np
import llama_cpp
from llama_cpp import Llama


def load(path, threads, f32_kv):
    kw = dict(model_path=path, n_ctx=0, n_threads=threads, n_threads_batch=threads, n_batch=512, verbose=False, logits_all=False)
    if f32_kv:
        kw.update(type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    return Llama(**kw)


def greedy(llm, n, bos=1):
    """Greedy ids after BOS, one token per llama_decode call; returns (ids, seconds)."""
    llm.reset()
    ids = []
    vocab = llm.n_vocab()
    t0 = time.perf_counter()
    tok = bos
    for _ in range(n):
        llm.eval([tok])  # one llama_decode; the last token's logits stay in the context
        tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))))
        ids.append(tok)
    return ids, time.perf_counter() - t0


def ours_ids(exe, path, n):
    out = subprocess.run([exe, "generate", "--model", path, "--prompt-ids", "1", "--max-new-tokens", str(n), "--temperature", "0",
                          "--print-ids"], check=True, capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def ours_bench(exe, model, threads, tokens, runs):
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    out = subprocess.run([exe, "bench", "generate", "--model", model, "--threads", str(threads), "--tokens", str(tokens),
                          "--runs", str(runs), "--json"], check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out)["decode_tokens_per_second"]["median"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="+")
    ap.add_argument("--llama-align", default=".build/release/llama-align")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bench", action="store_true", help="also measure decode tok/s (256 tokens, median of --runs)")
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    print(f"llama-cpp-python {llama_cpp.__version__}, threads {a.threads}")
    for path in a.files:
        llm = load(path, a.threads, f32_kv=True)
        theirs, _ = greedy(llm, a.tokens)
        del llm
        ours = ours_ids(a.llama_align, path, a.tokens)
        # llama-align stops at the vocabulary's EOS when the file has a tokenizer; llama.cpp's eval does not.
        n = len(ours)
        same = next((i for i, (x, y) in enumerate(zip(ours, theirs)) if x != y), n)
        stop = "" if n == a.tokens else f" (llama-align stopped at EOS after {n})"
        print(f"{os.path.basename(path)}: greedy ids equal for {same} of {n} tokens{stop}"
              + ("" if same == n else f"\n  llama.cpp: {theirs}\n  ours:      {ours}"))
        if not a.bench:
            continue
        llm = load(path, a.threads, f32_kv=False)
        greedy(llm, 16)  # warm-up
        rates, mine = [], []
        for _ in range(a.runs):
            _, dt = greedy(llm, 256)
            rates.append(256 / dt)
            mine.append(ours_bench(a.llama_align, path, a.threads, 256, 1))
        del llm
        print(f"  decode tok/s at {a.threads} threads, 256 tokens, median of {a.runs}: llama.cpp {np.median(rates):.1f} "
              f"[{min(rates):.1f}–{max(rates):.1f}], llama-align {np.median(mine):.1f} [{min(mine):.1f}–{max(mine):.1f}]"
              f" (llama-align runs an all-Q8_0 or all-Q4_0 file on its quantized kernels, other files in fp32)")


if __name__ == "__main__":
    main()
