#!/usr/bin/env python3
"""Writes the PEFT prefix-tuning fixture that `PEFTPrefixTests` loads (prefixes made by PEFT
itself, outside the project, with the logits PEFT computes for them).

Run once, by hand, with a Python that has torch, transformers and peft (not a run-time or CI
dependency; the output is committed):

    /root/venv-torch/bin/python Tests/LlamaAlignTests/Fixtures/make_peft_prefix.py

It writes `Tests/LlamaAlignTests/Fixtures/peft_prefix/`:

- `model/`     a tiny LLaMA (GQA: 4 query heads sharing 2 KV heads, untied) saved by transformers'
               `save_pretrained`, float32;
- `adapter/`   a PEFT prefix-tuning adapter (3 virtual tokens, no projection) saved by
               `PeftModel.save_pretrained` (`adapter_config.json`, `adapter_model.safetensors` with
               `prompt_embeddings` [3, layers·2·KV heads·head dim]), PEFT's own random init;
- `adapter_projection/` a prefix trained through PEFT's reparameterization
               (`prefix_projection: true`, encoder_hidden_size 24, the MLP's last layer randomized):
               PEFT saves the projected table, which loads like any other;
- `projection_encoder.safetensors` that prefix's MLP as PEFT holds it (`embedding.weight`,
               `transform.0.weight`/`.bias`, `transform.2.weight`/`.bias`), which PEFT does not save;
- `golden.json` the token ids, PEFT's logits for each adapter and the base model's logits, the
               greedy continuation (6 new tokens) of `PROMPT` under PEFT's forward with `adapter`
               (repeated full forward passes: with transformers 5, PEFT 0.21.2's `generate` drops
               the prefix and continues like the base model — checked below), the
               mean next-token loss of `adapter` on the ids and its gradient with respect to the
               prefix table (`prompt_embeddings`, PEFT's layout), all in float64.
"""
import json
import pathlib
import shutil

import torch
from peft import PeftModel, PrefixTuningConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

OUT = pathlib.Path(__file__).resolve().parent / "peft_prefix"
CONFIG = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=40, max_position_embeddings=64, rms_norm_eps=1e-5,
              rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
IDS = [[1, 7, 22, 3, 39, 11, 5, 18], [1, 30, 2, 14, 9, 9, 27, 4]]
TOKENS = 3
PROMPT = [1, 7, 22]


def base_model():
    torch.manual_seed(7)
    model = LlamaForCausalLM(LlamaConfig(**CONFIG)).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
        for n, p in model.named_parameters():
            if "norm" in n:
                p.copy_(1 + 0.1 * torch.randn_like(p))
    return model


def prefixed(projection, seed):
    cfg = PrefixTuningConfig(num_virtual_tokens=TOKENS, task_type="CAUSAL_LM", prefix_projection=projection,
                             encoder_hidden_size=24 if projection else None)
    torch.manual_seed(seed)
    model = get_peft_model(base_model(), cfg)
    if projection:
        with torch.no_grad():
            last = model.prompt_encoder["default"].transform[-1]
            last.weight.normal_(0, 0.5)
            last.bias.normal_(0, 0.5)
    return model.eval()


def logits(model):
    with torch.no_grad():
        return model(input_ids=torch.tensor(IDS), attention_mask=torch.ones(len(IDS), len(IDS[0]), dtype=torch.long)).logits.double().flatten().tolist()


def greedy(model, count):
    """Greedy ids after PROMPT, each from a full forward pass of the prefix model."""
    ids = list(PROMPT)
    with torch.no_grad():
        for _ in range(count):
            t = torch.tensor([ids])
            ids.append(int(model(input_ids=t, attention_mask=torch.ones_like(t)).logits[0, -1].argmax()))
    return ids[len(PROMPT):]


def gradient(directory):
    """The mean next-token loss over IDS (float64) and d(loss)/d(prompt_embeddings), with the
    table PEFT saved in `directory` in a trainable prefix model."""
    model = prefixed(False, 11).double()
    table = model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        table.copy_(load_file(str(directory / "adapter_model.safetensors"))["prompt_embeddings"].double())
    model.train()
    ids = torch.tensor(IDS)
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
    loss.backward()
    return loss.item(), table.grad.flatten().tolist()


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    base = base_model()
    base.save_pretrained(OUT / "model", safe_serialization=True)
    golden = {"ids": IDS, "tokens": TOKENS, "base_logits": logits(base)}
    plain = prefixed(False, 11)
    plain.save_pretrained(OUT / "adapter")
    golden["logits"] = logits(plain)
    projected = prefixed(True, 12)
    projected.save_pretrained(OUT / "adapter_projection")
    encoder = projected.prompt_encoder["default"]
    save_file({k: v.detach().float().contiguous() for k, v in encoder.state_dict().items()},
              str(OUT / "projection_encoder.safetensors"), metadata={"format": "pt"})
    golden["projection_logits"] = logits(projected)
    # Loaded back as PEFT loads a saved adapter (inference mode: the table as stored).
    reloaded = PeftModel.from_pretrained(base_model(), OUT / "adapter").eval()
    assert max(abs(a - b) for a, b in zip(logits(reloaded), golden["logits"])) < 1e-6
    golden["prompt"], golden["greedy"] = PROMPT, greedy(reloaded, 6)
    with torch.no_grad():
        out = reloaded.generate(input_ids=torch.tensor([PROMPT]), attention_mask=torch.ones(1, len(PROMPT), dtype=torch.long),
                                max_new_tokens=6, do_sample=False, eos_token_id=None, pad_token_id=0)
    if out[0, len(PROMPT):].tolist() != golden["greedy"]:
        print("note: PEFT's generate() differs from its forward's greedy ids (the prefix is dropped):",
              out[0, len(PROMPT):].tolist(), "vs", golden["greedy"])
    golden["loss"], golden["prefix_gradient"] = gradient(OUT / "adapter")
    (OUT / "golden.json").write_text(json.dumps(golden))
    for d in ["adapter", "adapter_projection"]:
        readme = OUT / d / "README.md"
        if readme.exists():
            readme.unlink()


if __name__ == "__main__":
    main()
