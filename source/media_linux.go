package source

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func sysMount(dev, dir, fstype string, readOnly bool, data string) error {
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev, dir, fstype, flags, data); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("mount %s: the kernel has no %s filesystem (module not loaded?): %w", fstype, fstype, err)
		}
		return &os.PathError{Op: "mount " + fstype, Path: dev, Err: err}
	}
	return nil
}

func sysUnmount(dir string) error {
	err := unix.Unmount(dir, 0)
	if errors.Is(err, unix.EBUSY) {
		// Something still holds a file: detach now, the kernel finishes
		// when it is released.
		err = unix.Unmount(dir, unix.MNT_DETACH)
	}
	if err != nil {
		return &os.PathError{Op: "unmount", Path: dir, Err: err}
	}
	return nil
}
