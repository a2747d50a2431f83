# Makes gguf_quants.json: rows of float32 values and what the `gguf` Python package
# (gguf.quants.quantize, GGML Q8_0 / Q4_0, blocks of 32) stores for them: the fp16 scale of
# each block and its quants (q8_0: int8; q4_0: the 4-bit value minus 8, in element order).
# Run once with `pip install gguf numpy`; the test reads only the JSON.
import json
import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize

rng = np.random.default_rng(7)
rows = [
    rng.standard_normal(64).astype(np.float32),
    (rng.standard_normal(64) * 0.02).astype(np.float32),
    np.concatenate([np.zeros(32), rng.uniform(-3, 3, 32)]).astype(np.float32),      # an all-zero block
    np.concatenate([np.linspace(-1, 1, 32), -np.linspace(0, 5, 32)]).astype(np.float32),  # negative extreme
    (np.arange(64) - 31.5).astype(np.float32) / 7.0,                                  # halves
]
x = np.stack(rows)
out = {"rows": x.shape[0], "cols": x.shape[1], "values": [float(v) for v in x.reshape(-1)]}
for name, t in [("q8_0", T.Q8_0), ("q4_0", T.Q4_0)]:
    b = quantize(x, t).reshape(-1)
    deq = dequantize(quantize(x, t), t).reshape(-1)
    scales, quants = [], []
    bs = 34 if t == T.Q8_0 else 18
    for blk in b.reshape(-1, bs):
        scales.append(float(np.frombuffer(blk[:2].tobytes(), dtype=np.float16)[0]))
        if t == T.Q8_0:
            quants += [int(v) for v in np.frombuffer(blk[2:].tobytes(), dtype=np.int8)]
        else:
            qs = blk[2:]
            quants += [int(v & 15) - 8 for v in qs] + [int(v >> 4) - 8 for v in qs]
    out[name] = {"scales": scales, "quants": quants, "dequantized": [float(v) for v in deq]}
with open("gguf_quants.json", "w") as f:
    json.dump(out, f)
