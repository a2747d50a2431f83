#!/usr/bin/env bash
# Builds every libFuzzer target of Tests/fuzz and runs each for SECONDS (default 20).
#
#   bash Tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# Prints the executions of each target. Exits non-zero when a target crashes, traps, leaks,
# times out on one input (10 s), runs out of memory (2 GB) or stops otherwise; the input that
# did it is left in the folder printed for that target ($LLAMA_ALIGN_FUZZ_WORK/crashes/TARGET,
# default Tests/fuzz/.work). Reproduce one with: Tests/fuzz/.build/debug/TARGET FILE
#
# Seeds: each target writes its own (tiny checkpoints and tokenizers made by the project's
# writers, hand-written rows and argument files), plus the bundled examples (examples/data,
# examples/*.json), the inputs that once crashed it (Tests/LlamaAlignTests/Fixtures/fuzz/TARGET)
# and, when the shared fixtures exist ($LLAMA_ALIGN_SHARED, default ../shared), trimmed copies
# of its tokenizers and model header. The corpus grows in the work folder and is
# reused by the next run. LLAMA_ALIGN_FUZZ_SEED=N fixes libFuzzer's random seed (CI sets 1, so
# its run repeats one that passed here); the last line is "fuzz: N passed, N failed".
set -uo pipefail

seconds=${1:-20}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=${LLAMA_ALIGN_FUZZ_WORK:-$here/.work}
all_targets=(jsonl_pretrain jsonl_sft jsonl_dpo arguments chat_template safetensors hf_config llama2c_bin
             sentencepiece_model llama2c_tokenizer tokenizer_json)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all_targets[@]}"); fi

if [ -z "${LLAMA_ALIGN_SHARED:-}" ] && [ -d "$root/../shared" ]; then
    export LLAMA_ALIGN_SHARED="$root/../shared"
fi
# Swift's own crash reporter would catch the traps before libFuzzer and ASan do.
export SWIFT_BACKTRACE=enable=no
# Allocations of Swift's one-time global initialisers are not leaks (see lsan.supp).
export LSAN_OPTIONS="suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# What -sanitize=fuzzer instruments, for every Swift target (see Tests/fuzz/Package.swift).
build_flags=(-c debug --package-path "$here" -Xswiftc -sanitize=address
             -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp)
mkdir -p "$work"
start=$(date +%s)
echo "building the fuzz targets (log: $work/build.log)"
# The build plugin's tool runs instrumented too; its exit must not fail on a leak report.
if ! ASAN_OPTIONS=detect_leaks=0 swift build "${build_flags[@]}" >"$work/build.log" 2>&1; then
    grep -v "Cannot export local symbol" "$work/build.log" | tail -30
    echo "FAILED: the fuzz build (see $work/build.log)"
    exit 2
fi
bin=$(swift build "${build_flags[@]}" --show-bin-path)
echo "built in $(( $(date +%s) - start )) s"

# seed_examples TARGET DIR: the bundled examples this target reads, one small file per few rows.
seed_examples() {
    local t=$1 dir=$2 f
    mkdir -p "$dir"
    case $t in
        jsonl_pretrain) for f in "$root"/examples/data/pretrain.jsonl; do split -l 3 -a 3 "$f" "$dir/$(basename "$f" .jsonl)-"; done ;;
        jsonl_sft) for f in "$root"/examples/data/sft_*.jsonl; do split -l 3 -a 3 "$f" "$dir/$(basename "$f" .jsonl)-"; done ;;
        jsonl_dpo) for f in "$root"/examples/data/dpo_*.jsonl; do split -l 3 -a 3 "$f" "$dir/$(basename "$f" .jsonl)-"; done ;;
        arguments) cp "$root"/examples/*.json "$dir/" ;;
        hf_config) cp "$root"/examples/tiny-model/config.json "$dir/tiny-model-config.json" ;;
    esac
    # Inputs that once crashed a parser (the test suite replays them too).
    if [ -d "$root/Tests/LlamaAlignTests/Fixtures/fuzz/$t" ]; then cp "$root/Tests/LlamaAlignTests/Fixtures/fuzz/$t"/* "$dir/"; fi
}

failed=()
summary=()
for t in "${targets[@]}"; do
    if [ ! -x "$bin/$t" ]; then echo "no such target: $t"; failed+=("$t"); continue; fi
    corpus="$work/corpus/$t" seeds="$work/seeds/$t" crashes="$work/crashes/$t"
    rm -rf "$seeds"
    mkdir -p "$corpus" "$crashes"
    ASAN_OPTIONS=detect_leaks=0 LLAMA_ALIGN_FUZZ_WRITE_SEEDS="$seeds" "$bin/$t" >/dev/null 2>&1 \
        || { echo "$t: writing its seeds failed"; failed+=("$t"); continue; }
    seed_examples "$t" "$seeds"
    log="$work/$t.log"
    "$bin/$t" -max_total_time="$seconds" ${LLAMA_ALIGN_FUZZ_SEED:+-seed=$LLAMA_ALIGN_FUZZ_SEED} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$corpus" "$seeds" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(grep -o 'exec/s: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    corpus_size=$(find "$corpus" -type f | wc -l)
    if [ $rc -eq 0 ]; then
        line=$(printf '%-20s ok      %10s executions (%s/s), corpus %s' "$t" "${execs:-?}" "${rate:-?}" "$corpus_size")
    else
        failed+=("$t")
        line=$(printf '%-20s FAILED  %10s executions, exit %s; input in %s (log %s)' "$t" "${execs:-?}" "$rc" "$crashes" "$log")
        grep -E "ERROR|invariant broken|Fatal error|SUMMARY|Test unit written" "$log" | head -8 | sed 's/^/    /'
    fi
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzzing summary (${seconds} s per target, $(( $(date +%s) - start )) s in all):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}"
fi
echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
