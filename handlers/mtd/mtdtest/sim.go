// Package mtdtest simulates raw flash in memory for tests of code that
// writes MTD devices: NAND with factory bad blocks, blocks that fail to
// erase or program, and the rules real chips enforce (erase before
// program, whole pages, each page programmed once per erase); or NOR, where
// programming can only clear bits.
package mtdtest

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"syscall"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
)

// ErrMisuse reports an operation a real chip would refuse or corrupt: an
// unaligned erase or NAND write, a NAND page programmed twice without an
// erase. Tests treat it as a bug in the code under test.
var ErrMisuse = errors.New("mtdtest: operation a real chip would refuse")

// Flash is a simulated MTD device. It implements mtd.Device and
// mtd.ECCStatser. Its fields may be changed between operations; all
// methods are safe for concurrent use.
type Flash struct {
	mu   sync.Mutex
	info mtd.Info
	data []byte
	// programmed marks NAND pages written since their block's erase.
	programmed []bool

	// Bad are the blocks marked bad, by index.
	Bad map[int64]bool
	// FailErase are blocks whose erase fails with EIO.
	FailErase map[int64]bool
	// FailWrite are blocks whose programming fails with EIO.
	FailWrite map[int64]bool
	// FailRead are blocks whose reads fail with EIO.
	FailRead map[int64]bool
	// ECCFail are blocks whose reads count as uncorrectable in ECCStats
	// (the data is returned as is, as the kernel does).
	ECCFail map[int64]bool
	// ECCCorrect are blocks whose reads count one corrected bit flip in
	// ECCStats.
	ECCCorrect map[int64]bool

	// Erases counts erases per block; Programs counts write calls and
	// PagesProgrammed the pages (write units) they covered.
	Erases          map[int64]int
	Programs        int
	PagesProgrammed int
	stats           mtd.ECCStats
}

// NewNAND returns a NAND chip of blocks erase blocks of eraseSize bytes
// and pages of pageSize bytes, all erased (0xFF).
func NewNAND(blocks, eraseSize, pageSize int64) *Flash {
	return newFlash(mtd.Info{
		Type: mtd.TypeNAND, Flags: mtd.FlagWriteable,
		Size: blocks * eraseSize, EraseSize: eraseSize, WriteSize: pageSize, OOBSize: 64,
	})
}

// NewNOR returns a NOR chip with a write size of one byte, all erased.
func NewNOR(blocks, eraseSize int64) *Flash {
	return newFlash(mtd.Info{
		Type: mtd.TypeNOR, Flags: mtd.FlagWriteable | mtd.FlagBitWriteable,
		Size: blocks * eraseSize, EraseSize: eraseSize, WriteSize: 1,
	})
}

func newFlash(info mtd.Info) *Flash {
	f := &Flash{
		info:       info,
		data:       make([]byte, info.Size),
		programmed: make([]bool, info.Size/info.WriteSize),
		Bad:        map[int64]bool{},
		FailErase:  map[int64]bool{},
		FailWrite:  map[int64]bool{},
		FailRead:   map[int64]bool{},
		ECCFail:    map[int64]bool{},
		ECCCorrect: map[int64]bool{},
		Erases:     map[int64]int{},
	}
	for i := range f.data {
		f.data[i] = 0xFF
	}
	return f
}

// SetReadOnly clears or sets the MTD_WRITEABLE flag.
func (f *Flash) SetReadOnly(ro bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ro {
		f.info.Flags &^= mtd.FlagWriteable
	} else {
		f.info.Flags |= mtd.FlagWriteable
	}
}

// Bytes returns the flash content (not a copy).
func (f *Flash) Bytes() []byte { return f.data }

// Fill puts p at off as if it had been programmed, without the rules.
func (f *Flash) Fill(off int64, p []byte) { copy(f.data[off:], p) }

func (f *Flash) String() string {
	kind := "nor"
	if f.info.IsNAND() {
		kind = "nand"
	}
	return fmt.Sprintf("sim-%s(%d×%d)", kind, f.info.Blocks(), f.info.EraseSize)
}

// Info implements mtd.Device.
func (f *Flash) Info() mtd.Info {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.info
}

func (f *Flash) block(off int64) int64 { return off / f.info.EraseSize }

func eio(op string, off int64) error {
	return &pathError{op: op, off: off, err: syscall.EIO}
}

type pathError struct {
	op  string
	off int64
	err error
}

func (e *pathError) Error() string { return fmt.Sprintf("%s at %#x: %v", e.op, e.off, e.err) }
func (e *pathError) Unwrap() error { return e.err }

// Erase implements mtd.Device.
func (f *Flash) Erase(off, n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	es := f.info.EraseSize
	if off < 0 || n <= 0 || off%es != 0 || n%es != 0 || off+n > f.info.Size {
		return fmt.Errorf("%w: erase [%#x, +%#x)", ErrMisuse, off, n)
	}
	for b := off / es; b < (off+n)/es; b++ {
		if f.Bad[b] || f.FailErase[b] {
			return eio("erase", b*es)
		}
		f.Erases[b]++
		for i := b * es; i < (b+1)*es; i++ {
			f.data[i] = 0xFF
		}
		ws := f.info.WriteSize
		for p := b * es / ws; p < (b+1)*es/ws; p++ {
			f.programmed[p] = false
		}
	}
	return nil
}

// IsBad implements mtd.Device.
func (f *Flash) IsBad(off int64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 || off >= f.info.Size {
		return false, fmt.Errorf("%w: bad block check at %#x", ErrMisuse, off)
	}
	return f.info.IsNAND() && f.Bad[f.block(off)], nil
}

// MarkBad implements mtd.Device.
func (f *Flash) MarkBad(off int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.info.IsNAND() {
		return fmt.Errorf("mark bad at %#x: %w", off, syscall.EOPNOTSUPP)
	}
	f.Bad[f.block(off)] = true
	f.stats.BadBlocks++
	return nil
}

// ReadAt implements mtd.Device.
func (f *Flash) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off < 0 {
		return 0, fmt.Errorf("%w: read at %#x", ErrMisuse, off)
	}
	if off >= f.info.Size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), f.info.Size)
	for b := f.block(off); b <= f.block(end-1); b++ {
		if f.FailRead[b] {
			return 0, eio("read", b*f.info.EraseSize)
		}
		if f.ECCFail[b] {
			f.stats.Failed++
		}
		if f.ECCCorrect[b] {
			f.stats.Corrected++
		}
	}
	n := copy(p, f.data[off:end])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt implements mtd.Device.
func (f *Flash) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := f.info.WriteSize
	n := int64(len(p))
	if off < 0 || off+n > f.info.Size {
		return 0, fmt.Errorf("%w: write [%#x, +%#x) past the end", ErrMisuse, off, n)
	}
	nand := f.info.IsNAND()
	if off%ws != 0 || n%ws != 0 {
		return 0, fmt.Errorf("%w: write [%#x, +%#x) not in whole pages of %d", ErrMisuse, off, n, ws)
	}
	if n == 0 {
		return 0, nil
	}
	for b := f.block(off); b <= f.block(off+n-1); b++ {
		if f.FailWrite[b] {
			return 0, eio("write", b*f.info.EraseSize)
		}
		if nand && f.Bad[b] {
			return 0, fmt.Errorf("%w: write to bad block %d", ErrMisuse, b)
		}
	}
	for pg := off / ws; pg < (off+n)/ws; pg++ {
		if nand && f.programmed[pg] {
			return 0, fmt.Errorf("%w: page at %#x programmed twice without an erase", ErrMisuse, pg*ws)
		}
		f.programmed[pg] = true
	}
	for i, c := range p {
		f.data[off+int64(i)] &= c // programming only clears bits
	}
	f.Programs++
	f.PagesProgrammed += int(n / ws)
	return len(p), nil
}

// ECCStats implements mtd.ECCStatser.
func (f *Flash) ECCStats() (mtd.ECCStats, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats, nil
}

// TotalErases is the sum of Erases.
func (f *Flash) TotalErases() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, e := range f.Erases {
		n += e
	}
	return n
}
