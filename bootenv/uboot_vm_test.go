package bootenv_test

// Real U-Boot as the reader of what Lifeboat writes: Debian's u-boot-qemu
// build for qemu_arm64 (2023.01 when written) boots in qemu-system-aarch64
// (Debian qemu-system-arm) with its environment in the second pflash bank,
// runs a boot-count decision from a bootcmd Lifeboat wrote, prints which
// branch it took and powers off. A boot takes about half a second with TCG.
//
// Layout U-Boot expects (CONFIG_ENV_IS_IN_FLASH in qemu_arm64_defconfig):
// pflash0 holds u-boot.bin, pflash1 the environment at offset 0, 0x40000
// bytes, a single copy (CRC32 little-endian, then the variables). Both banks
// are 64 MiB files. When the env comes from flash U-Boot does not merge its
// default variables in, so the env carries its own bootcmd. U-Boot never
// saves here (saveenv to pflash fails in QEMU 7.2): every change on flash is
// Lifeboat's.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lifeboat-updater/lifeboat/bootenv"
)

const (
	ubootQEMU     = "qemu-system-aarch64"
	ubootFirmware = "/usr/lib/u-boot/qemu_arm64/u-boot.bin"
	pflashSize    = 64 << 20
	ubootEnvSize  = 0x40000
	// ubootBootTimeout bounds one boot; a normal one takes well under 2 s.
	ubootBootTimeout = 20 * time.Second
)

// boardBootcmd decides like a board with a boot counter: an install in
// progress (lifeboat_txn set) or too many failed boots (bootcount above
// bootlimit) boot the rescue, anything else production. It prints what it
// read first, so a test sees the exact values U-Boot decoded, and powers off
// last, so QEMU exits once the decision is made.
const boardBootcmd = `echo LIFEBOAT-VARS bootcount=${bootcount} bootlimit=${bootlimit} txn=${lifeboat_txn}; ` +
	`if test -n "${lifeboat_txn}"; then echo LIFEBOAT-BRANCH rescue; ` +
	`elif test ${bootcount} -gt ${bootlimit}; then echo LIFEBOAT-BRANCH rescue; ` +
	`else echo LIFEBOAT-BRANCH production; fi; poweroff`

// boardVars are the variables every test env carries besides the counters.
func boardVars() map[string]string {
	return map[string]string{
		"bootcmd":   boardBootcmd,
		"bootdelay": "0",
		"stdin":     "serial",
		"stdout":    "serial",
		"stderr":    "serial",
	}
}

var (
	branchRE = regexp.MustCompile(`LIFEBOAT-BRANCH (\w+)`)
	varsRE   = regexp.MustCompile(`LIFEBOAT-VARS ([^\r\n]*)`)
)

// ubootBoard is one emulated board: firmware in pflash0, env in pflash1.
type ubootBoard struct {
	firmware string // u-boot.bin padded to a pflash bank
	envFlash string // pflash1, where Lifeboat writes
}

// newUBootBoard skips unless real U-Boot can run, and makes both banks.
func newUBootBoard(t *testing.T) *ubootBoard {
	t.Helper()
	if testing.Short() {
		t.Skip("boots U-Boot in QEMU; skipped with -short")
	}
	if _, err := exec.LookPath(ubootQEMU); err != nil {
		t.Skipf("%s not installed (Debian package qemu-system-arm)", ubootQEMU)
	}
	fw, err := os.ReadFile(ubootFirmware)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s missing (Debian package u-boot-qemu)", ubootFirmware)
	}
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b := &ubootBoard{
		firmware: filepath.Join(dir, "pflash0.bin"),
		envFlash: filepath.Join(dir, "pflash1.bin"),
	}
	// QEMU wants each bank to be exactly the size of the virt machine's
	// flash; sparse files cost nothing.
	if err := os.WriteFile(b.firmware, fw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(b.envFlash, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{b.firmware, b.envFlash} {
		if err := os.Truncate(p, pflashSize); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// open opens the env bank as an installer would, from a Config.
func (b *ubootBoard) open(t *testing.T) bootenv.Store {
	t.Helper()
	s, err := bootenv.Open(bootenv.Config{
		Type:   bootenv.UBoot,
		Copies: []bootenv.Location{{Path: b.envFlash, Offset: 0}},
		Size:   ubootEnvSize,
	})
	if err != nil {
		t.Fatalf("Open(%s) = %v", b.envFlash, err)
	}
	return s
}

// provision writes a new env holding vars, in the order given by names
// first and then the rest, as a factory image would.
func (b *ubootBoard) provision(t *testing.T, vars map[string]string, names ...string) {
	t.Helper()
	s := b.open(t)
	defer s.Close()
	env := s.New()
	for _, n := range names {
		if err := env.Set(n, vars[n]); err != nil {
			t.Fatalf("Set(%q) = %v", n, err)
		}
	}
	for n, v := range vars {
		if _, ok := env.Get(n); !ok {
			if err := env.Set(n, v); err != nil {
				t.Fatalf("Set(%q) = %v", n, err)
			}
		}
	}
	if err := s.Save(env); err != nil {
		t.Fatalf("Save = %v", err)
	}
}

// apply changes the env the way an install's env step does.
func (b *ubootBoard) apply(t *testing.T, set map[string]string, unset []string) {
	t.Helper()
	s := b.open(t)
	defer s.Close()
	if err := s.Apply(set, unset); err != nil {
		t.Fatalf("Apply(%v, %v) = %v", set, unset, err)
	}
}

// ubootRun is one running QEMU with its console.
type ubootRun struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	con   *ubootConsole
	done  chan struct{}
	err   error // QEMU's exit, valid once done is closed
	start time.Time
}

// boot starts QEMU on the board. It is killed when the test ends.
func (b *ubootBoard) boot(t *testing.T) *ubootRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ubootBootTimeout)
	// -nodefaults: no NIC, so the default env's network boot (in the
	// bad-CRC case) does not wait for DHCP; the console is the PL011 on
	// stdio and nothing else.
	cmd := exec.CommandContext(ctx, ubootQEMU,
		"-M", "virt", "-cpu", "cortex-a57", "-m", "256", "-accel", "tcg",
		"-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none",
		"-serial", "stdio",
		"-drive", "if=pflash,format=raw,readonly=on,file="+b.firmware,
		"-drive", "if=pflash,format=raw,file="+b.envFlash,
	)
	r := &ubootRun{t: t, cmd: cmd, con: newUBootConsole(), done: make(chan struct{})}
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = r.con, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	r.stdin = stdin
	r.start = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", ubootQEMU, err)
	}
	go func() {
		r.err = cmd.Wait()
		if r.err != nil && stderr.Len() > 0 {
			r.err = fmt.Errorf("%w: %s", r.err, strings.TrimSpace(stderr.String()))
		}
		r.con.close()
		close(r.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-r.done
		if t.Failed() {
			t.Logf("U-Boot console:\n%s", r.con.String())
		}
	})
	return r
}

// expect waits for s on the console, after the previous match.
func (r *ubootRun) expect(s string) {
	r.t.Helper()
	if err := r.con.expect(s, ubootBootTimeout); err != nil {
		r.t.Fatal(err)
	}
}

// send types a line on U-Boot's console.
func (r *ubootRun) send(line string) {
	r.t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\r"); err != nil {
		r.t.Fatalf("writing to U-Boot's console: %v", err)
	}
}

// wait waits for QEMU to exit by itself (U-Boot's poweroff) and returns
// the whole console.
func (r *ubootRun) wait() string {
	r.t.Helper()
	<-r.done
	if r.err != nil {
		r.t.Fatalf("%s exited: %v", ubootQEMU, r.err)
	}
	r.t.Logf("U-Boot booted and powered off in %v", time.Since(r.start).Round(time.Millisecond))
	return r.con.String()
}

// decision boots the board and returns the branch U-Boot took and the
// values it printed.
func (b *ubootBoard) decision(t *testing.T) (branch, vars string) {
	t.Helper()
	con := b.boot(t).wait()
	if !strings.Contains(con, "Loading Environment from Flash... OK") {
		t.Errorf("U-Boot did not load the env from flash; console:\n%s", con)
	}
	m := branchRE.FindAllStringSubmatch(con, -1)
	if len(m) != 1 {
		t.Fatalf("U-Boot printed %d LIFEBOAT-BRANCH lines, want 1; console:\n%s", len(m), con)
	}
	v := varsRE.FindStringSubmatch(con)
	if v == nil {
		t.Fatalf("U-Boot printed no LIFEBOAT-VARS line; console:\n%s", con)
	}
	return m[0][1], strings.TrimSpace(v[1])
}

func TestUBootVMBootCountDecision(t *testing.T) {
	board := newUBootBoard(t)
	tests := []struct {
		name       string
		set        map[string]string
		wantBranch string
		wantVars   string
	}{
		{
			name:       "under-limit",
			set:        map[string]string{"bootcount": "1", "bootlimit": "3"},
			wantBranch: "production",
			wantVars:   "bootcount=1 bootlimit=3 txn=",
		},
		{
			name:       "at-limit",
			set:        map[string]string{"bootcount": "3", "bootlimit": "3"},
			wantBranch: "production",
			wantVars:   "bootcount=3 bootlimit=3 txn=",
		},
		{
			name:       "over-limit",
			set:        map[string]string{"bootcount": "4", "bootlimit": "3"},
			wantBranch: "rescue",
			wantVars:   "bootcount=4 bootlimit=3 txn=",
		},
		{
			name:       "transaction-open",
			set:        map[string]string{"bootcount": "1", "bootlimit": "3", "lifeboat_txn": "1"},
			wantBranch: "rescue",
			wantVars:   "bootcount=1 bootlimit=3 txn=1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := boardVars()
			for k, v := range tt.set {
				vars[k] = v
			}
			board.provision(t, vars)
			branch, got := board.decision(t)
			if branch != tt.wantBranch || got != tt.wantVars {
				t.Errorf("U-Boot on %v: branch %s, vars %q; want %s, %q", tt.set, branch, got, tt.wantBranch, tt.wantVars)
			}
		})
	}
}

// TestUBootVMFullEnv fills the data area to its last byte with bootcmd and
// the counters last: U-Boot reads them only if Lifeboat's CRC covers the
// same 0x40000 - 4 bytes that U-Boot checks and the terminator lands where
// U-Boot looks for it.
func TestUBootVMFullEnv(t *testing.T) {
	board := newUBootBoard(t)
	vars := boardVars()
	vars["bootcount"], vars["bootlimit"] = "4", "3"
	used := 1 // the empty entry that ends the list
	for k, v := range vars {
		used += len(k) + 1 + len(v) + 1
	}
	const filler = "filler"
	room := ubootEnvSize - 4 - used - (len(filler) + 2)
	vars[filler] = strings.Repeat("f", room)
	// filler first, so every variable the bootcmd reads sits at the end.
	board.provision(t, vars, filler)

	// One byte more must not fit: the env above is exactly full.
	s := board.open(t)
	env, err := s.Load()
	if err != nil {
		t.Fatalf("Load = %v", err)
	}
	if err := env.Set(filler, vars[filler]+"f"); !errors.Is(err, bootenv.ErrTooFull) {
		t.Errorf("Set(filler, one byte more) = %v, want %v", err, bootenv.ErrTooFull)
	}
	s.Close()

	branch, got := board.decision(t)
	if want := "bootcount=4 bootlimit=3 txn="; branch != "rescue" || got != want {
		t.Errorf("U-Boot on a full env: branch %s, vars %q; want rescue, %q", branch, got, want)
	}
}

// TestUBootVMFollowsApply walks one board through an install as the
// installer's env step writes it, with a reboot into U-Boot after each
// change.
func TestUBootVMFollowsApply(t *testing.T) {
	board := newUBootBoard(t)
	vars := boardVars()
	vars["bootcount"], vars["bootlimit"] = "1", "3"
	board.provision(t, vars)

	steps := []struct {
		name       string
		set        map[string]string
		unset      []string
		wantBranch string
		wantVars   string
	}{
		{
			name:       "factory",
			wantBranch: "production",
			wantVars:   "bootcount=1 bootlimit=3 txn=",
		},
		{
			name:       "install-begins",
			set:        map[string]string{"lifeboat_txn": "1"},
			wantBranch: "rescue",
			wantVars:   "bootcount=1 bootlimit=3 txn=1",
		},
		{
			name:       "install-commits",
			set:        map[string]string{"bootcount": "0"},
			unset:      []string{"lifeboat_txn"},
			wantBranch: "production",
			wantVars:   "bootcount=0 bootlimit=3 txn=",
		},
		{
			name:       "boots-fail",
			set:        map[string]string{"bootcount": "4"},
			wantBranch: "rescue",
			wantVars:   "bootcount=4 bootlimit=3 txn=",
		},
		{
			name:       "limit-raised",
			set:        map[string]string{"bootlimit": "10"},
			wantBranch: "production",
			wantVars:   "bootcount=4 bootlimit=10 txn=",
		},
	}
	for _, st := range steps {
		// Steps depend on each other: stop at the first that fails.
		if !t.Run(st.name, func(t *testing.T) {
			if st.set != nil || st.unset != nil {
				board.apply(t, st.set, st.unset)
			}
			branch, got := board.decision(t)
			if branch != st.wantBranch || got != st.wantVars {
				t.Errorf("U-Boot after Apply(%v, %v): branch %s, vars %q; want %s, %q",
					st.set, st.unset, branch, got, st.wantBranch, st.wantVars)
			}
		}) {
			return
		}
	}
}

// TestUBootVMBadCRC changes a byte of Lifeboat's env behind its back: U-Boot
// must refuse the env and fall back to its built-in one. It shows that
// U-Boot checks the CRC Lifeboat writes, so the other tests' passing is not
// U-Boot reading anything it is given.
func TestUBootVMBadCRC(t *testing.T) {
	board := newUBootBoard(t)
	tests := []struct {
		name    string
		corrupt func(t *testing.T, image []byte)
	}{
		{"crc-byte", func(t *testing.T, image []byte) { image[0] ^= 0x01 }},
		{"data-byte", func(t *testing.T, image []byte) {
			// bootlimit=3 -> bootlimit=9 without a new CRC.
			i := bytes.Index(image, []byte("\x00bootlimit=3\x00"))
			if i < 0 {
				t.Fatal("bootlimit=3 not found in the env image")
			}
			image[i+len("\x00bootlimit=")] = '9'
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := boardVars()
			vars["bootcount"], vars["bootlimit"] = "1", "3"
			// bootlimit not first, so the data-byte case finds "\0bootlimit=3\0".
			board.provision(t, vars, "bootcmd", "bootlimit")
			f, err := os.OpenFile(board.envFlash, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			image := make([]byte, ubootEnvSize)
			if _, err := io.ReadFull(f, image); err != nil {
				t.Fatal(err)
			}
			tt.corrupt(t, image)
			if _, err := f.WriteAt(image, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			// Lifeboat itself refuses it too.
			s := board.open(t)
			if _, err := s.Load(); !errors.Is(err, bootenv.ErrBadCRC) {
				t.Errorf("Load of the corrupted env = %v, want %v", err, bootenv.ErrBadCRC)
			}
			s.Close()

			r := board.boot(t)
			r.expect("Warning - bad CRC, using default environment")
			// The default env waits 2 s for a key: take the prompt and ask
			// for a variable only Lifeboat's env has.
			r.expect("Hit any key to stop autoboot")
			r.send("")
			r.expect("=> ")
			r.send("printenv bootlimit; poweroff")
			con := r.wait()
			if !strings.Contains(con, `## Error: "bootlimit" not defined`) {
				t.Errorf("U-Boot with a bad CRC knows bootlimit; console:\n%s", con)
			}
			if strings.Contains(con, "LIFEBOAT-") {
				t.Errorf("U-Boot ran Lifeboat's bootcmd despite a bad CRC; console:\n%s", con)
			}
		})
	}
}

// ubootConsole keeps what U-Boot printed and lets a test wait for text;
// each expect looks only after the previous match.
type ubootConsole struct {
	mu     sync.Mutex
	buf    []byte
	pos    int
	grew   chan struct{} // closed and replaced on every write
	closed bool
}

func newUBootConsole() *ubootConsole { return &ubootConsole{grew: make(chan struct{})} }

func (c *ubootConsole) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf = append(c.buf, p...)
	close(c.grew)
	c.grew = make(chan struct{})
	return len(p), nil
}

func (c *ubootConsole) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		close(c.grew)
	}
}

func (c *ubootConsole) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.buf)
}

func (c *ubootConsole) expect(s string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		if i := bytes.Index(c.buf[c.pos:], []byte(s)); i >= 0 {
			c.pos += i + len(s)
			c.mu.Unlock()
			return nil
		}
		closed, grew := c.closed, c.grew
		c.mu.Unlock()
		if closed {
			return fmt.Errorf("QEMU exited before U-Boot printed %q", s)
		}
		select {
		case <-grew:
		case <-deadline:
			return fmt.Errorf("U-Boot did not print %q in %v", s, timeout)
		}
	}
}
