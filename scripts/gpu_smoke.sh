#!/usr/bin/env bash
# GPU smoke test (issue 15): tiny runs in fp32, fp16, bf16 and auto, with every cell, the AWD regularizers and the
# adaptive softmax; evaluate, sample and agreement scoring on the GPU; a GPU run resumed on the GPU (bit-exact where
# cuDNN allows, else by how much it differs) and on the CPU; and with 2 or more GPUs, torchrun over NCCL, a resume
# with fewer GPUs, and ranks drawing different dropout masks after a resume. About 5 minutes on one GPU.
#
#   bash scripts/gpu_smoke.sh                 # on a machine with CUDA: run this first there
#   bash scripts/gpu_smoke.sh --device cpu    # the same checks on a CPU (or SMOKE_DEVICE=cpu): fp16 and the
#                                             # multi-GPU part skip, bf16 runs where the CPU has bf16 units
#
# One line per check, `PASS name: detail (time)`, `FAIL name: detail (time)` or `SKIP name: why`, then the total
# time and `N passed, M failed, K skipped`. Exit status 0 only when no check failed.
#
# It installs nothing and runs this tree's code, installed or not: `python -m lstm_lm` from the repository root with
# the root on PYTHONPATH, with the first of these that imports torch: $PYTHON (then only it), the interpreter of
# the `lstm-lm` on PATH, .venv/bin/python, python3, python.
# SMOKE_DIR=DIR works in a new directory under DIR and keeps it (under a device machine's $OUT the logs come back);
# otherwise the work goes to a temporary directory, removed when every check passed and named when one failed.
# SMOKE_BUDGET_S (default 300): checks that would start after this many seconds fail without running.
set -u

DEVICE=${SMOKE_DEVICE:-cuda}
while [ $# -gt 0 ]; do
    case $1 in
        --device) DEVICE=${2:-}; shift $(( $# > 1 ? 2 : 1 )) ;;
        --device=*) DEVICE=${1#*=}; shift ;;
        -h | --help) sed -n '2,/^set -u/{/^set -u/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        *) echo "usage: bash scripts/gpu_smoke.sh [--device cuda|cpu]" >&2; exit 2 ;;
    esac
done
case $DEVICE in
    cpu | cuda) ;;
    *) echo "--device $DEVICE: expected cuda or cpu" >&2; exit 2 ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# The models are tiny: more CPU threads only wait on each other (and torchrun warns unless this is set).
export OMP_NUM_THREADS=1

STEPS=20 HALF=10   # steps of every run; a resumed run stops at HALF first
TIMEOUT=60         # seconds for one command (a tiny run takes a few); torchrun's gets twice that, as NCCL may hang
BUDGET=${SMOKE_BUDGET_S:-300}  # seconds; checks that would start later fail unrun, so that a slow run still ends
PASSED=0 FAILED=0 SKIPPED=0

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%d s' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }
START=$(now_ms)

# check NAME FUNCTION [ARGS...]: runs one check; FUNCTION's exit status is the verdict and it leaves a one-line
# account in DETAIL.
check() {
    local name=$1 started status
    shift
    started=$(now_ms)
    if [ $(( started - START )) -gt $(( BUDGET * 1000 )) ]; then
        echo "FAIL $name: not run, the $BUDGET s budget is spent (SMOKE_BUDGET_S=SECONDS raises it)"
        FAILED=$(( FAILED + 1 ))
        return
    fi
    DETAIL=""
    if "$@"; then
        status=PASS PASSED=$(( PASSED + 1 ))
    else
        status=FAIL FAILED=$(( FAILED + 1 ))
    fi
    echo "$status $name: $DETAIL ($(since "$started"))"
}
skip() { echo "SKIP $1: $2"; SKIPPED=$(( SKIPPED + 1 )); }
# check_unless WHY_NOT NAME FUNCTION [ARGS...]: the check, or SKIP with WHY_NOT when that is not empty.
check_unless() { if [ -n "$1" ]; then skip "$2" "$1"; else check "${@:2}"; fi; }

# The summary line, and the work directory removed or named; the exit status says whether anything failed.
finish() {
    local kept=""
    if [ -n "${WORK:-}" ]; then
        if [ $FAILED -eq 0 ] && [ -z "${SMOKE_DIR:-}" ]; then rm -rf "$WORK"; else kept="; runs and logs in $WORK"; fi
    fi
    echo "total wall time $(since "$START")$kept"
    echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
    [ $FAILED -eq 0 ]
    exit
}

# Without a Python that imports torch (and the project's dependencies), or without CUDA, nothing else can run.
interpreter() {
    local launcher candidates candidate
    if [ -n "${PYTHON:-}" ]; then
        candidates=("$PYTHON")
    else
        launcher=$(command -v lstm-lm) && candidates=("$(sed -n '1s/^#!//p' "$launcher")")
        candidates+=(.venv/bin/python python3 python)
    fi
    for candidate in "${candidates[@]}"; do
        if "$candidate" -c 'import torch' >/dev/null 2>&1; then
            PY=$candidate
            DETAIL=$("$PY" -c 'import lstm_lm.cli' 2>&1 | tail -n 1)
            [ -z "$DETAIL" ] && return 0
            DETAIL="$PY imports torch but not the project ($DETAIL); pip install -e . installs its dependencies"
            return 1
        fi
    done
    DETAIL="no Python here imports torch (tried ${candidates[*]}); install the project (pip install torch -e .) or"
    DETAIL+=" set PYTHON to an interpreter that has it"
    return 1
}
interpreter || { echo "FAIL torch: $DETAIL"; FAILED=1; finish; }
if ! FACTS=$("$PY" scripts/gpu_smoke_checks.py probe "$DEVICE" 2>&1); then
    echo "FAIL $DEVICE: $(tail -n 1 <<<"$FACTS")"
    FAILED=1
    finish
fi
eval "$FACTS"  # TORCH, GPUS, GPU_NAME, and BF16 / FP16: empty where the device runs them, else why not

WORK=$(mktemp -d "${SMOKE_DIR:-${TMPDIR:-/tmp}}/gpu-smoke.XXXXXX") || exit 2
LOGS=$WORK/logs
mkdir -p "$LOGS" "$WORK/corpus"
echo "device $DEVICE${GPU_NAME:+ ($GPUS × $GPU_NAME)}, torch $TORCH, python $PY, work in $WORK"

# A slice of the shipped PTB: its English words give agreement scoring something to score, and 66k training
# tokens (vocabulary 5,957) tokenize once into the shared cache and validate in a blink.
head -n 3000 data/ptb/ptb.train.txt >"$WORK/corpus/train.txt" &&
    head -n 200 data/ptb/ptb.valid.txt >"$WORK/corpus/valid.txt" &&
    head -n 200 data/ptb/ptb.test.txt >"$WORK/corpus/test.txt" ||
    { echo "FAIL corpus: cannot read data/ptb (run from a full checkout)"; FAILED=1; finish; }
BATCH=20
BASE=(--config configs/tiny.yaml "data.path=$WORK/corpus" "data.cache_dir=$WORK/cache" "train.batch_size=$BATCH"
      train.log_every_steps=10)
# For the resumed runs: dropout makes their results depend on the RNG state they get back.
DROPOUT=(model.num_layers=2 model.dropout=0.3)

# run_logged LOG LIMIT COMMAND...: COMMAND with stdout in LOG.out and stderr in LOG.err; when it fails, DETAIL
# says how, with its last words (the `error:` line or the exception) and where the log is.
run_logged() {
    local log=$LOGS/$1 limit=$2 code
    shift 2
    timeout "$limit" "$@" >"$log.out" 2>"$log.err"
    code=$?
    [ $code -eq 0 ] && return 0
    if [ $code -eq 124 ]; then DETAIL="timed out after $limit s"; else DETAIL="exit $code"; fi
    DETAIL+=": $({ grep -v '^[[:space:]]*$' "$log.err" || grep -v '^[[:space:]]*$' "$log.out"; } | tail -n 1)"
    DETAIL+=" (log $log.err)"
    return 1
}
lm() { run_logged "$1" $TIMEOUT "$PY" -m lstm_lm --threads 1 "${@:2}"; }
# torchrun_logged LOG PROCESSES ARGS...: `torchrun --standalone --nproc_per_node=PROCESSES ARGS...`.
torchrun_logged() {
    run_logged "$1" $(( 2 * TIMEOUT )) "$PY" -m torch.distributed.run --standalone --nproc_per_node="$2" "${@:3}"
}
# judge ARGS...: a verdict of scripts/gpu_smoke_checks.py, its last line in DETAIL.
judge() {
    local out code
    out=$("$PY" scripts/gpu_smoke_checks.py "$@" 2>&1)
    code=$?
    DETAIL=$(tail -n 1 <<<"$out")
    return $code
}
# resumed_at LOG: the resumed command said it went on from step HALF (a run that started over would end with the
# same weights as the uninterrupted one too, and pass the comparison for the wrong reason).
resumed_at() {
    grep -q "^resuming .* step $HALF\$" "$LOGS/$1.out" && return 0
    DETAIL="did not resume at step $HALF: $(grep -m 1 '^resuming' "$LOGS/$1.out" || echo 'no "resuming" line')"
    return 1
}

# train_run NAME STEPS OVERRIDES...: a tiny run into $WORK/NAME on the device under test, judged by its run.json.
train_run() {
    local name=$1 steps=$2
    shift 2
    lm "$name" train "${BASE[@]}" --out "$WORK/$name" --device "$DEVICE" "train.max_steps=$steps" "$@" &&
        judge summary "$WORK/$name" --steps "$steps" --device "$DEVICE"
}

# ---- precisions ----------------------------------------------------------------------------------------------------
check "train fp32" train_run fp32 $STEPS train.precision=fp32
check_unless "$FP16" "train fp16" train_run fp16 $STEPS train.precision=fp16
check_unless "$BF16" "train bf16" train_run bf16 $STEPS train.precision=bf16
check "train auto" train_run auto $STEPS train.precision=auto

# ---- cells (fp32 lstm is the run above), two layers with dropout between them ------------------------------------
for cell in lstm_explicit lstm_peephole lstm_coupled gru rnn_tanh rnn_relu; do
    check "cell $cell" train_run "cell-$cell" $STEPS "model.cell=$cell" model.num_layers=2 model.dropout=0.1
done

# ---- AWD-LSTM's regularizers and the adaptive softmax, in the precision a user would pick (auto) ----------------
# Tied 48-32 layers (the last one the embedding's size), every dropout, weight drop, AR/TAR, variable BPTT, and
# NT-ASGD validating every 2 steps with nonmono 1, so that weight averaging is likely to start within 20 steps.
awd_run() {
    train_run awd $STEPS train.precision=auto model.num_layers=2 "model.hidden_sizes=[48,32]" model.tie_weights=true \
        model.dropout_input=0.4 model.dropout_hidden=0.3 model.dropout_output=0.4 model.dropout_embedding=0.1 \
        model.weight_drop=0.5 train.ar_alpha=2 train.tar_beta=1 train.variable_bptt=true train.optimizer=nt_asgd \
        train.nonmono=1 train.eval_every_steps=2 train.lr=30 train.lr_schedule=constant train.loss_reduction=mean \
        train.clip=0.25 || return 1
    if grep -q '"event": "averaging"' "$WORK/awd/metrics.jsonl"; then
        DETAIL+="; NT-ASGD averaged"
    else
        DETAIL+="; NT-ASGD did not start averaging (validation kept improving)"
    fi
}
check "AWD regularizers" awd_run
check "adaptive softmax" train_run adaptive $STEPS train.precision=auto model.softmax=adaptive \
    "model.adaptive_cutoffs=[500,2000]"

# ---- evaluate, sample, agreement on the device ---------------------------------------------------------------------
# evaluate --json of the fp32 and auto runs, each against the test perplexity its training ended with.
evaluate_runs() {
    local run found=()
    for run in fp32 auto; do
        lm "evaluate-$run" evaluate "$WORK/$run" --json --device "$DEVICE" &&
            judge evaluate "$LOGS/evaluate-$run.out" "$WORK/$run" || { DETAIL="$run run: $DETAIL"; return 1; }
        found+=("$run run: $DETAIL")
    done
    DETAIL="${found[0]}; ${found[1]}"
}
check "evaluate --json" evaluate_runs

# The same seed twice must give the same text.
sample_twice() {
    lm sample-1 sample "$WORK/fp32" --tokens 20 --seed 1 --device "$DEVICE" &&
        lm sample-2 sample "$WORK/fp32" --tokens 20 --seed 1 --device "$DEVICE" || return 1
    local text
    text=$(tr -s '\n' ' ' <"$LOGS/sample-1.out")
    if [ -z "${text// /}" ]; then
        DETAIL="no text on stdout"
        return 1
    fi
    if ! cmp -s "$LOGS/sample-1.out" "$LOGS/sample-2.out"; then
        DETAIL="seed 1 gave two texts: $LOGS/sample-1.out and sample-2.out"
        return 1
    fi
    DETAIL="seed 1 twice, the same text: \"${text:0:70}...\""
}
check "sample" sample_twice

agreement_run() {
    lm agreement eval-agreement "$WORK/fp32" --output "$WORK/agreement.json" --device "$DEVICE" &&
        judge agreement "$WORK/agreement.json"
}
check "eval-agreement" agreement_run

# ---- resume ---------------------------------------------------------------------------------------------------------
# STEPS uninterrupted against HALF, then --resume to STEPS: the final weights (checkpoint.pt) must match, bit for bit
# on the CPU (the README's promise), within a tolerance on CUDA, where cuDNN need not sum in the same order. Dropout
# is on, so that the restored RNG state matters. The stopped run is kept for the CPU resume below.
resume_run() {
    local precision=$1 exact=()
    [ "$DEVICE" = cpu ] && exact=(--exact)
    train_run "whole-$precision" $STEPS "train.precision=$precision" "${DROPOUT[@]}" &&
        train_run "half-$precision" $HALF "train.precision=$precision" "${DROPOUT[@]}" || return 1
    cp -r "$WORK/half-$precision" "$WORK/stopped-$precision"
    lm "resume-$precision" train --resume "$WORK/half-$precision" --device "$DEVICE" "train.max_steps=$STEPS" &&
        resumed_at "resume-$precision" &&
        judge compare "$WORK/whole-$precision" "$WORK/half-$precision" "${exact[@]}"
}
check "resume fp32 on $DEVICE" resume_run fp32
check_unless "$FP16" "resume fp16 on $DEVICE" resume_run fp16

# The run stopped on the device goes on on the CPU: its checkpoint's tensors, optimizer state and hidden state were
# on the device. Where the dropout masks come from changes with the device, so only that it continues is checked.
cpu_resume() {
    lm resume-cpu train --resume "$WORK/stopped-fp32" --device cpu "train.max_steps=$STEPS" &&
        resumed_at resume-cpu && judge summary "$WORK/stopped-fp32" --steps $STEPS --device cpu
}
check "resume on cpu" cpu_resume

# ---- several GPUs under torchrun --------------------------------------------------------------------------------
ddp_train() {  # NAME STEPS: a two-process run
    torchrun_logged "$1" 2 -m lstm_lm --threads 1 train "${BASE[@]}" --out "$WORK/$1" --device "$DEVICE" \
        "train.max_steps=$2" "${DROPOUT[@]}" &&
        judge summary "$WORK/$1" --steps "$2" --device "$DEVICE" --processes 2
}
# Two processes stopped at HALF and resumed by two: each rank must get back its own RNG and hidden state, so the
# result matches the uninterrupted two-process run as closely as a single-GPU resume does.
ddp_resume() {
    ddp_train ddp-half $HALF || return 1
    cp -r "$WORK/ddp-half" "$WORK/ddp-fewer"
    cp -r "$WORK/ddp-half" "$WORK/ddp-masks"
    torchrun_logged ddp-resume 2 -m lstm_lm --threads 1 train --resume "$WORK/ddp-half" --device "$DEVICE" \
        "train.max_steps=$STEPS" && resumed_at ddp-resume && judge compare "$WORK/ddp" "$WORK/ddp-half"
}
# The same stopped run resumed by one process of twice the batch, which reads the columns both ranks read, with the
# hidden states they left (README: keeping processes × batch_size continues the text where it was). It sees one GPU
# only, as a smaller machine would: the checkpoint must not need the GPUs it was written on.
ddp_fewer() {
    CUDA_VISIBLE_DEVICES=0 torchrun_logged ddp-fewer-resume 1 -m lstm_lm --threads 1 train --resume "$WORK/ddp-fewer" \
        --device "$DEVICE" "train.max_steps=$STEPS" "train.batch_size=$(( 2 * BATCH ))" &&
        resumed_at ddp-fewer-resume && judge summary "$WORK/ddp-fewer" --steps $STEPS --device "$DEVICE"
}
# See masks() in scripts/gpu_smoke_checks.py: both ranks resume the stopped run and run the same tokens in training
# mode; their losses can differ only through their dropout masks.
ddp_masks() {
    torchrun_logged ddp-masks-check 2 scripts/gpu_smoke_checks.py masks "$WORK/ddp-masks" "$DEVICE"
    local code=$?
    [ -s "$LOGS/ddp-masks-check.out" ] && DETAIL=$(tail -n 1 "$LOGS/ddp-masks-check.out")
    return $code
}
MULTI="torchrun over NCCL, resume with fewer GPUs, ranks' dropout masks after a resume"
if [ "$DEVICE" != cuda ]; then
    skip "several GPUs" "--device cpu ($MULTI need 2 or more GPUs)"
elif [ "$GPUS" -lt 2 ]; then
    skip "several GPUs" "$GPUS GPU here ($MULTI need 2 or more)"
else
    check "torchrun nccl, 2 GPUs" ddp_train ddp $STEPS
    check "torchrun resume on 2 GPUs" ddp_resume
    check "torchrun resume on 1 GPU" ddp_fewer
    check "ranks' dropout masks after resume" ddp_masks
fi

finish
