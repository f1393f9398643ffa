package bootenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestBlockDevice puts a redundant env at the end of a loop device, with
// negative offsets as fw_env.config allows for block devices, and checks it
// against fw_printenv.
func TestBlockDevice(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loop devices need root")
	}
	if _, err := exec.LookPath("losetup"); err != nil {
		t.Skip("losetup not installed (Debian package mount)")
	}
	img := fileOf(t, 1<<20, 0)
	out, err := exec.Command("losetup", "--find", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("losetup: %v: %s", err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", dev).Run() })

	cfgPath := filepath.Join(t.TempDir(), "fw_env.config")
	cfg := fmt.Sprintf("%s -0x4000 0x2000\n%s -0x2000 0x2000\n", dev, dev)
	os.WriteFile(cfgPath, []byte(cfg), 0o644)
	s := openFile(t, Config{FWEnvConfig: cfgPath})
	if got := s.copies[0].Offset; got != 1<<20-0x4000 {
		t.Errorf("copy 0 at %#x, want %#x", got, 1<<20-0x4000)
	}
	provision(t, s, map[string]string{"bootcount": "0"})
	for i := range 3 {
		if err := s.Apply(map[string]string{"bootcount": fmt.Sprint(i + 1)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"bootcount": "3"}
	if diff := cmp.Diff(want, mustLoad(t, s).Vars()); diff != "" {
		t.Errorf("Load().Vars() (-want +got):\n%s", diff)
	}
	if _, err := exec.LookPath("fw_printenv"); err == nil {
		if diff := cmp.Diff(want, printenv(t, cfgPath)); diff != "" {
			t.Errorf("fw_printenv (-want +got):\n%s", diff)
		}
	}
}
