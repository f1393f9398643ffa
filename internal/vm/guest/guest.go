// Package guest is the common part of the PID 1 programs that VM tests
// boot (the testdata/*init commands): it runs a test flow on the rescue
// platform, prints its result lines on the console under one prefix
// ("<prefix>: {...}", then "<prefix>: done", which the host side waits
// for), and always ends with sync and power-off, because a PID 1 that
// returns panics the kernel.
package guest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/pid1"
	"github.com/u-root/u-root/pkg/kmodule"
	"golang.org/x/sys/unix"
)

// MountPoint is where Mount mounts a file system.
const MountPoint = "/mnt"

// Guest is a running test flow.
type Guest struct {
	Ctx       context.Context
	Env       *pid1.Env
	prefix    string
	sentinels []error
}

// Run runs f as the flow of the rescue platform, with lines printed under
// prefix. f reports its own failures as result lines; Report names the
// first of sentinels an error matches. When f returns, Run prints
// "<prefix>: done", syncs and powers off.
func Run(prefix string, f func(g *Guest), sentinels ...error) {
	pid1.Run(pid1.Config{Flow: func(ctx context.Context, env *pid1.Env) error {
		g := &Guest{Ctx: ctx, Env: env, prefix: prefix, sentinels: sentinels}
		f(g)
		g.Printf("done")
		unix.Sync()
		return env.PowerOff()
	}})
}

// Printf prints one console line, "<prefix>: " and the message.
func (g *Guest) Printf(format string, args ...any) {
	g.Env.Log.Printf("%s: %s", g.prefix, fmt.Sprintf(format, args...))
}

// Report prints the step result r (a struct) as one JSON line,
// "<prefix>: {...}", and tells the watchdog the flow is alive: each step
// may take a while. If err is not nil the line's "err" is err's text and
// its "is" the text of the sentinel err matches, if any, so that the host
// can check errors.Is; a nil err leaves r's own "err" as it is.
func (g *Guest) Report(r any, err error) {
	b, merr := line(r, err, g.sentinels)
	if merr != nil {
		g.Printf("report: %v", merr)
		return
	}
	g.Printf("%s", b)
	g.Env.Alive()
}

// line is Report's JSON line.
func line(r any, err error, sentinels []error) ([]byte, error) {
	b, merr := json.Marshal(r)
	if merr != nil || err == nil {
		return b, merr
	}
	// Raw values: the fields come back byte for byte (no int64 through
	// float64), only their order changes.
	var m map[string]json.RawMessage
	if merr := json.Unmarshal(b, &m); merr != nil {
		return nil, merr
	}
	m["err"], _ = json.Marshal(err.Error())
	if is := match(err, sentinels); is != "" {
		m["is"], _ = json.Marshal(is)
	}
	return json.Marshal(m)
}

// Int returns the kernel command line parameter lifeboat.<name> as a
// number.
func (g *Guest) Int(name string) (int64, error) {
	n, err := strconv.ParseInt(g.Env.Params[name], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("lifeboat.%s: %w", name, err)
	}
	return n, nil
}

// WaitFor waits up to 30 s for path to exist: virtio disks appear a
// little after PID 1 starts. It prints a line if path never appears and
// lets the caller's open fail.
func (g *Guest) WaitFor(path string) {
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if _, err := os.Stat(path); err == nil {
			return
		}
		g.Env.Alive()
		time.Sleep(50 * time.Millisecond)
	}
	g.Printf("%s did not appear", path)
}

// Disk waits for the disk at path, opens it and returns it with the size
// of the image it holds, the parameter lifeboat.<sizeParam>: a virtio
// disk is rounded up to whole sectors.
func (g *Guest) Disk(path, sizeParam string) (*os.File, int64, error) {
	size, err := g.Int(sizeParam)
	if err != nil {
		return nil, 0, err
	}
	g.WaitFor(path)
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	return f, size, nil
}

// Modprobe loads the kernel module name and its dependencies, with the
// module parameters params ("key=value ...").
func (g *Guest) Modprobe(name, params string) error {
	if err := kmodule.Probe(name, params); err != nil {
		return fmt.Errorf("modprobe %s: %w", name, err)
	}
	g.Env.Alive()
	return nil
}

// match returns the text of the first of sentinels that err matches, or
// "".
func match(err error, sentinels []error) string {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return ""
}

// Main is the shape of an in-process command line, such as cli.Main.
type Main func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

// Call runs main with args and stdin and returns its exit code and its
// output, trimmed.
func (g *Guest) Call(main Main, stdin io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = main(g.Ctx, args, stdin, &out, &errOut)
	return code, strings.TrimSpace(out.String()), strings.TrimSpace(errOut.String())
}

// Took returns the time since start, rounded to the millisecond.
func Took(start time.Time) string {
	return time.Since(start).Round(time.Millisecond).String()
}

// SHA256 returns the hex SHA-256 of what r holds.
func SHA256(r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Mount mounts src (of type fstype) read-only on MountPoint, calls f with
// the mount point and unmounts it.
func Mount(src, fstype string, f func(dir string) error) error {
	if err := os.MkdirAll(MountPoint, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, MountPoint, fstype, unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("mount %s: %w", src, err)
	}
	defer unix.Unmount(MountPoint, 0)
	return f(MountPoint)
}
