#!/usr/bin/env bash
# Profile-guided release build of xensim: the binary `xensim bench` numbers are quoted for.
#
#   scripts/pgo-build.sh            # → target/pgo/use/release/xensim
#
# 1. An instrumented build (`-Cprofile-generate`) into target/pgo/gen, with the same release
#    profile as step 3 (a profile taken from a build without fat LTO measured no faster than
#    no profile at all: its functions do not match the LTO build's).
# 2. The training runs: the three scheduler reference scenarios (cut from 10 s to 2 s of
#    virtual time: the same code paths, a fifth of the wait) and io-64-moderate under
#    `xensim bench`, then every bundled scenario under `xensim run`.
# 3. `llvm-profdata merge`, then the release build (the workspace's profile: fat LTO, one
#    codegen unit) with `-Cprofile-use` into target/pgo/use.
# 4. The check: every bundled scenario, run by the plain release binary (target/release,
#    built first if missing) and by the profile-guided one, ends with the hash in
#    golden/<scenario>.hash. Optimisation (LTO, profile-guided layout, inlining and branch
#    order) must never change what the program computes; CI runs this script for that check.
#
# Needs the rustup component llvm-tools (for llvm-profdata; installed here if missing).
# Plain `cargo build --release` stays the everyday build; this one is for benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/pgo
profiles="$PWD/$out/profiles"
host="$(rustc -vV | sed -n 's/^host: //p')"
profdata_tool="$(rustc --print sysroot)/lib/rustlib/$host/bin/llvm-profdata"
if [ ! -x "$profdata_tool" ]; then
    rustup component add llvm-tools
fi

step() { printf '\n=== pgo: %s ===\n' "$*"; }

step "instrumented build"
rm -rf "$profiles"
mkdir -p "$profiles"
RUSTFLAGS="-Cprofile-generate=$profiles" cargo build --release -p xensim --target-dir "$out/gen"

step "training runs"
trainer="$out/gen/release/xensim"
mkdir -p "$out/train"
for name in bench-64x512 bench-64x512-rtds bench-64x64-null; do
    sed 's/^duration = "10s"$/duration = "2s"/' "scenarios/bench/$name.toml" >"$out/train/$name.toml"
done
"$trainer" bench "$out"/train/*.toml scenarios/perf/io-64-moderate.toml
for scenario in scenarios/*.toml; do
    "$trainer" run "$scenario" >/dev/null
done

step "merge and profile-guided build"
"$profdata_tool" merge -o "$out/merged.profdata" "$profiles"
RUSTFLAGS="-Cprofile-use=$PWD/$out/merged.profdata" \
    cargo build --release -p xensim --target-dir "$out/use"

step "run hashes against golden/"
cargo build --release -p xensim
for binary in target/release/xensim "$out/use/release/xensim"; do
    checked=0
    for scenario in scenarios/*.toml; do
        name="$(basename "$scenario" .toml)"
        golden="golden/$name.hash"
        [ -f "$golden" ] || continue
        hash="$("$binary" run "$scenario" | sed -n 's/^run hash: //p')"
        if [ "$hash" != "$(cat "$golden")" ]; then
            echo "pgo: $binary $scenario: run hash $hash, golden/$name.hash has $(cat "$golden")" >&2
            exit 1
        fi
        checked=$((checked + 1))
    done
    [ "$checked" -gt 0 ] || { echo "pgo: no scenario with a golden hash" >&2; exit 1; }
    echo "pgo: $binary: $checked run hashes equal golden/"
done
echo "pgo: the profile-guided binary is $out/use/release/xensim"
