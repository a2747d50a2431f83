"""Which tensors make stories260K lose quality when quantized (README "Quantization", quality).

A plain NumPy forward pass of a llama2.c checkpoint (float64, the model's fp32 weights), scored on
its own 256-token fp32 greedy continuation from BOS, with chosen matrices replaced by their
ggml Q8_0 / Q4_0 round trips (group 32, fp16 scales) and, optionally, every matmul's input
rounded to int8 per group of 32 as decode's one-row products do. Its f32 / all-q8_0 / all-q4_0
rows equal `llama-align eval` on the same sequence to 4 digits. Analysis only: nothing in the
package runs Python.

    python scripts/quant_sensitivity.py ../shared/models/stories260K.bin
"""
import struct
import sys

import numpy as np

MATS = ["wq", "wk", "wv", "wo", "w1", "w2", "w3"]


def load(path):
    raw = open(path, "rb").read()
    D, H, L, NH, NKV, V, S = struct.unpack("7i", raw[:28])
    a, o, hd = np.frombuffer(raw[28:], dtype=np.float32), 0, D // NH
    cfg = dict(D=D, H=H, L=L, NH=NH, NKV=NKV, V=abs(V), hd=hd)

    def take(*shape):
        nonlocal o
        n = int(np.prod(shape))
        t = a[o:o + n].reshape(shape).astype(np.float64)
        o += n
        return t

    kvd = NKV * hd
    W = {"emb": take(abs(V), D), "ra": take(L, D), "wq": take(L, D, D), "wk": take(L, kvd, D),
         "wv": take(L, kvd, D), "wo": take(L, D, D), "rf": take(L, D), "w1": take(L, H, D),
         "w2": take(L, D, H), "w3": take(L, H, D), "rfin": take(D)}
    take(S, hd // 2), take(S, hd // 2)
    W["cls"] = W["emb"] if V > 0 else take(abs(V), D)
    return cfg, W


def fp16(x):
    return x.astype(np.float16).astype(np.float64)


def q8_0(w, G=32):
    """ggml Q8_0 per group along rows: d = max|x|/127, q = round(x/d), value q·fp16(d)."""
    out = np.zeros_like(w)
    for g in range(0, w.shape[-1], G):
        b = w[..., g:g + G].astype(np.float32)
        d = np.abs(b).max(-1, keepdims=True) / np.float32(127)
        inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0)
        out[..., g:g + G] = np.round(b * inv) * fp16(d)
    return out


def q4_0(w, G=32):
    """ggml Q4_0: d = m/−8 (m the signed value of largest magnitude), q = min(15, ⌊x/d + 8.5⌋) − 8."""
    out = np.zeros_like(w)
    for g in range(0, w.shape[-1], G):
        b = w[..., g:g + G].astype(np.float32)
        m = np.take_along_axis(b, np.abs(b).argmax(-1)[..., None], -1)
        d = m / np.float32(-8)
        inv = np.where(d != 0, 1 / np.where(d != 0, d, 1), 0)
        out[..., g:g + G] = (np.minimum(15, np.trunc(b * inv + np.float32(8.5))) - 8) * fp16(d)
    return out


def int8_rows(x, G=32):
    """A matmul input rounded to int8 per group in f32 (QuantGemvLowering)."""
    x, out = x.astype(np.float32), np.zeros(x.shape)
    for g in range(0, len(x), G):
        b = x[g:g + G]
        d = np.float32(np.abs(b).max()) / np.float32(127)
        inv = np.float32(1) / d if d != 0 else np.float32(0)
        out[g:g + G] = np.round(b * inv) * np.float64(d)
    return out


def forward(cfg, W, toks, act=False):
    D, L, NH, NKV, hd = cfg["D"], cfg["L"], cfg["NH"], cfg["NKV"], cfg["hd"]
    a = int8_rows if act else (lambda v: v)
    T, logits = len(toks), []
    kc, vc = np.zeros((L, T, NKV * hd)), np.zeros((L, T, NKV * hd))
    freqs = 1.0 / (10000 ** (np.arange(0, hd, 2) / hd))

    def rms(x, w):
        return x / np.sqrt((x * x).mean() + 1e-5) * w

    for p, t in enumerate(toks):
        x = W["emb"][t].copy()
        c, s = np.cos(p * freqs), np.sin(p * freqs)

        def rope(z):
            z = z.reshape(-1, hd // 2, 2)
            return np.stack([z[..., 0] * c - z[..., 1] * s, z[..., 0] * s + z[..., 1] * c], -1).reshape(-1)

        for l in range(L):
            h = a(rms(x, W["ra"][l]))
            q, kc[l, p], vc[l, p] = rope(W["wq"][l] @ h), rope(W["wk"][l] @ h), W["wv"][l] @ h
            att = np.zeros(D)
            for hh in range(NH):
                kh = hh // (NH // NKV)
                sc = kc[l, :p + 1, kh * hd:(kh + 1) * hd] @ q[hh * hd:(hh + 1) * hd] / np.sqrt(hd)
                sc = np.exp(sc - sc.max())
                att[hh * hd:(hh + 1) * hd] = (sc / sc.sum()) @ vc[l, :p + 1, kh * hd:(kh + 1) * hd]
            x = x + W["wo"][l] @ a(att)
            h = a(rms(x, W["rf"][l]))
            g, u = W["w1"][l] @ h, W["w3"][l] @ h
            x = x + W["w2"][l] @ a(g / (1 + np.exp(-g)) * u)
        logits.append(W["cls"] @ a(rms(x, W["rfin"])))
    return np.array(logits)


def score(cfg, W, seq, act=False):
    lg = forward(cfg, W, seq[:-1], act)
    lg = lg - lg.max(-1, keepdims=True)
    lp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
    tgt = np.array(seq[1:])
    return -lp[np.arange(len(tgt)), tgt].mean(), int((lg.argmax(-1) == tgt).sum())


def main():
    cfg, W = load(sys.argv[1])
    seq = [1]
    for _ in range(256):  # the fp32 greedy continuation (quadratic, a few seconds)
        seq.append(int(forward(cfg, W, seq)[-1].argmax()))
    base, _ = score(cfg, W, seq)
    print(f"| weights | activations | loss | vs f32 | argmax agreement (of 256) |\n|---|---|---|---|---|")
    print(f"| f32 | f32 | {base:.4f} | — | 256 |")

    def row(name, quant, which, cls=None, act=False):
        W2 = dict(W)
        for m in which:
            W2[m] = quant(W[m])
        if cls:
            W2["cls"] = cls(W["cls"])
        loss, agree = score(cfg, W2, seq, act)
        print(f"| {name} | {'int8' if act else 'f32'} | {loss:.4f} | {100 * (loss / base - 1):+.2f}% | {agree} |", flush=True)

    row("f32", None, [], act=True)
    for tname, quant in (("q8_0", q8_0), ("q4_0", q4_0)):
        row(f"all {tname}, output q8_0", quant, MATS, cls=q8_0)
        row(f"all {tname}, output q8_0", quant, MATS, cls=q8_0, act=True)
        row(f"all {tname}, output f32", quant, MATS)
        if tname == "q4_0":  # --lm-head q4_0: the output matrix in 4 bits too
            row("all q4_0, output q4_0", quant, MATS, cls=q4_0)
        row(f"only the output in {tname}", quant, [], cls=quant)
        for m in MATS:
            row(f"only {m} in {tname}", quant, [m])


if __name__ == "__main__":
    main()
