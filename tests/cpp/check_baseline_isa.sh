#!/usr/bin/env bash
# The portable build's promise: every function of the core outside its AVX2 / AVX-512 variants
# (csrc/core/simd_variant.h) runs on any x86-64 CPU. So no AVX (VEX- or EVEX-encoded, mnemonic
# "v...") instruction may appear anywhere else in the library, including the standard-library
# code the variants instantiate.   usage: check_baseline_isa.sh librerender_core.a
set -euo pipefail
objdump -d --no-show-raw-insn -C "$1" | awk '
  /^[0-9a-f]+ <.*>:$/ { fn = $0 }
  /\tv[a-z0-9]+ / { if (fn ~ /::avx2::|::avx512::/) variant[fn] = 1; else bad[fn]++ }
  END {
    n = 0; for (f in variant) n++
    for (f in bad) { print "AVX instruction outside a SIMD variant:", bad[f], f; failed = 1 }
    if (n == 0) { print "no SIMD variant functions found: is this the core library?"; exit 1 }
    if (failed) exit 1
    print "ok: AVX instructions only in the", n, "functions of the AVX2 / AVX-512 variants"
  }'
