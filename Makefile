# Lifeboat. `make demo` runs the main job, `make test` runs every test; both
# install what they need first (Debian packages, Go modules, the test kernel).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS := -buildvcs=false
CACHE ?= $(CURDIR)/.cache
OUT ?= $(CURDIR)/out
BOARD ?= qemu-x86_64
export LIFEBOAT_CACHE := $(CACHE)

.PHONY: all deps kernel build image demo test unit vmtest bench fuzz vet clean

all: build

deps:
	@scripts/install-deps.sh

kernel: deps
	@scripts/fetch-kernel.sh $(CACHE)/kernel >/dev/null

# The rescue initramfs for BOARD (xz and lz4) and the kernel to boot it
# with; the trust store is $(OUT)/keys (a key pair is made if missing).
image: deps kernel
	go run ./cmd/lifeboat-demo image -board $(BOARD) -out $(OUT) -keys $(OUT)/keys

# The main job: provision a blank virtual board from the rescue over HTTP,
# then boot it into production (cmd/lifeboat-demo; test/ runs the same).
demo: deps kernel
	go run ./cmd/lifeboat-demo -out $(OUT)/demo -keys $(OUT)/keys

build:
	@mkdir -p $(OUT)
	CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o $(OUT)/ ./cmd/...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	go vet ./...

# Every test: unit and host integration tests (loop devices need root), then the
# tests that boot the rescue image in QEMU.
test: deps kernel vet
	go test -count=1 -timeout 50m ./...

unit:
	go test -short -count=1 ./...

# Every parser of untrusted input, FUZZTIME each (go test runs one fuzzer
# at a time). New inputs that find a bug go in the package's testdata/fuzz.
FUZZTIME ?= 60s
fuzz:
	for f in FuzzReader FuzzReaderAt FuzzReadUnverified FuzzManifest FuzzSignatureBlock FuzzManifestIndex FuzzDecode FuzzSignedBundle; do \
		go test -run XXX -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./bundle || exit 1; done
	for f in FuzzParseSize FuzzSpec; do \
		go test -run XXX -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./internal/bundletool || exit 1; done
	go test -run XXX -fuzz '^FuzzResolve$$' -fuzztime $(FUZZTIME) ./partitions
	go test -run XXX -fuzz '^FuzzParseQuery$$' -fuzztime $(FUZZTIME) ./mdns

bench: deps build
	bench/run.sh

clean:
	rm -rf $(OUT)
