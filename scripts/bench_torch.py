#!/usr/bin/env python3
"""PyTorch CPU baseline: Llama pretraining step and DPO step timings.

Usage:
  python bench_torch.py --mode train --config small [--attn eager|sdpa] [--threads 2] [--steps 10]
  python bench_torch.py --mode dpo   --config medium ...
  ... --autocast bf16   (forward and loss under torch.autocast("cpu", dtype=torch.bfloat16))

The PyTorch baseline of the README's speed tables (run in a scratch venv; never a dependency).
"""
import argparse
import contextlib
import copy
import json
import statistics
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

CONFIGS = {
    "small": dict(hidden_size=288, intermediate_size=768, num_hidden_layers=6,
                  num_attention_heads=6, num_key_value_heads=6, vocab_size=32000),
    "medium": dict(hidden_size=512, intermediate_size=1376, num_hidden_layers=8,
                   num_attention_heads=8, num_key_value_heads=8, vocab_size=32000),
}


def build_model(name, attn):
    cfg = LlamaConfig(
        **CONFIGS[name],
        max_position_embeddings=1024,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        use_cache=False,
        attn_implementation=attn,
    )
    model = LlamaForCausalLM(cfg).to(torch.float32)
    got = getattr(model.config, "_attn_implementation", None)
    assert got == attn, f"attention implementation is {got!r}, wanted {attn!r}"
    assert model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr(), "embeddings tied"
    return model


def blas_summary():
    lines = torch.__config__.show().splitlines()
    first = lines[0].strip() if lines else ""
    # First line is just "PyTorch built with:"; add the BLAS/MKL line and BLAS_INFO so it is useful.
    blas_line = next((l.strip(" -") for l in lines if "Math Kernel Library" in l or "OpenBLAS" in l), "")
    info = ""
    for l in lines:
        if "BLAS_INFO=" in l:
            info = l.split("BLAS_INFO=")[1].split(",")[0]
    cap = next((l.strip(" -") for l in lines if "CPU capability" in l), "")
    return f"{first} BLAS_INFO={info}; {blas_line}; {cap}; mkldnn={torch.backends.mkldnn.is_available()}"


def response_logps(logits, ids, prompt_len):
    # logits[:, t] predicts ids[:, t+1]; response tokens are ids[:, prompt_len:]
    lg = logits[:, prompt_len - 1:-1, :].float()
    tgt = ids[:, prompt_len:]
    logp = torch.log_softmax(lg, dim=-1).gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    return logp.sum(dim=-1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["train", "dpo"], required=True)
    p.add_argument("--config", choices=list(CONFIGS), required=True)
    p.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-4)
    # train shape
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    # dpo shape
    p.add_argument("--pairs", type=int, default=4)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--resp-len", type=int, default=128)
    p.add_argument("--beta", type=float, default=0.1)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none")
    a = p.parse_args()

    def autocast():
        if a.autocast == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    V = CONFIGS[a.config]["vocab_size"]

    model = build_model(a.config, a.attn)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    gen = torch.Generator().manual_seed(a.seed + 1)

    if a.mode == "train":
        ids = torch.randint(0, V, (a.batch, a.seq), generator=gen)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr)

        def step():
            with autocast():
                out = model(input_ids=ids, labels=ids)
            out.loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return out.loss.item()

        work = a.batch * a.seq
    else:
        ref = copy.deepcopy(model)
        ref.eval()
        ref.requires_grad_(False)
        P, R = a.pairs, a.resp_len
        prompt = torch.randint(0, V, (P, a.prompt_len), generator=gen)
        chosen = torch.randint(0, V, (P, R), generator=gen)
        rejected = torch.randint(0, V, (P, R), generator=gen)
        # chosen rows then rejected rows; each pair shares its prompt
        ids = torch.cat([torch.cat([prompt, chosen], 1), torch.cat([prompt, rejected], 1)], 0)
        opt = torch.optim.AdamW(model.parameters(), lr=a.lr)

        def step():
            with torch.no_grad(), autocast():
                ref_lp = response_logps(ref(input_ids=ids).logits, ids, a.prompt_len)
            with autocast():
                pol_lp = response_logps(model(input_ids=ids).logits, ids, a.prompt_len)
            pc, pr = pol_lp[:P], pol_lp[P:]
            rc, rr = ref_lp[:P], ref_lp[P:]
            loss = -F.logsigmoid(a.beta * ((pc - pr) - (rc - rr))).mean()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            return loss.item()

        work = P

    print(f"mode={a.mode} config={a.config} attn={a.attn} autocast={a.autocast} threads={torch.get_num_threads()} "
          f"params={n_params/1e6:.2f}M input={tuple(ids.shape)} torch={torch.__version__} "
          f"transformers={transformers.__version__}", flush=True)

    for i in range(a.warmup):
        t0 = time.perf_counter()
        loss = step()
        print(f"warmup {i}: {(time.perf_counter()-t0)*1e3:.1f} ms loss={loss:.4f}", flush=True)

    times = []
    for i in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        dt = time.perf_counter() - t0
        times.append(dt)
        print(f"step {i}: {dt*1e3:.1f} ms loss={loss:.4f}", flush=True)

    med = statistics.median(times)
    rate = work / med
    unit = "tokens/s" if a.mode == "train" else "pairs/s"
    print(f"median {med*1e3:.1f} ms  min {min(times)*1e3:.1f} ms  max {max(times)*1e3:.1f} ms  "
          f"median {rate:.2f} {unit}")
    rec = {
        "mode": a.mode,
        "config": a.config,
        "attn": a.attn,
        "autocast": a.autocast,
        "threads": torch.get_num_threads(),
        "steps": a.steps,
        "median_ms": round(med * 1e3, 3),
        "min_ms": round(min(times) * 1e3, 3),
        "max_ms": round(max(times) * 1e3, 3),
        ("tokens_per_second" if a.mode == "train" else "pairs_per_second"): round(rate, 3),
        "params": n_params,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "blas": blas_summary(),
    }
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
