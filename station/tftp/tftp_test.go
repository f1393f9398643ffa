package tftp

import (
	"bytes"
	"context"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// start serves dir on a loopback port and returns the port.
func start(t *testing.T, dir string) int {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{Root: os.DirFS(dir), Logf: t.Logf}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, conn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
	})
	return conn.LocalAddr().(*net.UDPAddr).Port
}

func need(t *testing.T, prog, pkg string) {
	if _, err := exec.LookPath(prog); err != nil {
		t.Fatalf("%s not found: Debian package %s (scripts/install-deps.sh installs it)", prog, pkg)
	}
}

func files(t *testing.T) (string, map[string][]byte) {
	dir := t.TempDir()
	want := map[string][]byte{
		"empty":          {},
		"one-block":      bytes.Repeat([]byte{7}, 512), // exactly one block: an empty block must follow
		"small.txt":      []byte("hello from the station\n"),
		"boot/ipxe.efi":  make([]byte, 1<<20+123),
		"exact-1468.bin": make([]byte, 1468*3),
	}
	rand.Read(want["boot/ipxe.efi"])
	rand.Read(want["exact-1468.bin"])
	for name, b := range want {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, want
}

// TestTFTPHPA fetches files with tftp-hpa's client (RFC 1350, no options).
func TestTFTPHPA(t *testing.T) {
	need(t, "tftp", "tftp-hpa")
	dir, want := files(t)
	port := start(t, dir)
	out := t.TempDir()
	for name, b := range want {
		local := filepath.Join(out, strings.ReplaceAll(name, "/", "_"))
		cmd := exec.Command("tftp", "-4", "-m", "binary", "127.0.0.1", strconv.Itoa(port), "-c", "get", name, local)
		if o, err := cmd.CombinedOutput(); err != nil || len(o) > 0 {
			t.Errorf("tftp get %s: %v %s", name, err, o)
			continue
		}
		got, err := os.ReadFile(local)
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("tftp get %s: %d bytes, %v; want the file's %d bytes", name, len(got), err, len(b))
		}
	}
}

// TestCurlOptions fetches with curl, which negotiates blksize and tsize
// (RFC 2347, 2348, 2349).
func TestCurlOptions(t *testing.T) {
	need(t, "curl", "curl")
	dir, want := files(t)
	port := start(t, dir)
	for _, blk := range []string{"512", "1468", "8"} {
		for _, name := range []string{"boot/ipxe.efi", "exact-1468.bin", "empty", "small.txt"} {
			if blk == "8" && name == "boot/ipxe.efi" {
				continue // 131 k round trips: slow, proves nothing more
			}
			cmd := exec.Command("curl", "-sS", "--fail", "--tftp-blksize", blk, "-o", "-",
				"tftp://127.0.0.1:"+strconv.Itoa(port)+"/"+name)
			got, err := cmd.Output()
			if err != nil {
				t.Errorf("curl blksize %s %s: %v", blk, name, err)
				continue
			}
			if !bytes.Equal(got, want[name]) {
				t.Errorf("curl blksize %s %s: %d bytes, want %d equal ones", blk, name, len(got), len(want[name]))
			}
		}
	}
}

// TestRefusals: a file outside the root, a missing file and a write all
// get a TFTP error, seen by a real client.
func TestRefusals(t *testing.T) {
	need(t, "tftp", "tftp-hpa")
	dir, _ := files(t)
	secret := filepath.Join(filepath.Dir(dir), "secret")
	os.WriteFile(secret, []byte("x"), 0o644)
	port := start(t, dir)
	out := t.TempDir()
	for _, tc := range []struct{ cmd, want string }{
		{"get ../secret", "Error code 2"},
		{"get /../secret", "Error code 2"},
		{"get missing", "Error code 1"},
		{"get boot", "Error code 1"}, // a directory
		{"put " + secret + " up", "Error code 2"},
	} {
		args := append([]string{"-4", "-m", "binary", "127.0.0.1", strconv.Itoa(port), "-c"}, strings.Fields(tc.cmd)...)
		if strings.HasPrefix(tc.cmd, "get") {
			args = append(args, filepath.Join(out, "x"))
		}
		c := exec.Command("tftp", args...)
		c.Dir = out
		o, _ := c.CombinedOutput()
		if !strings.Contains(string(o), tc.want) {
			t.Errorf("tftp %s: %q, want %q", tc.cmd, o, tc.want)
		}
	}
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    *request
		wantErr bool
	}{
		{in: "\x00\x01file\x00octet\x00", want: &request{op: 1, file: "file", mode: "octet", blksize: 512}},
		{in: "\x00\x01f\x00NETASCII\x00blksize\x001468\x00tsize\x000\x00x\x00y\x00",
			want: &request{op: 1, file: "f", mode: "netascii", blksize: 1468, wantSize: true, oack: []string{"blksize", "1468", "tsize", ""}}},
		{in: "\x00\x01f\x00octet\x00blksize\x00999999\x00", want: &request{op: 1, file: "f", mode: "octet", blksize: maxBlock, oack: []string{"blksize", "65464"}}},
		{in: "\x00\x01f\x00octet\x00blksize\x004\x00", wantErr: true},
		{in: "\x00\x01f\x00octet\x00timeout\x000\x00", wantErr: true},
		{in: "\x00\x01f\x00mail\x00", wantErr: true},
		{in: "\x00\x01f\x00octet", wantErr: true},
		{in: "\x00\x01", wantErr: true},
		{in: "\x00\x01f\x00octet\x00blksize\x00", wantErr: true},
	} {
		got, err := parseRequest([]byte(tc.in))
		if (err != nil) != tc.wantErr {
			t.Errorf("parseRequest(%q) error = %v, want error %v", tc.in, err, tc.wantErr)
			continue
		}
		if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(request{})); err == nil && diff != "" {
			t.Errorf("parseRequest(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestFSName(t *testing.T) {
	root := fstest.MapFS{"a/b": {Data: []byte("x")}}
	_ = root
	for in, want := range map[string]string{"/a/b": "a/b", "a/b": "a/b", "./a/b": "a/b", "../x": "", "a/../../x": "", "/": "", "a//b": ""} {
		got, ok := fsName(in)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("fsName(%q) = %q, want %q", in, got, want)
		}
	}
	_ = time.Second
}
