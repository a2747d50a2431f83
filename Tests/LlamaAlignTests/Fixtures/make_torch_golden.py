#!/usr/bin/env python3
"""Writes the PyTorch training golden that `TorchGoldenTests` checks LlamaAlign against
(like llm.c's test_gpt2.c: expected numbers made once, from outside the project's IR).

Run once, by hand, with a Python that has torch and transformers (not a run-time or CI
dependency; the output is committed):

    /root/venv-torch/bin/python Tests/LlamaAlignTests/Fixtures/make_torch_golden.py

It writes `Tests/LlamaAlignTests/Fixtures/torch_golden/`:

- `model/`          the tiny LLaMA (GQA, untied) saved by transformers' `save_pretrained`, float32;
- `lm_gradients/`   d(loss)/d(weights) of one language-model step, as a Hugging Face directory
                    (same config and tensor names, so the project's loader reads it and applies
                    the same q/k row permutation it applies to the weights);
- `lm_final/`       the weights after 3 AdamW steps;
- `dpo_gradients/`  the policy gradients of the first DPO step (tied-embedding variant: no lm_head);
- `golden.json`     the batches, the settings, and every scalar (losses, norms, rewards, log-probs).

Expected values are computed in float64 by a from-scratch LLaMA written below with Hugging
Face's conventions (rotate-half RoPE, repeat_kv GQA, RMSNorm, SwiGLU) from the float32 weights;
that model is first checked against transformers' own `LlamaForCausalLM` (logits, gradients and
per-pair DPO log-probs). transformers' RMSNorm and RoPE tables compute in float32 even in a
float64 model, which is why the expected numbers do not come from it directly.
The optimizer is `torch.optim.AdamW` with `torch.nn.utils.clip_grad_norm_`, in float64.
Tensors are stored as float32 (rounding error ~6e-8 relative); scalars keep float64 in JSON.
"""
import json
import math
import pathlib
import shutil

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM
from safetensors.torch import save_file

OUT = pathlib.Path(__file__).resolve().parent / "torch_golden"
F64 = torch.float64

CONFIG = dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=64, max_position_embeddings=64, rms_norm_eps=1e-5,
              rope_theta=5000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
D, F_HID, L, H, KVH, V = 32, 96, 2, 4, 2, 64
HD = D // H
EPS, THETA = 1e-5, 5000.0

# The project's optimizer conventions (Sources/Alignment/Training/Trainer.swift, PyTorch's AdamW):
# decoupled weight decay on every trainable parameter, global-norm clipping by
# max_norm / (norm + 1e-6) when the norm exceeds max_norm.
OPT = dict(lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1, max_grad_norm=1.0)
LM_STEPS = 3
DPO_BETA = 0.1


def initial_weights():
    """float32 weights with Hugging Face names, scaled so attention and logits are far from uniform."""
    g = torch.Generator().manual_seed(20260101)

    def randn(*shape, scale):
        return torch.randn(*shape, generator=g, dtype=torch.float32) * scale

    w = {"model.embed_tokens.weight": randn(V, D, scale=1.0)}
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + randn(D, scale=0.1)
        w[p + "self_attn.q_proj.weight"] = randn(D, D, scale=2 / math.sqrt(D))
        w[p + "self_attn.k_proj.weight"] = randn(KVH * HD, D, scale=2 / math.sqrt(D))
        w[p + "self_attn.v_proj.weight"] = randn(KVH * HD, D, scale=1 / math.sqrt(D))
        w[p + "self_attn.o_proj.weight"] = randn(D, D, scale=1 / math.sqrt(D))
        w[p + "post_attention_layernorm.weight"] = 1 + randn(D, scale=0.1)
        w[p + "mlp.gate_proj.weight"] = randn(F_HID, D, scale=1 / math.sqrt(D))
        w[p + "mlp.up_proj.weight"] = randn(F_HID, D, scale=1 / math.sqrt(D))
        w[p + "mlp.down_proj.weight"] = randn(D, F_HID, scale=1 / math.sqrt(F_HID))
    w["model.norm.weight"] = 1 + randn(D, scale=0.1)
    w["lm_head.weight"] = randn(V, D, scale=1 / math.sqrt(D))
    return w


# ---------------------------------------------------------------- float64 reference model

def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rotate_half(x):
    return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)


def logits_of(P, ids):
    """Logits [B, T, V] of id rows [B, T] at positions 0..T-1 (causal), in P's dtype."""
    b, t = ids.shape
    x = P["model.embed_tokens.weight"][ids]
    inv_freq = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=F64) / HD))
    angle = torch.arange(t, dtype=F64)[:, None] * inv_freq[None, :]
    angle = torch.cat((angle, angle), dim=-1)                       # [T, HD], HF layout
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    causal = torch.ones(t, t, dtype=torch.bool).tril()
    for l in range(L):
        p = f"model.layers.{l}."
        h = rms_norm(x, P[p + "input_layernorm.weight"])
        q = (h @ P[p + "self_attn.q_proj.weight"].T).view(b, t, H, HD).transpose(1, 2)
        k = (h @ P[p + "self_attn.k_proj.weight"].T).view(b, t, KVH, HD).transpose(1, 2)
        v = (h @ P[p + "self_attn.v_proj.weight"].T).view(b, t, KVH, HD).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k, v = k.repeat_interleave(H // KVH, dim=1), v.repeat_interleave(H // KVH, dim=1)  # query head i reads kv head i // rep
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        attn = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1) @ v
        x = x + attn.transpose(1, 2).reshape(b, t, D) @ P[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, P[p + "post_attention_layernorm.weight"])
        gate = F.silu(h @ P[p + "mlp.gate_proj.weight"].T) * (h @ P[p + "mlp.up_proj.weight"].T)
        x = x + gate @ P[p + "mlp.down_proj.weight"].T
    head = P.get("lm_head.weight", P["model.embed_tokens.weight"])   # tied when absent
    return rms_norm(x, P["model.norm.weight"]) @ head.T


def lm_loss(P, ids, targets, mask):
    """Σ mask·NLL / Σ mask: the project's "mask / supervised tokens of the whole step"."""
    nll = -torch.log_softmax(logits_of(P, ids), dim=-1).gather(-1, targets[..., None])[..., 0]
    return (nll * mask).sum() / mask.sum()


def sequence_logp(P, prompt, response):
    """Σ log p(response token | everything before it), the sequence run on its own."""
    seq = torch.tensor([prompt + response])
    logp = torch.log_softmax(logits_of(P, seq)[0], dim=-1)
    n = len(prompt)
    return sum(logp[t - 1, seq[0, t]] for t in range(n, seq.shape[1]))


def dpo_terms(policy, reference, pairs):
    """Sigmoid DPO: mean over pairs of −log σ(β((πc − ρc) − (πr − ρr))), and what it is made of."""
    pc = torch.stack([sequence_logp(policy, p["prompt"], p["chosen"]) for p in pairs])
    pr = torch.stack([sequence_logp(policy, p["prompt"], p["rejected"]) for p in pairs])
    with torch.no_grad():
        rc = torch.stack([sequence_logp(reference, p["prompt"], p["chosen"]) for p in pairs])
        rr = torch.stack([sequence_logp(reference, p["prompt"], p["rejected"]) for p in pairs])
    loss = -F.logsigmoid(DPO_BETA * ((pc - rc) - (pr - rr))).mean()
    return loss, pc, pr, rc, rr


# ---------------------------------------------------------------- checks against transformers

def hf_model(P32, tied):
    cfg = dict(CONFIG, tie_word_embeddings=tied)
    m = LlamaForCausalLM(LlamaConfig(**cfg, attn_implementation="eager")).eval()
    state = {k: v for k, v in P32.items() if not (tied and k == "lm_head.weight")}
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    if tied:
        assert m.lm_head.weight.data_ptr() == m.model.embed_tokens.weight.data_ptr()
    return m


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def check_against_transformers(P32, P64, ids, targets, mask, pairs):
    """The float64 model must agree with LlamaForCausalLM (its float32 internals limit the match)."""
    for dtype, tol in ((torch.float32, 1e-5), (F64, 1e-6)):
        m = hf_model(P32, tied=False).to(dtype)
        hf_logits = m(input_ids=ids).logits
        e = rel(hf_logits.to(F64), logits_of(P64, ids).detach())
        print(f"transformers {dtype} vs float64 reference: logits rel err {e:.2e}")
        assert e < tol
        mine = {k: v.detach().clone().requires_grad_(True) for k, v in P64.items()}
        lm_loss(mine, ids, targets, mask).backward()
        nll = -torch.log_softmax(hf_logits, -1).gather(-1, targets[..., None])[..., 0]
        ((nll * mask.to(dtype)).sum() / mask.sum()).backward()
        worst = max(rel(p.grad.to(F64), mine[n].grad) for n, p in m.named_parameters())
        print(f"transformers {dtype} vs float64 reference: worst gradient rel err {worst:.2e}")
        assert worst < 10 * tol
    tied64 = {k: v for k, v in P64.items() if k != "lm_head.weight"}
    m = hf_model(P32, tied=True).to(F64)
    for p in pairs:
        for side in ("chosen", "rejected"):
            seq = torch.tensor([p["prompt"] + p[side]])
            logp = torch.log_softmax(m(input_ids=seq).logits[0], -1)
            hf = sum(logp[t - 1, seq[0, t]] for t in range(len(p["prompt"]), seq.shape[1])).item()
            ours = sequence_logp(tied64, p["prompt"], p[side]).item()
            assert abs(hf - ours) < 1e-5 * max(1, abs(ours)), (hf, ours)
    print("transformers tied model agrees on every DPO log-prob")


# ---------------------------------------------------------------- writing

def save_hf_dir(name, tensors, tied):
    """`tensors` (HF names, any float dtype) as a Hugging Face directory the project's loader reads."""
    d = OUT / name
    d.mkdir(parents=True, exist_ok=True)
    cfg = LlamaConfig(**dict(CONFIG, tie_word_embeddings=tied))
    cfg.save_pretrained(d)
    flat = {k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}
    save_file(flat, d / "model.safetensors", metadata={"format": "pt"})


def grads_of(P):
    return {k: v.grad.detach().clone() for k, v in P.items()}


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    P32 = initial_weights()
    P64 = {k: v.to(F64) for k, v in P32.items()}

    # The model itself goes through transformers' own writer.
    hf_model(P32, tied=False).save_pretrained(OUT / "model")
    (OUT / "model" / "generation_config.json").unlink(missing_ok=True)

    # One language-model batch: next-token targets; some positions unsupervised (a prompt, a tail).
    g = torch.Generator().manual_seed(7)
    rows = torch.randint(0, V, (2, 13), generator=g)
    ids, targets = rows[:, :-1].contiguous(), rows[:, 1:].contiguous()
    mask = torch.ones(2, 12, dtype=F64)
    mask[0, :4] = 0
    mask[1, -2:] = 0

    pairs = [
        dict(prompt=[1, 17, 42, 5], chosen=[23, 9, 31, 2], rejected=[40, 2]),
        dict(prompt=[1, 60], chosen=[12, 2], rejected=[33, 7, 51, 19, 2]),
        dict(prompt=[1, 8, 8, 3, 29], chosen=[50, 44, 2], rejected=[14, 2]),
    ]
    check_against_transformers(P32, P64, ids, targets, mask, pairs)

    # ---- language model: loss and gradients, then 3 AdamW steps
    P = {k: v.clone().requires_grad_(True) for k, v in P64.items()}
    opt = torch.optim.AdamW(P.values(), lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"],
                            weight_decay=OPT["weight_decay"], foreach=False)
    losses, norms = [], []
    for step in range(LM_STEPS):
        opt.zero_grad()
        loss = lm_loss(P, ids, targets, mask)
        loss.backward()
        if step == 0:
            save_hf_dir("lm_gradients", grads_of(P), tied=False)
        norms.append(torch.nn.utils.clip_grad_norm_(list(P.values()), OPT["max_grad_norm"]).item())
        losses.append(loss.item())
        opt.step()
    with torch.no_grad():
        final_loss = lm_loss(P, ids, targets, mask).item()
    save_hf_dir("lm_final", P, tied=False)
    print("LM losses", losses, "→", final_loss, "grad norms", norms)

    # ---- DPO on the tied variant (lm_head dropped: the classifier is the embedding)
    tied = {k: v for k, v in P64.items() if k != "lm_head.weight"}
    policy = {k: v.clone().requires_grad_(True) for k, v in tied.items()}
    opt = torch.optim.AdamW(policy.values(), lr=OPT["lr"], betas=(OPT["beta1"], OPT["beta2"]), eps=OPT["eps"],
                            weight_decay=OPT["weight_decay"], foreach=False)
    dpo_steps = []
    for step in range(2):
        opt.zero_grad()
        loss, pc, pr, rc, rr = dpo_terms(policy, tied, pairs)
        loss.backward()
        if step == 0:
            save_hf_dir("dpo_gradients", grads_of(policy), tied=True)
        norm = torch.nn.utils.clip_grad_norm_(list(policy.values()), OPT["max_grad_norm"]).item()
        dpo_steps.append(dict(
            loss=loss.item(), grad_norm=norm,
            rewards_chosen=(DPO_BETA * (pc - rc)).mean().item(), rewards_rejected=(DPO_BETA * (pr - rr)).mean().item(),
            logps_chosen=pc.tolist(), logps_rejected=pr.tolist(), ref_logps_chosen=rc.tolist(), ref_logps_rejected=rr.tolist()))
        opt.step()
    print("DPO steps", json.dumps(dpo_steps, indent=1))

    golden = dict(
        about="Written by make_torch_golden.py (float64 reference, torch " + torch.__version__ + "); do not edit.",
        optimizer=OPT,
        lm=dict(batch=2, seq=12, ids=ids.flatten().tolist(), targets=targets.flatten().tolist(),
                mask=mask.flatten().tolist(), losses=losses, grad_norms=norms, final_loss=final_loss),
        dpo=dict(beta=DPO_BETA, pad=0, pairs=pairs, steps=dpo_steps),
    )
    (OUT / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    total = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"wrote {OUT} ({total / 1024:.0f} KiB)")


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
