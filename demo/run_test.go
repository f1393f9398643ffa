package demo

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/lifeboat-updater/lifeboat/internal/vm"
)

func TestTimeline(t *testing.T) {
	var shown bytes.Buffer
	tl := NewTimeline(&shown)
	// Lines arrive in pieces; events and control sequences are not shown.
	for _, chunk := range []string{
		"lifeboat: reason: blank",
		" storage\r\nlifeboat-event: {\"event\":\"step-done\",\"written_bytes\":0,\"note\":\"table written\"}\n",
		"lifeboat-event: {\"event\":\"progress\",\"written_bytes\":4096}\n",
		"\x1b[2J\x1b[1;1HGNU GRUB\x1b[3;5H*production\x1b[0m   \n",
		"partial",
	} {
		if _, err := io.WriteString(tl, chunk); err != nil {
			t.Fatal(err)
		}
	}
	if diff := cmp.Diff("lifeboat: reason: blank storage\nGNU GRUB\n*production\n", shown.String()); diff != "" {
		t.Errorf("shown console mismatch (-want +got):\n%s", diff)
	}
	if n := len(tl.Lines()); n != 4 {
		t.Errorf("Lines() has %d lines, want 4 (the partial one not yet)", n)
	}
	if _, ok := tl.First(MarkBlank); !ok {
		t.Errorf("First(%q) not found", MarkBlank)
	}
	evs := tl.Events()
	if len(evs) != 2 || evs[0].Kind() != "step-done" || evs[1].Int("written_bytes") != 4096 {
		t.Errorf("Events() = %+v, want step-done then progress", evs)
	}
	if _, ok := tl.FirstWrite(); !ok {
		t.Errorf("FirstWrite() found nothing, want the table written")
	}
}

func TestServer(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("lifeboat"), 64<<10) // 512 KiB
	if err := os.WriteFile(filepath.Join(dir, "b.lfb"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Serve(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.GuestURL("b.lfb"), "http://10.0.2.2:"; !strings.HasPrefix(got, want) {
		t.Errorf("GuestURL = %q, want %s...", got, want)
	}
	get := func(rng string) (*http.Response, []byte, error) {
		req, _ := http.NewRequest(http.MethodGet, s.URL("b.lfb"), nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, b, err
	}

	resp, b, err := get("")
	if err != nil || resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Fatalf("GET = %v, %d bytes, %v; want 200 and the file", resp.Status, len(b), err)
	}
	resp, b, err = get("bytes=100-199")
	if err != nil || resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, data[100:200]) {
		t.Errorf("GET Range = %v, %d bytes, %v; want 206 and the range", resp.Status, len(b), err)
	}

	// A connection cut after 1000 bytes.
	s.CutAfter = func(*http.Request) int64 { return 1000 }
	_, b, err = get("")
	if err == nil || len(b) != 1000 {
		t.Errorf("cut GET: %d bytes, %v; want 1000 bytes and an error", len(b), err)
	}
	s.CutAfter = nil

	// A server that hangs after 1000 bytes: the client gives up.
	s.StallAfter = func(*http.Request) int64 { return 1000 }
	req, _ := http.NewRequest(http.MethodGet, s.URL("b.lfb"), nil)
	if resp, err := (&http.Client{Timeout: 300 * time.Millisecond}).Do(req); err == nil {
		b, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil || len(b) != 1000 {
			t.Errorf("stalled GET: %d bytes, %v; want 1000 and a timeout", len(b), err)
		}
	}
	s.StallAfter = nil

	// A slow server.
	s.BytesPerSecond = 2 << 20
	start := time.Now()
	if _, b, err = get(""); err != nil || len(b) != len(data) {
		t.Errorf("slow GET: %d bytes, %v", len(b), err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("512 KiB at 2 MiB/s took %v, want about 250ms", d)
	}
	s.BytesPerSecond = 0

	// A server that is down.
	s.Hook = func(*http.Request) error { return errors.New("down") }
	if resp, _, err = get(""); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET while down = %v, %v; want 503", resp, err)
	}

	// The stalled request is logged when its client has gone, which may
	// be after a later one.
	time.Sleep(100 * time.Millisecond)
	reqs := s.Requests()
	short := 0
	for _, r := range reqs {
		if r.Bytes == 1000 && r.Err != nil {
			short++
		}
	}
	if len(reqs) != 6 || reqs[1].Range != "bytes=100-199" || short != 2 {
		t.Errorf("Requests() = %v, want 6 with the range and two cut short", reqs)
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.Pub.Equal(k2.Pub) || !k1.Priv.Equal(k2.Priv) {
		t.Errorf("LoadOrCreateKey made a new key the second time")
	}
	if fi, err := os.Stat(filepath.Join(dir, "release.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("release.key: %v, %v; want mode 0600", fi, err)
	}
}

func TestVMOptions(t *testing.T) {
	p := &Prepared{Kernel: vm.Kernel{Vmlinuz: "/k/vmlinuz"}, Rescue: RescueImage{Path: "/r.cpio.xz"}}
	o := p.RescueVM("/d.img", "lifeboat.url=http://10.0.2.2:1/x")
	args, err := o.Args("")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{"-kernel /k/vmlinuz", "-initrd /r.cpio.xz", "-m 256", "-cpu max", "-accel tcg",
		"-nic user,model=virtio-net-pci", "console=ttyS0 panic=-1 lifeboat.url=http://10.0.2.2:1/x", "file=/d.img"} {
		if !strings.Contains(got, want) {
			t.Errorf("RescueVM args lack %q: %s", want, got)
		}
	}
	args, err = DeviceVM("/d.img").Args("")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(args, " "); strings.Contains(got, "-kernel") || !strings.Contains(got, "file=/d.img") {
		t.Errorf("DeviceVM args %s, want the disk and no -kernel", got)
	}
}
