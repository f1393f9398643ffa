package rescue

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/lifeboat-updater/lifeboat/boards"
)

// Linux input (linux/input.h) and GPIO character device (linux/gpio.h)
// interfaces. The ioctl numbers use the generic encoding (x86, arm, arm64,
// riscv); MIPS and PowerPC encode the direction bits differently.
const (
	evKey      = 0x01
	evSyn      = 0x00
	synDropped = 3
	keyMax     = 0x2ff

	iocRead      = 2
	iocReadWrite = 3

	gpioHandlesMax      = 64
	gpioHandleInput     = 1 << 0
	gpioHandleActiveLow = 1 << 2
	gpioGetLinehandle   = 0x03
	gpioHandleGetValues = 0x08
	gpioRequestSize     = 4*gpioHandlesMax + 4 + gpioHandlesMax + 32 + 4 + 4
	gpioPollEvery       = 20 * time.Millisecond
	inputEventSize      = int(unsafe.Sizeof(unix.Timeval{})) + 8
	keyBitmapBytes      = keyMax/8 + 1
	evdevScanEvery      = 50 * time.Millisecond
)

func ioc(dir, typ, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | typ<<8 | nr
}

// eviocgkey is EVIOCGKEY(len): the keys held now, as a bitmap.
func eviocgkey(n int) uintptr { return ioc(iocRead, 'E', 0x18, uintptr(n)) }

// eviocgbit is EVIOCGBIT(ev, len): the codes of kind ev the device has.
func eviocgbit(ev, n int) uintptr { return ioc(iocRead, 'E', uintptr(0x20+ev), uintptr(n)) }

func ioctlBytes(fd int, req uintptr, b []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(&b[0])))
	if errno != 0 {
		return errno
	}
	return nil
}

func bitSet(b []byte, bit int) bool { return bit/8 < len(b) && b[bit/8]&(1<<(bit%8)) != 0 }

// evdevKey is one key of an input device.
type evdevKey struct {
	f    *os.File
	code int
}

// openButton opens the board's button: a GPIO line, or the key on the
// input devices matching b.Input. Input devices show up when their driver
// has probed: they are looked for during wait. When several devices have
// the key (two keyboards), the one holding it wins.
func openButton(b *boards.Button, wait time.Duration) (Key, string, error) {
	if b.GPIO != "" {
		return openGPIO(b)
	}
	code, err := boards.KeyCode(b.Key)
	if err != nil {
		return nil, "", err
	}
	deadline := time.Now().Add(wait)
	for {
		var found []*evdevKey
		var names []string
		paths, _ := filepath.Glob(b.Input)
		slices.Sort(paths)
		for _, p := range paths {
			f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			bits := make([]byte, keyBitmapBytes)
			if ioctlBytes(int(f.Fd()), eviocgbit(evKey, len(bits)), bits) != nil || !bitSet(bits, code) {
				f.Close()
				continue
			}
			found = append(found, &evdevKey{f: f, code: code})
			names = append(names, p)
		}
		if len(found) > 0 {
			pick := 0
			for i, k := range found {
				if held, _ := k.Pressed(); held {
					pick = i
					break
				}
			}
			for i, k := range found {
				if i != pick {
					k.Close()
				}
			}
			return found[pick], names[pick], nil
		}
		if time.Now().After(deadline) {
			return nil, "", fmt.Errorf("%w: no input device in %s has key %s", ErrNoButton, b.Input, b.Key)
		}
		time.Sleep(evdevScanEvery)
	}
}

func (k *evdevKey) Pressed() (bool, error) {
	bits := make([]byte, keyBitmapBytes)
	if err := ioctlBytes(int(k.f.Fd()), eviocgkey(len(bits)), bits); err != nil {
		return false, &os.PathError{Op: "EVIOCGKEY", Path: k.f.Name(), Err: err}
	}
	return bitSet(bits, k.code), nil
}

// WaitRelease reads the device's events until the key's release (value 0)
// comes, or d passes. After the kernel dropped events (SYN_DROPPED) it
// asks for the key's state again.
func (k *evdevKey) WaitRelease(ctx context.Context, d time.Duration) (bool, error) {
	deadline := time.Now().Add(d)
	fd := int(k.f.Fd())
	buf := make([]byte, 64*inputEventSize)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		ms := int(min(left, 200*time.Millisecond) / time.Millisecond)
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, max(ms, 1))
		if errors.Is(err, unix.EINTR) || n == 0 {
			continue
		}
		if err != nil {
			return false, &os.PathError{Op: "poll", Path: k.f.Name(), Err: err}
		}
		m, err := unix.Read(fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, &os.PathError{Op: "read", Path: k.f.Name(), Err: err}
		}
		for off := 0; off+inputEventSize <= m; off += inputEventSize {
			e := buf[off+inputEventSize-8 : off+inputEventSize]
			typ := binary.NativeEndian.Uint16(e[0:])
			code := binary.NativeEndian.Uint16(e[2:])
			val := int32(binary.NativeEndian.Uint32(e[4:]))
			switch {
			case typ == evKey && int(code) == k.code && val == 0:
				return true, nil
			case typ == evSyn && code == synDropped:
				if held, err := k.Pressed(); err == nil && !held {
					return true, nil
				}
			}
		}
	}
}

func (k *evdevKey) Close() error { return k.f.Close() }

// gpioLine is a GPIO line requested as an input through the character
// device's v1 line handle interface.
type gpioLine struct {
	f    *os.File
	name string
}

func openGPIO(b *boards.Button) (Key, string, error) {
	chip, line, err := b.GPIOLine()
	if err != nil {
		return nil, "", err
	}
	path := chip
	if !filepath.IsAbs(path) {
		path = filepath.Join("/dev", chip)
	}
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrNoButton, err)
	}
	defer f.Close()
	req := make([]byte, gpioRequestSize)
	binary.NativeEndian.PutUint32(req[0:], uint32(line))
	flags := uint32(gpioHandleInput)
	if b.ActiveLow {
		flags |= gpioHandleActiveLow
	}
	binary.NativeEndian.PutUint32(req[4*gpioHandlesMax:], flags)
	copy(req[4*gpioHandlesMax+4+gpioHandlesMax:], "lifeboat-button")
	binary.NativeEndian.PutUint32(req[gpioRequestSize-8:], 1) // lines
	if err := ioctlBytes(int(f.Fd()), ioc(iocReadWrite, 0xb4, gpioGetLinehandle, gpioRequestSize), req); err != nil {
		return nil, "", &os.PathError{Op: "GPIO_GET_LINEHANDLE", Path: path, Err: err}
	}
	fd := int(int32(binary.NativeEndian.Uint32(req[gpioRequestSize-4:])))
	name := fmt.Sprintf("%s line %d", path, line)
	l := &gpioLine{f: os.NewFile(uintptr(fd), name), name: name}
	return &polledKey{read: l.value, close: l.f.Close, every: gpioPollEvery}, name, nil
}

// value reads the line: 1 is pressed (the handle applies active-low).
func (l *gpioLine) value() (bool, error) {
	data := make([]byte, gpioHandlesMax)
	if err := ioctlBytes(int(l.f.Fd()), ioc(iocReadWrite, 0xb4, gpioHandleGetValues, gpioHandlesMax), data); err != nil {
		return false, &os.PathError{Op: "GPIOHANDLE_GET_LINE_VALUES", Path: l.name, Err: err}
	}
	return data[0] != 0, nil
}
