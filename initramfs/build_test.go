package initramfs

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/u-root/mkuimage/cpio"
)

// readImage returns the records of an uncompressed image, by name.
func readImage(t *testing.T, path string) map[string]cpio.Record {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	recs, err := cpio.ReadAllRecords(cpio.Newc.Reader(f))
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	m := map[string]cpio.Record{}
	for _, r := range recs {
		m[r.Name] = r
	}
	return m
}

func content(t *testing.T, r cpio.Record) string {
	t.Helper()
	b, err := io.ReadAll(io.NewSectionReader(r.ReaderAt, 0, int64(r.FileSize)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestBuild builds an image around a tiny Go command and reads it back.
func TestBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build; skipped with -short")
	}
	root, kver := fakeKernel(t)
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	board := write("board.json", `{"modules":["virtio_blk"]}`)
	write("keys/a.pub", "key a")
	write("keys/b.pub", "key b")
	single := write("c.pub", "key c")
	certs := write("ca.crt", "-----BEGIN CERTIFICATE-----\n")
	extra := write("extra/motd", "hi\n")

	out := filepath.Join(dir, "out", "rescue.cpio")
	res, err := Build(context.Background(), Options{
		Init:         "./testdata/hello",
		KernelDir:    root,
		Modules:      []string{"virtio_blk", "nls_iso8859-1", "zstd_decompress"},
		BoardProfile: board,
		Keys:         []string{filepath.Join(dir, "keys"), single},
		CACerts:      certs,
		Files:        []File{{Src: extra, Dst: "/etc/motd"}},
		Format:       CPIO,
		Output:       out,
		Logf:         t.Logf,
	})
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	t.Logf("%s", res)

	recs := readImage(t, out)
	init, ok := recs["init"]
	if !ok {
		t.Fatalf("no /init in the image")
	}
	if init.Mode&0o111 == 0 {
		t.Errorf("/init mode %o, want executable", init.Mode)
	}
	e, err := elf.NewFile(io.NewSectionReader(init.ReaderAt, 0, int64(init.FileSize)))
	if err != nil {
		t.Fatalf("/init is not ELF: %v", err)
	}
	if e.Machine != elf.EM_X86_64 {
		t.Errorf("/init machine %v, want x86-64", e.Machine)
	}
	for _, p := range e.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("/init has an interpreter: want a static binary (CGO_ENABLED=0)")
		}
	}
	if e.Section(".symtab") != nil {
		t.Errorf("/init has a symbol table: want -ldflags=-s")
	}
	if res.InitSize != int64(init.FileSize) {
		t.Errorf("Result.InitSize = %d, want %d", res.InitSize, init.FileSize)
	}

	con, ok := recs["dev/console"]
	if !ok || con.Mode&cpio.S_IFMT != cpio.S_IFCHR || con.Rmajor != 5 || con.Rminor != 1 {
		t.Errorf("dev/console = %+v, want char device 5,1", con.Info)
	}
	modDir := "lib/modules/" + kver + "/"
	for name, want := range map[string]string{
		"etc/lifeboat/board.json":           `{"modules":["virtio_blk"]}`,
		"etc/lifeboat/keys/a.pub":           "key a",
		"etc/lifeboat/keys/b.pub":           "key b",
		"etc/lifeboat/keys/c.pub":           "key c",
		"etc/ssl/certs/ca-certificates.crt": "-----BEGIN CERTIFICATE-----\n",
		"etc/motd":                          "hi\n",
		modDir + "modules.dep": `kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/nls/nls_iso8859_1.ko:
`,
		modDir + "modules.builtin":                 "kernel/lib/zstd/zstd_decompress.ko\nkernel/drivers/tty/serial/8250/8250_core.ko\n",
		modDir + "kernel/fs/nls/nls_iso8859_1.ko":  "\x7fELF module kernel/fs/nls/nls_iso8859-1.ko",
		modDir + "kernel/drivers/virtio/virtio.ko": "\x7fELF module kernel/drivers/virtio/virtio.ko",
	} {
		r, ok := recs[name]
		if !ok {
			t.Errorf("image lacks %s", name)
			continue
		}
		if got := content(t, r); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var kos []string
	for name := range recs {
		if strings.HasSuffix(name, ".ko") {
			kos = append(kos, strings.TrimPrefix(name, modDir))
		}
	}
	slices.Sort(kos)
	if diff := cmp.Diff(res.Modules, kos); diff != "" {
		t.Errorf("modules in the image differ from Result.Modules (-result +image):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"zstd_decompress"}, res.Builtin); diff != "" {
		t.Errorf("Result.Builtin mismatch (-want +got):\n%s", diff)
	}
	for _, name := range []string{"bin/sh", "bbin/bb", "bbin/gosh"} {
		if _, ok := recs[name]; ok {
			t.Errorf("image has %s without Debug", name)
		}
	}
	for _, d := range []string{"proc", "sys", "dev", "run", "tmp"} {
		if r, ok := recs[d]; !ok || r.Mode&cpio.S_IFMT != cpio.S_IFDIR {
			t.Errorf("image lacks directory /%s", d)
		}
	}
	st, err := os.Stat(out)
	if err != nil || st.Size() != res.Size || res.CPIOSize != res.Size {
		t.Errorf("Result sizes %d/%d, file %v, %v: want all equal for cpio", res.Size, res.CPIOSize, st, err)
	}
	if res.ModulesSize == 0 || res.ModulesCompressedSize == 0 {
		t.Errorf("Result modules sizes %d, %d, want both set", res.ModulesSize, res.ModulesCompressedSize)
	}

	// The same with xz: the file is an xz stream of the same archive.
	outXZ := filepath.Join(dir, "out", "rescue.cpio.xz")
	resXZ, err := Build(context.Background(), Options{Init: "./testdata/hello", Format: XZ, Output: outXZ})
	if err != nil {
		t.Fatalf("Build(xz) = %v", err)
	}
	b, err := os.ReadFile(outXZ)
	if err != nil {
		t.Fatal(err)
	}
	plain := decompress(t, XZ, b)
	if int64(len(plain)) != resXZ.CPIOSize || !bytes.HasPrefix(plain, []byte("070701")) {
		t.Errorf("xz image unpacks to %d bytes starting %q, want a %d-byte newc cpio", len(plain), plain[:6], resXZ.CPIOSize)
	}
}

func TestBuildErrors(t *testing.T) {
	root, _ := fakeKernel(t)
	out := filepath.Join(t.TempDir(), "x")
	for _, tt := range []struct {
		name string
		o    Options
		want error
	}{
		{"no init", Options{Output: out}, ErrNoInit},
		{"no output", Options{Init: "./testdata/hello"}, ErrNoOutput},
		{"bad format", Options{Init: "./testdata/hello", Output: out, Format: "zip"}, ErrFormat},
		{"modules without kernel", Options{Init: "./testdata/hello", Output: out, Modules: []string{"x"}}, ErrNoKernel},
		{"unknown module", Options{Init: "./testdata/hello", Output: out, KernelDir: root, Modules: []string{"nandsim"}}, ErrModuleNotFound},
		{"missing key", Options{Init: "./testdata/hello", Output: out, Keys: []string{filepath.Join(root, "none")}}, os.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Build(context.Background(), tt.o); !errors.Is(err, tt.want) {
				t.Errorf("Build = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestBuildGoError(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build; skipped with -short")
	}
	dir := t.TempDir()
	_, err := Build(context.Background(), Options{Init: "./testdata/nonexistent", Output: filepath.Join(dir, "x")})
	if err == nil {
		t.Fatal("Build(nonexistent package) = nil, want an error")
	}
	if _, statErr := os.Stat(filepath.Join(dir, "x")); statErr == nil {
		t.Errorf("Build left an output after failing")
	}
}
