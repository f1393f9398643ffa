package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
)

// Flash is how the engine reaches raw flash and UBI, for the board
// profile's mtd, ubi and ubi_image targets. SystemFlash is the running
// system's (packages handlers/mtd and handlers/ubi); tests give simulated
// flash (handlers/mtd/mtdtest, handlers/ubi/ubitest).
type Flash interface {
	// OpenMTD opens the MTD device called name: an MTD name, "mtdN" or a
	// /dev/mtdN path. With write it fails with an error wrapping
	// mtd.ErrReadOnly if the device cannot be written.
	OpenMTD(name string, write bool) (MTD, error)
	// AttachedUBI returns the UBI device attached to m, or nil if none
	// is.
	AttachedUBI(m MTD) (UBI, error)
	// AttachUBI attaches m to UBI and returns the new UBI device.
	AttachUBI(m MTD) (UBI, error)
	// DetachUBI closes and detaches u.
	DetachUBI(u UBI) error
}

// MTD is an open MTD device.
type MTD interface {
	mtd.Device
	io.Closer
}

// UBI is an open UBI device.
type UBI interface {
	ubi.Controller
	io.Closer
	// OpenVolume opens volume id for reading (Verify).
	OpenVolume(id int) (io.ReaderAt, io.Closer, error)
}

// SystemFlash is the running system's raw flash: /dev/mtdN and the
// kernel's UBI.
var SystemFlash Flash = systemFlash{}

type systemFlash struct{}

func (systemFlash) OpenMTD(name string, write bool) (MTD, error) {
	d, err := mtd.Open(name, write)
	if err != nil {
		return nil, err
	}
	return d, nil
}

func mtdIndex(m MTD) (int, error) {
	p, ok := m.(interface{ Path() string })
	if !ok {
		return 0, fmt.Errorf("%w: %v has no device path", mtd.ErrNotFound, m)
	}
	return mtd.Index(p.Path())
}

func (systemFlash) AttachedUBI(m MTD) (UBI, error) {
	idx, err := mtdIndex(m)
	if err != nil {
		return nil, err
	}
	n, ok := ubi.Sysfs(ubi.SysClassUBI).Attached(idx)
	if !ok {
		return nil, nil
	}
	d, err := ubi.OpenDevice(n)
	if err != nil {
		return nil, err
	}
	return systemUBI{d}, nil
}

func (systemFlash) AttachUBI(m MTD) (UBI, error) {
	idx, err := mtdIndex(m)
	if err != nil {
		return nil, err
	}
	n, err := ubi.AttachMTD(idx, ubi.AttachOptions{})
	if err != nil {
		return nil, err
	}
	d, err := ubi.OpenDevice(n)
	if err != nil {
		return nil, err
	}
	return systemUBI{d}, nil
}

func (systemFlash) DetachUBI(u UBI) error {
	su, ok := u.(systemUBI)
	if !ok {
		return fmt.Errorf("install: %v is not a UBI device of this system", u)
	}
	su.Close()
	return ubi.Detach(su.Num)
}

type systemUBI struct{ *ubi.Device }

func (u systemUBI) OpenVolume(id int) (io.ReaderAt, io.Closer, error) {
	f, err := os.Open(u.VolumePath(id))
	if err != nil {
		return nil, nil, err
	}
	return f, f, nil
}

// flashPlan is a planned step to raw flash.
type flashPlan struct {
	kind   string // boards.KindMTD, KindUBI, KindUBIImage
	mtd    string // the MTD device's name, as the profile gives it
	maxBad int
	es     int64 // erase block size
	ubi    *boards.UBITarget
	layout []ubi.VolumeSpec // nil: no layout in the profile
}

func (r *resolver) flash() Flash {
	if r.cfg.Flash != nil {
		return r.cfg.Flash
	}
	return SystemFlash
}

func (p *Plan) flash() Flash {
	if p.cfg.Flash != nil {
		return p.cfg.Flash
	}
	return SystemFlash
}

// mtdCharDevice reports whether path is an MTD character device
// (/dev/mtdN), which --target may name for a raw flash target.
func mtdCharDevice(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	_, err = mtd.Index(path)
	return err == nil
}

// flashError gives an error of the mtd and ubi packages the install
// package's kind, so that it maps to the right exit code.
func flashError(name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrTargetMissing), errors.Is(err, ErrTargetTooSmall), errors.Is(err, ErrTargetIO),
		errors.Is(err, ErrReadBack), errors.Is(err, ErrIncompatible):
		return err
	case errors.Is(err, mtd.ErrNotFound), errors.Is(err, mtd.ErrUnsupported), errors.Is(err, ubi.ErrUnsupported), errors.Is(err, ubi.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ErrTargetMissing, name, err)
	case errors.Is(err, mtd.ErrNoSpace), errors.Is(err, mtd.ErrTooManyBad), errors.Is(err, ubi.ErrNoSpace):
		return fmt.Errorf("%w: %s: %w", ErrTargetTooSmall, name, err)
	case errors.Is(err, mtd.ErrVerify), errors.Is(err, ubi.ErrVerify):
		return fmt.Errorf("%w: %s: %w", ErrReadBack, name, err)
	case errors.Is(err, mtd.ErrUnaligned), errors.Is(err, ubi.ErrBadImage):
		return fmt.Errorf("%w: %s: %w", ErrIncompatible, name, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrTargetIO, name, err)
}

// ubiLayout turns a profile's UBI layout into the ubi package's.
func ubiLayout(d boards.UBIDevice) []ubi.VolumeSpec {
	specs := make([]ubi.VolumeSpec, 0, len(d.Volumes))
	for _, v := range d.Volumes {
		s := ubi.VolumeSpec{Name: v.Name, ID: ubi.AutoID, Size: v.Size, Type: ubi.Dynamic}
		if v.ID != nil {
			s.ID = *v.ID
		}
		if v.Type == "static" {
			s.Type = ubi.Static
		}
		specs = append(specs, s)
	}
	return specs
}

func opStrings(ops []ubi.Op) []string {
	var s []string
	for _, o := range ops {
		s = append(s, o.String())
	}
	return s
}

// planFlash checks an image step to raw flash: the device exists (and
// can be written), the image fits it once its bad blocks are passed
// over, a UBI volume is big enough, and a UBI layout can be applied.
// Nothing is written, and UBI is not attached: attaching formats blank
// flash.
func (r *resolver) planFlash(p *Plan, ps *planned, spec *boards.TargetSpec) error {
	s := ps.step
	if s.Type != bundle.StepImage {
		return fmt.Errorf("%w: %q is raw flash (%s): only image steps can write it, not %s steps", ErrTargetMissing, s.Target, spec.Kind(), s.Type)
	}
	im := p.br.Manifest().Image(s.Image)
	ps.image = im
	size := int64(im.Size)
	ps.info.Image, ps.info.ImageSize, ps.info.At, ps.info.Chunks = im.Name, size, int64(s.Offset), int(im.Chunks)
	fp := &flashPlan{kind: spec.Kind(), mtd: spec.MTD, maxBad: spec.MaxBad}
	switch fp.kind {
	case boards.KindUBI:
		fp.mtd, fp.ubi = spec.UBI.MTD, spec.UBI
		ps.info.Volume, ps.info.Spare = spec.UBI.Volume, spec.UBI.Spare
		if r.cfg.Board != nil {
			if l, ok := r.cfg.Board.UBI[fp.mtd]; ok {
				fp.layout = ubiLayout(l)
			}
		}
	case boards.KindUBIImage:
		fp.mtd = spec.UBIImage
	}
	ps.flash = fp
	ps.info.Kind = fp.kind
	if fp.kind != boards.KindMTD && s.Offset != 0 {
		return fmt.Errorf("%w: image %q at offset %d: a %s target takes images at offset 0", ErrIncompatible, im.Name, s.Offset, fp.kind)
	}

	// Volumes are written through UBI, not the MTD device.
	write := !r.cfg.ReadOnly && fp.kind != boards.KindUBI
	fl := r.flash()
	d, err := fl.OpenMTD(fp.mtd, write)
	if err != nil {
		return flashError(s.Target, err)
	}
	defer d.Close()
	info := d.Info()
	fp.es = info.EraseSize
	ps.path, ps.size = fmt.Sprint(d), info.Size
	ps.info.Path, ps.info.Size, ps.info.EraseSize = ps.path, info.Size, info.EraseSize
	u, err := fl.AttachedUBI(d)
	if err != nil {
		return flashError(s.Target, err)
	}
	if u != nil {
		defer u.Close()
	}

	switch fp.kind {
	case boards.KindMTD:
		if u != nil {
			return fmt.Errorf("%w: %s: %s is attached to UBI (%v): raw writes would corrupt it; detach it first", ErrTargetIO, s.Target, ps.path, u)
		}
		if info.EraseSize <= 0 || int64(s.Offset)%info.EraseSize != 0 {
			return fmt.Errorf("%w: image %q at offset %d of %s: not a multiple of the %d-byte erase block", ErrIncompatible, im.Name, s.Offset, ps.path, info.EraseSize)
		}
		if need := int64(s.Offset) + size; need > info.Size || need < size {
			return fmt.Errorf("%w: image %q needs %d bytes at offset %d, %s holds %d", ErrTargetTooSmall, im.Name, size, s.Offset, ps.path, info.Size)
		}
		if write {
			// Counts the bad blocks the image would pass over; writes
			// nothing.
			if _, err := mtd.NewWriter(d, mtd.Options{Offset: int64(s.Offset), Size: size, MaxBad: fp.maxBad}); err != nil {
				return flashError(s.Target, err)
			}
		}
	case boards.KindUBIImage:
		if info.EraseSize <= 0 || size%info.EraseSize != 0 {
			return fmt.Errorf("%w: image %q of %d bytes is not a whole number of %s's %d-byte eraseblocks: it was made for other flash", ErrIncompatible, im.Name, size, ps.path, info.EraseSize)
		}
		if size > info.Size {
			return fmt.Errorf("%w: UBI image %q of %d bytes, %s holds %d", ErrTargetTooSmall, im.Name, size, ps.path, info.Size)
		}
		if write {
			if _, err := mtd.NewWriter(d, mtd.Options{Size: size, MaxBad: fp.maxBad}); err != nil {
				return flashError(s.Target, err)
			}
		}
		if u != nil {
			ps.info.Changes = []string{fmt.Sprintf("detach %v", u)}
		}
	case boards.KindUBI:
		return r.planVolume(ps, fp, u, size)
	}
	return nil
}

// planVolume checks a UBI volume step: the layout (when the device is
// attached, what it would change) and the volume's size.
func (r *resolver) planVolume(ps *planned, fp *flashPlan, u UBI, size int64) error {
	name := ps.step.Target
	vol, spare := fp.ubi.Volume, fp.ubi.Spare
	// The profile's layout says the volumes' sizes after it is applied.
	for _, v := range fp.layout {
		if (v.Name == vol || v.Name == spare) && v.Size < size {
			return fmt.Errorf("%w: image %q of %d bytes, UBI volume %q holds %d", ErrTargetTooSmall, ps.image.Name, size, v.Name, v.Size)
		}
	}
	if u == nil {
		ps.info.Changes = append(ps.info.Changes, fmt.Sprintf("attach %s to UBI", ps.path))
		return nil
	}
	info, err := u.Info()
	if err != nil {
		return flashError(name, err)
	}
	have, err := u.Volumes()
	if err != nil {
		return flashError(name, err)
	}
	ps.info.Path = fmt.Sprint(u)
	ps.info.Size = int64(info.TotalLEBs) * info.LEBSize
	if fp.layout != nil {
		ops, err := ubi.Diff(info, have, fp.layout)
		if err != nil {
			if errors.Is(err, ubi.ErrLayout) {
				return fmt.Errorf("%w: %s: the board's UBI layout cannot be applied: %w", ErrTargetIO, name, err)
			}
			return flashError(name, err)
		}
		ps.info.Changes = append(ps.info.Changes, opStrings(ops)...)
		return nil
	}
	for _, v := range have {
		if v.Name == vol && spare == "" && v.Size() < size {
			return fmt.Errorf("%w: image %q of %d bytes, UBI volume %q holds %d", ErrTargetTooSmall, ps.image.Name, size, vol, v.Size())
		}
		if v.Name == vol {
			return nil
		}
	}
	if spare == "" {
		return fmt.Errorf("%w: %s: no UBI volume %q on %v, and the board profile has no UBI layout that makes it", ErrTargetMissing, name, vol, u)
	}
	return nil
}

// streamTarget feeds the pipeline's verified chunks, which it writes in
// order, to a writer that takes an image front to back: the MTD Writer,
// or the pipe into a UBI volume update. Zero chunks become zero bytes:
// erased flash reads 0xFF, so they must be written. Nothing is read back
// through it, so the pipeline runs without skip-unchanged (the MTD
// Writer compares whole erase blocks itself).
type streamTarget struct {
	w    io.Writer
	pos  int64
	size int64
	name string
	err  error // the first write error
}

func (s *streamTarget) WriteAt(p []byte, off int64) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if off != s.pos {
		s.err = fmt.Errorf("install: %s takes the image in order: write at %d, want %d", s.name, off, s.pos)
		return 0, s.err
	}
	n, err := s.w.Write(p)
	s.pos += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = flashError(s.name, err)
	}
	return n, s.err
}

func (s *streamTarget) ZeroRange(off, n int64) error { return handlers.WriteZeros(s, off, n) }

func (s *streamTarget) ReadAt(p []byte, off int64) (int, error) {
	return 0, fmt.Errorf("%w: reading back %s", handlers.ErrNotSupported, s.name)
}

func (s *streamTarget) Size() int64                  { return s.size }
func (s *streamTarget) Discard(off, n int64) error   { return handlers.ErrNotSupported }
func (s *streamTarget) DropCache(off, n int64) error { return nil }
func (s *streamTarget) Sync() error                  { return nil }
func (s *streamTarget) Close() error                 { return nil }
func (s *streamTarget) String() string               { return s.name }

// errStreamDone is what the pipeline gets if it writes after the
// handler reading its stream has returned.
var errStreamDone = errors.New("install: the flash handler stopped reading the image")

// streamTo runs the image step's pipeline into consume, which reads the
// image (size bytes) from r on its own goroutine. A chunk that fails
// makes r fail, so that consume never takes a partial image for a whole
// one.
func (p *Plan) streamTo(ctx context.Context, ps *planned, tr *tracker, name string, consume func(r io.Reader) error) (counts, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := consume(pr)
		// Writes after this fail instead of blocking for ever.
		if err != nil {
			pr.CloseWithError(err)
		} else {
			pr.CloseWithError(errStreamDone)
		}
		done <- err
	}()
	st := &streamTarget{w: pw, size: int64(ps.image.Size), name: name}
	cnt, err := p.runPipeline(ctx, ps, tr, st, name)
	if err != nil {
		pw.CloseWithError(err)
	} else {
		pw.Close()
	}
	cerr := <-done
	switch {
	case err != nil && st.err != nil && cerr != nil:
		// The handler failed first: its error says why.
		return cnt, flashError(name, cerr)
	case err != nil:
		return cnt, err
	case cerr != nil:
		return cnt, flashError(name, cerr)
	}
	return cnt, nil
}

func (p *Plan) runPipeline(ctx context.Context, ps *planned, tr *tracker, t handlers.Target, name string) (counts, error) {
	chunks, err := p.br.Chunks(ps.image.Name)
	if err != nil {
		return counts{}, err
	}
	// The stream starts at the image's first byte; errors name the
	// chunk's offset in the target.
	pl := &pipeline{
		br: p.br, t: t, base: 0, chunks: chunks, workers: p.cfg.Workers,
		skip: false, size: p.br.Manifest().ChunkSize,
		step: ps.n, image: ps.image.Name, target: name,
		progress: tr.update,
	}
	cnt, err := pl.run(ctx)
	var ce *ChunkError
	if errors.As(err, &ce) {
		ce.Offset += int64(ps.step.Offset)
	}
	return cnt, err
}

// runFlash runs an image step to raw flash.
func (p *Plan) runFlash(ctx context.Context, ps *planned) (*StepStats, error) {
	fp := ps.flash
	fl := p.flash()
	size := int64(ps.image.Size)
	name := fmt.Sprintf("%s (%s)", ps.step.Target, ps.path)
	switch fp.kind {
	case boards.KindMTD:
		d, err := fl.OpenMTD(fp.mtd, true)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		defer d.Close()
		w, err := mtd.NewWriter(d, mtd.Options{Offset: int64(ps.step.Offset), Size: size, MaxBad: fp.maxBad, Rewrite: p.cfg.NoSkip})
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		tr := p.startStep(ps, size)
		st := &streamTarget{w: w, size: size, name: name}
		cnt, err := p.runPipeline(ctx, ps, tr, st, name)
		if err != nil {
			// Not Close: it would write the partial block, whose
			// rest did not verify.
			return nil, err
		}
		if err := w.Close(); err != nil {
			return nil, flashError(name, err)
		}
		ws := w.Stats()
		return tr.finish(flashCounts(cnt, size, int64(ws.Unchanged)*fp.es), true,
			fmt.Sprintf("%d erase blocks written, %d unchanged, %d bad passed over, %d marked bad", ws.Written, ws.Unchanged, ws.BadSkipped, ws.MarkedBad)), nil

	case boards.KindUBIImage:
		d, err := fl.OpenMTD(fp.mtd, true)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		defer d.Close()
		u, err := fl.AttachedUBI(d)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		if u != nil {
			// FormatImage rewrites what UBI owns.
			if err := fl.DetachUBI(u); err != nil {
				return nil, flashError(ps.step.Target, err)
			}
		}
		tr := p.startStep(ps, size)
		var fs ubi.FormatStats
		cnt, err := p.streamTo(ctx, ps, tr, name, func(r io.Reader) error {
			var err error
			fs, err = ubi.FormatImage(d, r, size, ubi.FormatOptions{MaxBad: fp.maxBad})
			return err
		})
		if err != nil {
			return nil, err
		}
		return tr.finish(flashCounts(cnt, size, 0), true,
			fmt.Sprintf("UBI image: %d eraseblocks written, %d formatted, %d bad passed over, %d marked bad, mean erase counter %d",
				fs.Image.Written, fs.Formatted, fs.Image.BadSkipped+fs.Bad, fs.Image.MarkedBad, fs.MeanEC)), nil

	case boards.KindUBI:
		return p.runVolume(ctx, ps, fl, name)
	}
	return nil, fmt.Errorf("install: unknown flash target kind %q", fp.kind)
}

func (p *Plan) runVolume(ctx context.Context, ps *planned, fl Flash, name string) (*StepStats, error) {
	fp := ps.flash
	size := int64(ps.image.Size)
	d, err := fl.OpenMTD(fp.mtd, false)
	if err != nil {
		return nil, flashError(ps.step.Target, err)
	}
	u, err := fl.AttachedUBI(d)
	if err == nil && u == nil {
		u, err = fl.AttachUBI(d)
	}
	d.Close()
	if err != nil {
		return nil, flashError(ps.step.Target, err)
	}
	defer u.Close()
	var notes []string
	if fp.layout != nil {
		ops, err := ubi.ApplyLayout(u, fp.layout)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		if len(ops) > 0 {
			notes = append(notes, "layout: "+strings.Join(opStrings(ops), ", "))
		}
	}
	vol, spare := fp.ubi.Volume, fp.ubi.Spare
	var id int
	if spare == "" {
		v, err := ubi.FindVolume(u, vol)
		if err != nil {
			return nil, flashError(ps.step.Target, err)
		}
		if v.Size() < size {
			return nil, fmt.Errorf("%w: image %q of %d bytes, UBI volume %q holds %d", ErrTargetTooSmall, ps.image.Name, size, vol, v.Size())
		}
		id = v.ID
	}
	tr := p.startStep(ps, size)
	cnt, err := p.streamTo(ctx, ps, tr, name, func(r io.Reader) error {
		if spare != "" {
			return ubi.SwapUpdate(u, vol, spare, size, r)
		}
		return u.UpdateVolume(id, size, r)
	})
	if err != nil {
		return nil, err
	}
	if spare != "" {
		notes = append(notes, fmt.Sprintf("written to %q, then swapped with %q", spare, vol))
	} else {
		notes = append(notes, fmt.Sprintf("volume %q updated in place", vol))
	}
	return tr.finish(flashCounts(cnt, size, 0), false, strings.Join(notes, "; ")), nil
}

// flashCounts is what a flash step did: raw flash takes zero chunks as
// data, and skips whole erase blocks, not chunks.
func flashCounts(c counts, size, skipped int64) counts {
	skipped = min(skipped, size)
	return counts{written: size - skipped, skipped: skipped, nWritten: c.nWritten + c.nZeroed}
}

// verifyFlash compares a flash step's target with its image: the good
// blocks of raw flash in order, or the UBI volume. A whole UBI image is
// not compared: its erase counters differ from the bundle's by design.
func (p *Plan) verifyFlash(ctx context.Context, ps *planned, chunks []bundle.Chunk, tr *tracker) (bad []int, note string, err error) {
	fp := ps.flash
	fl := p.flash()
	progress := func(done int64) { tr.update(counts{skipped: done}) }
	switch fp.kind {
	case boards.KindUBIImage:
		return nil, "not compared: a UBI image's erase counters change as it is written", nil
	case boards.KindMTD:
		d, err := fl.OpenMTD(fp.mtd, false)
		if err != nil {
			return nil, "", flashError(ps.step.Target, err)
		}
		defer d.Close()
		v, err := newGoodBlocks(d, int64(ps.step.Offset))
		if err != nil {
			return nil, "", flashError(ps.step.Target, err)
		}
		bad, err = compare(ctx, v, 0, chunks, p.cfg.Workers, p.br.Manifest().ChunkSize, nil, progress)
		return bad, "", err
	}
	d, err := fl.OpenMTD(fp.mtd, false)
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	u, err := fl.AttachedUBI(d)
	d.Close()
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	if u == nil {
		return nil, "", fmt.Errorf("%w: %s: UBI is not attached to %s", ErrTargetMissing, ps.step.Target, ps.path)
	}
	defer u.Close()
	v, err := ubi.FindVolume(u, fp.ubi.Volume)
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	ra, c, err := u.OpenVolume(v.ID)
	if err != nil {
		return nil, "", flashError(ps.step.Target, err)
	}
	defer c.Close()
	t := &readerTarget{ra: ra, size: v.Size(), name: fmt.Sprintf("UBI volume %q", v.Name)}
	bad, err = compare(ctx, t, 0, chunks, p.cfg.Workers, p.br.Manifest().ChunkSize, nil, progress)
	if err == nil && v.Corrupted {
		note = "the volume is marked corrupted"
		if len(bad) == 0 {
			bad = []int{0}
		}
	}
	return bad, note, err
}

// goodBlocks reads raw flash from off on as the Writer lays an image
// out: bad blocks are passed over.
type goodBlocks struct {
	d      mtd.Device
	es     int64
	blocks []int64 // device offsets of the good blocks, in order
}

func newGoodBlocks(d mtd.Device, off int64) (*readerTarget, error) {
	info := d.Info()
	g := &goodBlocks{d: d, es: info.EraseSize}
	for o := off; o+info.EraseSize <= info.Size; o += info.EraseSize {
		if info.IsNAND() {
			bad, err := d.IsBad(o)
			if err != nil {
				return nil, err
			}
			if bad {
				continue
			}
		}
		g.blocks = append(g.blocks, o)
	}
	return &readerTarget{ra: g, size: int64(len(g.blocks)) * g.es, name: fmt.Sprint(d)}, nil
}

func (g *goodBlocks) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	for len(p) > 0 {
		b := off / g.es
		if b >= int64(len(g.blocks)) {
			return n, io.EOF
		}
		in := off % g.es
		k := min(int64(len(p)), g.es-in)
		if _, err := g.d.ReadAt(p[:k], g.blocks[b]+in); err != nil {
			return n, err
		}
		n += int(k)
		p, off = p[k:], off+k
	}
	return n, nil
}

// readerTarget is a read-only handlers.Target over an io.ReaderAt, for
// Verify's compare.
type readerTarget struct {
	ra   io.ReaderAt
	size int64
	name string
}

func (t *readerTarget) ReadAt(p []byte, off int64) (int, error) {
	if off >= t.size {
		return 0, io.EOF
	}
	if rest := t.size - off; int64(len(p)) > rest {
		n, err := t.ra.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return t.ra.ReadAt(p, off)
}

func (t *readerTarget) WriteAt(p []byte, off int64) (int, error) { return 0, handlers.ErrReadOnly }
func (t *readerTarget) Size() int64                              { return t.size }
func (t *readerTarget) ZeroRange(off, n int64) error             { return handlers.ErrReadOnly }
func (t *readerTarget) Discard(off, n int64) error               { return handlers.ErrReadOnly }
func (t *readerTarget) DropCache(off, n int64) error             { return nil }
func (t *readerTarget) Sync() error                              { return nil }
func (t *readerTarget) Close() error                             { return nil }
func (t *readerTarget) String() string                           { return t.name }
