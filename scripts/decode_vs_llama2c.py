"""Decode speed of `llama-align` against llama2.c's run.c on the `small` shape, side by side.

Alternates, round by round, llama2.c (fp32) and `llama-align` in fp32, q8_0, q4_0 and q4_0 with
the 4-bit output matrix (`q4_0h4`: `--quant q4_0 --lm-head q4_0`), and prints
the medians and ratios. Two views:

  wall   `bench generate --config small --threads T --runs 3 --json [--quant Q]` (median tok/s of
         its runs) against llama2.c's "achieved tok/s" with OMP_NUM_THREADS=T;
  cpu    CPU time per decoded token at 1 thread, (cpu(256 tokens) − cpu(1 token)) / 255, of
         `generate --model small.bin --prompt-ids 1 --temperature 0 --print-ids [--quant Q]` and of
         `run small.bin -t 0 -n N` — steadier than wall clock on a shared machine.

small.bin is a llama2.c checkpoint with the `small` shape (dim 288, 6 layers, hidden 768, vocab
32000; any weights); run.c is built outside the repository with
`gcc -Ofast -fopenmp -march=native run.c -lm -o run`. A benchmark, not a test:

    python scripts/decode_vs_llama2c.py --llama-align .build/release/llama-align --run /tmp/run \\
        --bin small.bin --tokenizer ../shared/tokenizers/llama2/tokenizer.bin --mode wall --threads 2
"""
import argparse
import json
import os
import re
import resource
import statistics
import subprocess

KINDS = ("llama2c", "f32", "q8_0", "q4_0", "q4_0h4")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-align", required=True)
    ap.add_argument("--run", required=True, help="llama2.c's run binary")
    ap.add_argument("--bin", required=True, help="a llama2.c checkpoint of the small shape")
    ap.add_argument("--tokenizer", required=True, help="llama2.c's tokenizer.bin")
    ap.add_argument("--mode", choices=("wall", "cpu"), default="wall")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None), env.pop("OPENBLAS_L2_SIZE", None)
    env["OMP_NUM_THREADS"] = a.threads if a.mode == "wall" else "1"

    def llama2c(n):
        return [a.run, a.bin, "-t", "0", "-n", str(n), "-z", a.tokenizer]

    def quant(q):  # q4_0h4: q4_0 with the 4-bit output matrix (--lm-head q4_0)
        return [] if q == "f32" else ["--quant", "q4_0", "--lm-head", "q4_0"] if q == "q4_0h4" else ["--quant", q]

    def cpu_seconds(cmd):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)

    def measure(kind):
        if a.mode == "cpu":  # tokens per CPU second
            if kind == "llama2c":
                return 255 / (cpu_seconds(llama2c(257)) - cpu_seconds(llama2c(2)))
            ours = [a.llama_align, "generate", "--model", a.bin, "--prompt-ids", "1", "--temperature", "0",
                    "--print-ids", "--max-new-tokens"]
            return 255 / (cpu_seconds(ours + ["256"] + quant(kind)) - cpu_seconds(ours + ["1"] + quant(kind)))
        if kind == "llama2c":
            err = subprocess.run(llama2c(256), capture_output=True, text=True, env=env).stderr
            return float(re.search(r"achieved tok/s: ([\d.]+)", err).group(1))
        out = subprocess.run([a.llama_align, "bench", "generate", "--config", "small", "--threads", a.threads,
                              "--runs", "3", "--json"] + quant(kind), capture_output=True, text=True, env=env).stdout
        return json.loads(out)["decode_tokens_per_second"]["median"]

    res = {k: [] for k in KINDS}
    for r in range(a.rounds):
        for k in KINDS:
            res[k].append(measure(k))
        print(f"round {r}: " + ", ".join(f"{k} {res[k][-1]:.0f}" for k in KINDS), flush=True)
    med = {k: statistics.median(v) for k, v in res.items()}
    unit = "tokens per CPU second, 1 thread" if a.mode == "cpu" else f"tok/s, {a.threads} threads"
    print(f"medians ({unit}): " + ", ".join(f"{k} {v:.0f}" for k, v in med.items()))
    print("vs llama2.c (ratio of medians): " + ", ".join(f"{k} {v / med['llama2c']:.2f}x" for k, v in med.items()))
    print("vs llama2.c (per round): " + ", ".join(
        f"{k} " + "/".join(f"{x / y:.2f}" for x, y in zip(res[k], res["llama2c"])) for k in KINDS[1:]))


if __name__ == "__main__":
    main()
