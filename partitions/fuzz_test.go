package partitions

import (
	"errors"
	"testing"

	"github.com/lifeboat-updater/lifeboat/bundle"
)

// fuzzDisk is a disk of size bytes holding head at its start and tail at
// its end, zeroes between: where partition tables live.
type fuzzDisk struct {
	head, tail []byte
	size       int64
}

func (d fuzzDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, errors.New("read beyond the disk")
	}
	clear(p)
	if off < int64(len(d.head)) {
		copy(p, d.head[off:])
	}
	tailStart := d.size - int64(len(d.tail))
	if end := off + int64(len(p)); end > tailStart {
		from := max(off, tailStart)
		copy(p[from-off:], d.tail[from-tailStart:])
	}
	return len(p), nil
}

func FuzzRead(f *testing.F) {
	const size = 128 << 20
	for _, table := range []bundle.Table{gptFixture, mbrFixture} {
		d := make(memDisk, size)
		l, err := Resolve(&table, size, 512)
		if err != nil {
			f.Fatal(err)
		}
		if err := Write(d, l); err != nil {
			f.Fatal(err)
		}
		f.Add([]byte(d[:34*512]), []byte(d[size-33*512:]))
	}
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, head, tail []byte) {
		if len(head) > 1<<20 || len(tail) > 1<<20 {
			return
		}
		d := fuzzDisk{head: head, tail: tail, size: size}
		l, err := Read(d, size, 512)
		if err != nil {
			if !errors.Is(err, ErrNoTable) && !errors.Is(err, ErrBadTable) {
				t.Fatalf("Read() = %v, want ErrNoTable or ErrBadTable", err)
			}
			return
		}
		_ = l.String()
		want, err := Resolve(&gptFixture, size, 512)
		if err != nil {
			t.Fatal(err)
		}
		_ = Diff(want, l)
	})
}

func FuzzResolve(f *testing.F) {
	f.Add(uint64(0), uint64(1<<20), uint64(0), uint64(0), false, 512)
	f.Add(uint64(32<<10), uint64(4<<20), uint64(8<<20), uint64(1<<20), true, 4096)
	f.Fuzz(func(t *testing.T, start1, size1, start2, size2 uint64, isMBR bool, sectorSize int) {
		table := bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
			{Name: "a", Type: "linux", Start: start1, Size: size1},
			{Name: "b", Type: "linux", Start: start2, Size: size2},
		}}
		if isMBR {
			table.Type = "mbr"
		}
		const disk = 16 << 20
		// The bundle format's own check, made without a disk, must take
		// every table that fits some disk of 512-byte sectors, and a
		// table it takes must fit a large enough one.
		verr := table.Validate()
		if sectorSize == 512 {
			_, big := Resolve(&table, 1<<62, 512)
			if verr == nil && big != nil && !errors.Is(big, ErrTooSmall) && !errors.Is(big, ErrTooLarge) {
				t.Errorf("Table.Validate() = nil, but Resolve(huge disk) = %v", big)
			}
			if _, small := Resolve(&table, disk, 512); small == nil && verr != nil {
				t.Errorf("Resolve(16 MiB disk) = nil, but Table.Validate() = %v", verr)
			}
		}
		l, err := Resolve(&table, disk, sectorSize)
		if err != nil {
			return
		}
		ss := int64(l.SectorSize)
		a, b := l.Partitions[0], l.Partitions[1]
		for _, p := range l.Partitions {
			if p.Start < l.FirstUsable || p.End() > l.EndUsable || p.Size <= 0 || p.Start%ss != 0 || p.Size%ss != 0 {
				t.Errorf("Resolve() placed %+v outside [%d, %d) or off sectors", p, l.FirstUsable, l.EndUsable)
			}
		}
		if a.Start < b.End() && b.Start < a.End() {
			t.Errorf("Resolve() overlaps %+v and %+v", a, b)
		}
		if start2 == 0 && b.Start%Alignment != 0 {
			t.Errorf("Resolve() placed %+v off the 1 MiB grid", b)
		}
		d := make(memDisk, disk)
		if err := Write(d, l); err != nil {
			t.Fatalf("Write() = %v", err)
		}
		got, err := Read(d, disk, sectorSize)
		if err != nil {
			t.Fatalf("Read() = %v", err)
		}
		if diff := Diff(l, got); len(diff) != 0 {
			t.Errorf("Diff(written, read) = %q", diff)
		}
	})
}
