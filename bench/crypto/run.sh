#!/usr/bin/env bash
# Secretbox throughput: the crypto_secretbox crate (baseline) and libsodium versus weft-crypto's SIMD
# XSalsa20-Poly1305, sealing and opening 64 KiB and 1400-byte buffers, in one run.
#
#   bench/crypto/run.sh [--mib N] [--repeats N] [--sizes A,B,...] [--impls LIST]
#     --mib N        bytes processed per measurement, in MiB (default 256)
#     --repeats N    measurements per case, the fastest is kept (default 3)
#     --sizes LIST   buffer sizes in bytes (default 65536,1400)
#     --impls LIST   what to time besides the baseline, of libsodium,ifma,avx512,avx2,scalar
#                    (default: all; weft backends the CPU lacks are skipped)
#
# Builds in release mode (CARGO_TARGET_DIR if set, else bench/crypto/target). No root needed.
set -euo pipefail
cd "$(dirname "$0")"
case ${1:-} in -h|--help) sed -n 2,11p "$0"; exit 0 ;; esac
if ! build_log=$(cargo build --release --locked 2>&1); then
  echo "$build_log" >&2; exit 1
fi
exec "${CARGO_TARGET_DIR:-target}/release/weft-bench-crypto" "$@"
