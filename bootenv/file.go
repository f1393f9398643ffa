package bootenv

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// fileMedium is a plain file or a block device: written in place, no erase.
type fileMedium struct {
	f *os.File
}

func (m *fileMedium) ReadAt(p []byte, off int64) (int, error)  { return m.f.ReadAt(p, off) }
func (m *fileMedium) WriteAt(p []byte, off int64) (int, error) { return m.f.WriteAt(p, off) }
func (m *fileMedium) EraseSize() int64                         { return 0 }
func (m *fileMedium) Erase(off, n int64) error                 { return nil }
func (m *fileMedium) Sync() error                              { return m.f.Sync() }
func (m *fileMedium) Close() error                             { return m.f.Close() }

// Replace swaps in image through a synced temporary file and a rename when
// the file is regular and holds exactly one image (uboot.env on FAT), so a
// power cut leaves the old or the new env. It reports false, having done
// nothing, for anything else.
func (m *fileMedium) Replace(image []byte) (bool, error) {
	st, err := m.f.Stat()
	if err != nil {
		return false, err
	}
	if !st.Mode().IsRegular() || st.Size() != int64(len(image)) {
		return false, nil
	}
	path, err := replaceFile(m.f.Name(), image, st.Mode().Perm())
	if err != nil {
		return true, err
	}
	// The old descriptor now names the replaced inode: follow the rename.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return true, err
	}
	m.f.Close()
	m.f = f
	return true, nil
}

// replaceFile writes data to path atomically: a temporary file in the same
// directory, fsync, rename over path, fsync of the directory. A symlink is
// followed so that the link stays and its target is replaced. It returns the
// path it replaced.
func replaceFile(path string, data []byte, perm os.FileMode) (string, error) {
	real, err := filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		real, err = path, nil // a new file (a blank board's grubenv)
	}
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(real)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(real)+".*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(perm)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("bootenv: writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), real); err != nil {
		return "", err
	}
	d, err := os.Open(dir)
	if err != nil {
		return "", err
	}
	defer d.Close()
	// Some filesystems refuse fsync on a directory (EINVAL); the rename is
	// then as durable as the filesystem makes it.
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return "", err
	}
	return real, nil
}
