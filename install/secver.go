package install

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// maxSecurityVersionFile bounds what is read of a security version file:
// a number and a newline, with room to say what else it holds.
const maxSecurityVersionFile = 64

// ReadSecurityVersion reads the device's security version from path: a
// decimal number. A missing file means 0, a device that never recorded
// one. Any other file that cannot be read as a number (a directory, an
// unreadable file, a device, other text) is ErrRollback: guessing would
// either let a rollback through or lock the device out of every update.
func ReadSecurityVersion(path string) (uint64, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%w: security version file: %w", ErrRollback, err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		if err == nil {
			err = fmt.Errorf("%s is not a regular file", path)
		}
		return 0, fmt.Errorf("%w: security version file: %w", ErrRollback, err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecurityVersionFile+1))
	if err != nil {
		return 0, fmt.Errorf("%w: security version file: %w", ErrRollback, err)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || len(b) > maxSecurityVersionFile {
		return 0, fmt.Errorf("%w: security version file %s does not hold a number: %q", ErrRollback, path, strings.TrimSpace(string(b[:min(len(b), 32)])))
	}
	return v, nil
}

// WriteSecurityVersion records v in path, atomically: a power cut leaves
// the old value or the new one, never a torn file.
func WriteSecurityVersion(path string, v uint64) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	f, err := os.CreateTemp(dir, ".security-version-*")
	if err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := fmt.Fprintf(f, "%d\n", v); err != nil {
		f.Close()
		return fmt.Errorf("security version: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("security version: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("security version: %w", err)
	}
	// The rename is durable only once the directory is.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
