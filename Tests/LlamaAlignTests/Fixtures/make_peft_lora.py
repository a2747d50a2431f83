#!/usr/bin/env python3
"""Writes the PEFT LoRA fixture that `PEFTLoRATests` loads (an adapter made by PEFT itself,
outside the project, with the logits PEFT computes for it).

Run once, by hand, with a Python that has torch, transformers and peft (not a run-time or CI
dependency; the output is committed):

    /root/venv-torch/bin/python Tests/LlamaAlignTests/Fixtures/make_peft_lora.py

It writes `Tests/LlamaAlignTests/Fixtures/peft_lora/`:

- `model/`     a tiny LLaMA (GQA, untied) saved by transformers' `save_pretrained`, float32;
- `adapter/`   a PEFT LoRA adapter on q/k/v/o/gate/up/down (rank 4, α 8, rsLoRA off) saved by
               `PeftModel.save_pretrained` (`adapter_config.json`, `adapter_model.safetensors`),
               with B set to random values (PEFT initializes B to zero) so every adapter matters;
- `adapter_rslora/` the same adapter tensors with `use_rslora: true` and only q_proj/v_proj/down_proj;
- `golden.json` the token ids and PEFT's logits for each adapter, and the base model's, and the
               mean next-token loss of `adapter` on the ids (float64);
- `adapter_gradients.safetensors` d(loss)/d(every lora_A and lora_B) of `adapter` in float64 (stored
               as float32), under PEFT's key names and Hugging Face's row order.
"""
import json
import pathlib
import shutil

import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

OUT = pathlib.Path(__file__).resolve().parent / "peft_lora"
CONFIG = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, vocab_size=40, max_position_embeddings=64, rms_norm_eps=1e-5,
              rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
IDS = [[1, 7, 22, 3, 39, 11, 5, 18], [1, 30, 2, 14, 9, 9, 27, 4]]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


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


def adapted(model, rslora, targets, seed):
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0, bias="none",
                     use_rslora=rslora, task_type="CAUSAL_LM")
    torch.manual_seed(seed)
    peft_model = get_peft_model(model, cfg)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.3)
    return peft_model.eval()


def logits(model):
    with torch.no_grad():
        return model(torch.tensor(IDS)).logits.double().flatten().tolist()


def gradients(peft_model):
    """The mean next-token loss over IDS (every position but the last) and its adapter gradients."""
    model = peft_model.double()
    ids = torch.tensor(IDS)
    loss = model(ids, labels=ids).loss
    loss.backward()
    grads = {n.replace(".default", ""): p.grad.float().contiguous() for n, p in model.named_parameters() if "lora_" in n}
    return loss.item(), grads


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    base = base_model()
    base.save_pretrained(OUT / "model", safe_serialization=True)
    golden = {"ids": IDS, "base_logits": logits(base)}
    full = adapted(base_model(), False, TARGETS, 11)
    full.save_pretrained(OUT / "adapter")
    golden["logits"] = logits(full)
    golden["loss"], grads = gradients(adapted(base_model(), False, TARGETS, 11))
    save_file(grads, str(OUT / "adapter_gradients.safetensors"), metadata={"format": "pt"})
    rs = adapted(base_model(), True, ["q_proj", "v_proj", "down_proj"], 12)
    rs.save_pretrained(OUT / "adapter_rslora")
    golden["rslora_logits"] = logits(rs)
    (OUT / "golden.json").write_text(json.dumps(golden))
    for d in ["adapter", "adapter_rslora"]:
        readme = OUT / d / "README.md"
        if readme.exists():
            readme.unlink()


if __name__ == "__main__":
    main()
