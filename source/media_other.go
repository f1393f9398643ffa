//go:build !linux

package source

func sysMount(dev, dir, fstype string, readOnly bool, data string) error {
	return ErrUnsupported
}

func sysUnmount(dir string) error { return ErrUnsupported }
