#!/usr/bin/env bash
# Build the C++ reference greeter (row 7) from proto/acme/greeter/v1/greeter.proto with
# Debian's protoc + grpc_cpp_plugin + libgrpc++-dev (pkg-config grpc++ protobuf).
#
#   bash bench/cpp/build.sh OUT_DIR      -> OUT_DIR/greeter_server
#
# Exits non-zero with one line "missing: ..." or "failed: ..." on stderr when it cannot build.
set -euo pipefail

out=${1:?usage: build.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)

for tool in protoc grpc_cpp_plugin g++ pkg-config; do
    command -v "$tool" >/dev/null || { echo "missing: $tool" >&2; exit 3; }
done
pkg-config --exists grpc++ protobuf || { echo "missing: pkg-config grpc++ protobuf (libgrpc++-dev)" >&2; exit 3; }

mkdir -p "$out/gen"
protoc -I "$repo/proto" \
    --cpp_out="$out/gen" \
    --grpc_out="$out/gen" \
    --plugin=protoc-gen-grpc="$(command -v grpc_cpp_plugin)" \
    acme/greeter/v1/greeter.proto

read -r -a cflags <<<"$(pkg-config --cflags grpc++ protobuf)"
read -r -a libs <<<"$(pkg-config --libs grpc++ protobuf)"
sources=("$out/gen/acme/greeter/v1/greeter.pb.cc" "$out/gen/acme/greeter/v1/greeter.grpc.pb.cc" "$here/greeter_server.cc")

# One compiler per source, in parallel: the generated code dominates the build time.
pids=()
for source in "${sources[@]}"; do
    g++ -std=c++17 -O2 -DNDEBUG -I "$out/gen" "${cflags[@]}" -c "$source" \
        -o "$out/$(basename "$source" .cc).o" &
    pids+=("$!")
done
for pid in "${pids[@]}"; do
    wait "$pid" || { echo "failed: g++ could not compile the sources" >&2; exit 4; }
done
g++ -o "$out/greeter_server.tmp" "$out"/*.o "${libs[@]}" -lpthread \
    || { echo "failed: g++ could not link against grpc++" >&2; exit 4; }
mv "$out/greeter_server.tmp" "$out/greeter_server"
echo "built $out/greeter_server"
