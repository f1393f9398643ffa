#!/usr/bin/env bash
# How many bytes the recovery page (package webui: server, page, sign-in,
# events) and the mDNS responder (package mdns) add to the rescue's /init:
# cmd/lifeboat is built as the rescue image builds it (static, GOAMD64=v1,
# -trimpath, -s -w, nethttpomithttp2) without them and with them linked in
# as the rescue will call them, and each binary is compressed as the image
# is (xz --x86, preset 6, 8 MiB dictionary, CRC32). The packages are linked
# in through a build overlay (go build -overlay): nothing in the tree
# changes. docs/BENCHMARKS.md has the numbers.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH=/usr/local/go/bin:$PATH
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# probe writes a file for cmd/lifeboat that calls what the rescue will
# call, behind a condition the linker cannot decide, so nothing of it is
# dropped as dead code, and nothing of it runs.
probe() {
	local name=$1 imports=$2 body=$3
	cat >"$tmp/$name.go" <<EOF
package main

import (
	"context"
	"net/netip"
	"os"

$imports
)

var _ = netip.Addr{}

func init() {
	if os.Getenv("LIFEBOAT_SIZE_PROBE") != "$name" {
		return
	}
	ctx := context.Background()
	_ = ctx
$body
}
EOF
	printf '{"Replace": {"%s": "%s"}}' "$root/cmd/lifeboat/zz_size_probe.go" "$tmp/$name.go" >"$tmp/$name.json"
}

web_imports='	"github.com/lifeboat-updater/lifeboat/install"
	"github.com/lifeboat-updater/lifeboat/webui"'
web_body='	s, err := webui.New(webui.Config{Device: nil})
	if err != nil {
		return
	}
	s.Start(ctx, ":80")
	s.Announce([]netip.Addr{}, "")
	s.StatusChanged()
	var obs install.Observer = s.Observe
	obs(install.Event{})
	s.Close()'
mdns_imports='	"github.com/lifeboat-updater/lifeboat/mdns"'
mdns_body='	r, err := mdns.Start(ctx, mdns.Config{Name: mdns.HostName("b", mdns.Serial("/"))})
	if err == nil {
		r.Close()
	}'

probe base '' ''
probe webui "$web_imports" "$web_body"
probe mdns "$mdns_imports" "$mdns_body"
probe both "$web_imports
$mdns_imports" "$web_body
$mdns_body"

xzsize() {
	xz --check=crc32 --x86 --lzma2=preset=6,dict=8MiB --stdout --threads=1 "$1" | wc -c
}

printf '%-8s %12s %12s %12s %12s\n' variant bytes xz "+bytes" "+xz"
base_raw=0 base_xz=0
for v in base webui mdns both; do
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOAMD64=v1 go build -trimpath \
		-ldflags="-s -w -buildid=" -tags nethttpomithttp2 \
		-overlay "$tmp/$v.json" -o "$tmp/lifeboat-$v" ./cmd/lifeboat
	raw=$(stat -c %s "$tmp/lifeboat-$v")
	x=$(xzsize "$tmp/lifeboat-$v")
	if [ "$v" = base ]; then base_raw=$raw base_xz=$x; fi
	printf '%-8s %12d %12d %12d %12d\n' "$v" "$raw" "$x" $((raw - base_raw)) $((x - base_xz))
done
page=0
for f in webui/page/*; do page=$((page + $(stat -c %s "$f"))); done
printf 'page files (webui/page): %d bytes, %d bytes xz\n' "$page" "$(cat webui/page/* | xz --check=crc32 --lzma2=preset=6 --stdout | wc -c)"
