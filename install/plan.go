// Package install turns a verified bundle and a board into a plan, and
// runs it: every check (board, security version, targets, sizes) before
// the first byte is written, then each step in order. Image steps go
// through a chunk pipeline: stored chunks are read in payload order,
// verified and decompressed on every core, and written in order, so that
// no byte reaches a target before the chunk holding it has verified.
// Chunks the target already holds are skipped, which makes a repeated
// install cost only reads and lets an interrupted one resume.
//
// Image steps to raw flash (the board profile's mtd, ubi and ubi_image
// targets) stream the same verified chunks, in order, into package
// handlers/mtd's Writer, a UBI volume update or a ubiformat-style UBI
// image write (handlers/ubi); see flash.go and docs/cli.md.
package install

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/lifeboat-updater/lifeboat/boards"
	"github.com/lifeboat-updater/lifeboat/bootenv"
	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/handlers"
	"github.com/lifeboat-updater/lifeboat/handlers/flash"
	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

// Config says how to install a bundle on this device.
type Config struct {
	// Board is the board profile. It may be nil when BoardName is set and
	// every target is given in Targets.
	Board *boards.Profile
	// BoardName and BoardRevision, when set, replace the profile's for
	// the compatibility check.
	BoardName, BoardRevision string
	// Resolver finds the profile's storage devices.
	Resolver boards.Resolver
	// Targets map target names to paths (the command line's --target
	// NAME=PATH). They win over everything else.
	Targets map[string]string
	// SecurityVersionFile holds the device's security version; it
	// replaces the profile's. With neither, no rollback check is possible
	// and the device's security version counts as 0.
	SecurityVersionFile string
	// Env opens bootloader environments for env steps.
	Env EnvOpener
	// Flash reaches raw flash and UBI for the profile's mtd, ubi and
	// ubi_image targets; nil means the system's (handlers/flash).
	Flash flash.Flash

	// Workers is how many goroutines verify and decompress chunks;
	// default GOMAXPROCS.
	Workers int
	// NoSkip writes every chunk, even those the target already holds.
	NoSkip bool
	// Verify reads every image step back after writing it, as if each
	// step had Verify set.
	Verify bool
	// Buffered writes to block devices through the page cache. By
	// default aligned chunks are written with O_DIRECT: on a loop device,
	// a 256 MiB image with NoSkip took a median 0.42 s with O_DIRECT and
	// 1.02 s buffered + fsync (two series of 5 runs each on 2 cores; the
	// other series 0.53 s and 0.99 s), and O_DIRECT does not fill a small
	// board's memory with dirty pages that fsync then writes out at once.
	Buffered bool
	// ReadOnly plans without requiring writable targets, and without
	// the rollback check, for Verify.
	ReadOnly bool

	// Observer receives the install's events; nil for none.
	Observer Observer
}

// withDefaults fills in what a zero Config leaves to the engine.
func (cfg Config) withDefaults() Config {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	return cfg
}

// Plan is a checked install: every target found and big enough, the board
// compatible, the security version acceptable.
type Plan struct {
	cfg      Config
	br       *bundle.Reader
	board    string
	svFile   string
	deviceSV uint64
	steps    []*planned
	info     PlanInfo

	locks *handlers.Locks

	// wrap, if set, wraps every target Execute opens (tests inject
	// failures with it).
	wrap func(handlers.Target) handlers.Target
}

// planned is one step with its target resolved.
type planned struct {
	n      int // 1-based
	step   *bundle.Step
	info   PlanStep
	path   string // device or file
	off    int64  // the target's window in path
	size   int64
	window bool // off/size select a part of path
	image  *bundle.Image
	layout *partitions.Layout // partition steps: the table to write
	env    EnvStore
	// envLater is set for an env step whose environment lives in a
	// partition the bundle makes: it is opened when the step runs.
	envLater *EnvTarget
	flash    *flashPlan // image steps to raw flash
}

// Resolutions, for PlanStep.Via.
const (
	viaCommandLine = "command line"
	viaProfile     = "board profile"
	viaBundleTable = "bundle partition table"
	viaDiskTable   = "disk partition table"
	viaBootEnv     = "bootenv"
)

// NewPlan checks that br can be installed with cfg and returns the plan.
// Nothing is written. Errors wrap ErrIncompatible, ErrRollback,
// ErrTargetMissing, ErrTargetTooSmall, ErrTargetIO or ErrNotStreamable.
func NewPlan(br *bundle.Reader, cfg Config) (*Plan, error) {
	cfg = cfg.withDefaults()
	m := br.Manifest()
	p := &Plan{cfg: cfg, br: br}

	name, rev := cfg.BoardName, cfg.BoardRevision
	if cfg.Board != nil {
		if name == "" {
			name = cfg.Board.Name
		}
		if rev == "" && cfg.BoardName == "" {
			rev = cfg.Board.Revision
		}
	}
	if name == "" {
		return nil, fmt.Errorf("%w: no board name (no profile and no override)", ErrIncompatible)
	}
	p.board = name
	if rev != "" {
		p.board += ":" + rev
	}
	if !m.CompatibleWith(name, rev) {
		return nil, fmt.Errorf("%w: bundle %s %s is for [%s], this board is %s", ErrIncompatible, m.Product, m.Version, strings.Join(m.Compatible, " "), p.board)
	}

	p.svFile = cfg.SecurityVersionFile
	if p.svFile == "" && cfg.Board != nil {
		p.svFile = cfg.Board.SecurityVersionFile
	}
	if cfg.ReadOnly {
		// Verify compares a device with a bundle: what the device would
		// accept is install policy, not a difference.
		p.svFile = ""
	}
	if p.svFile != "" {
		v, err := ReadSecurityVersion(p.svFile)
		if err != nil {
			return nil, err
		}
		p.deviceSV = v
	}
	if m.SecurityVersion < p.deviceSV {
		return nil, fmt.Errorf("%w: bundle %s %s has security version %d, the device has %d", ErrRollback, m.Product, m.Version, m.SecurityVersion, p.deviceSV)
	}

	if !br.Seekable() {
		last := -1
		for i, s := range m.Steps {
			if s.Type != bundle.StepImage {
				continue
			}
			k := imageIndex(m, s.Image)
			if k <= last {
				return nil, fmt.Errorf("%w (step %d uses image %q)", ErrNotStreamable, i+1, s.Image)
			}
			last = k
		}
	}

	p.info.DeviceSecurityVersion = p.deviceSV
	p.info.BundleSecurityVersion = m.SecurityVersion
	if err := p.resolve(m.Steps); err != nil {
		return nil, err
	}
	return p, nil
}

// resolve finds every step's target and checks it, locks the devices
// and files the plan uses, then announces the plan. A failure closes what
// was opened.
func (p *Plan) resolve(steps []bundle.Step) error {
	r := &resolver{cfg: p.cfg, disk: map[string]diskTable{}}
	var paths []string
	for i := range steps {
		s := &steps[i]
		ps := &planned{n: i + 1, step: s, info: PlanStep{Step: i + 1, Type: string(s.Type), Target: s.Target}}
		if err := r.plan(p, ps); err != nil {
			p.Close()
			return &StepError{Step: i + 1, Type: s.Type, Target: s.Target, Err: err}
		}
		p.steps = append(p.steps, ps)
		p.info.Steps = append(p.info.Steps, ps.info)
		paths = append(paths, ps.path)
	}
	// Another install of the same device at once would leave a mix of
	// both: the second is refused here, before it writes anything. A
	// verify only reads, and may run beside another verify.
	locks, err := handlers.LockAll(paths, !p.cfg.ReadOnly)
	if err != nil {
		p.Close()
		return fmt.Errorf("%w: %w", ErrTargetIO, err)
	}
	p.locks = locks
	p.info.Board = p.board
	p.emit(Event{Type: EventPlan, Plan: &p.info})
	return nil
}

// Close releases what the plan holds: the bootloader environments it
// opened and the locks on its devices. Execute and Verify close the plan
// when they end; a plan that is not run is closed by its caller.
func (p *Plan) Close() error {
	p.closeEnvs()
	err := p.locks.Close()
	p.locks = nil
	return err
}

// Info describes the plan, as the plan event does.
func (p *Plan) Info() PlanInfo { return p.info }

// Board is the board name (and revision) the plan was checked for.
func (p *Plan) Board() string { return p.board }

func (p *Plan) emit(e Event) {
	if p.cfg.Observer != nil {
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		p.cfg.Observer(e)
	}
}

func (p *Plan) closeEnvs() {
	for _, s := range p.steps {
		if c, ok := s.env.(io.Closer); ok {
			c.Close()
		}
		s.env = nil
	}
}

func imageIndex(m *bundle.Manifest, name string) int {
	for i := range m.Images {
		if m.Images[i].Name == name {
			return i
		}
	}
	return -1
}

// diskTable caches the partition table read from a disk.
type diskTable struct {
	layout *partitions.Layout // nil: no usable table
	err    error
}

type resolver struct {
	cfg Config
	// tables holds the layouts the bundle's partition steps write, in
	// step order.
	tables []bundleTable
	disk   map[string]diskTable
	// images are the partitions that image steps planned so far write.
	images []place
}

type bundleTable struct {
	step   int
	path   string
	layout *partitions.Layout
}

// place is a resolved target: path, and a window of it.
type place struct {
	via       string
	path      string
	partition string
	off, size int64 // size -1: the whole of path
	// flash is set for raw flash targets; path is then unused.
	flash *boards.TargetSpec
}

func (r *resolver) plan(p *Plan, ps *planned) error {
	s := ps.step
	switch s.Type {
	case bundle.StepEnv:
		return r.planEnv(ps)
	case bundle.StepPartition:
		return r.planPartition(ps)
	}
	pl, err := r.resolve(s.Target, ps.n)
	if err != nil {
		return err
	}
	if pl.flash != nil {
		ps.info.Via = pl.via
		return r.planFlash(p, ps, pl.flash)
	}
	t, err := r.open(pl, ps)
	if err != nil {
		return err
	}
	defer t.Close()
	switch s.Type {
	case bundle.StepImage:
		im := p.br.Manifest().Image(s.Image)
		ps.image = im
		ps.info.Image, ps.info.ImageSize, ps.info.At, ps.info.Chunks = im.Name, int64(im.Size), int64(s.Offset), int(im.Chunks)
		if need := s.Offset + im.Size; need > uint64(ps.size) || need < s.Offset {
			return fmt.Errorf("%w: image %q needs %d bytes at offset %d, %s holds %d", ErrTargetTooSmall, im.Name, im.Size, s.Offset, s.Target, ps.size)
		}
		r.images = append(r.images, pl)
	case bundle.StepWipe:
		ps.info.Mode = s.Mode
		if s.Mode == "" {
			ps.info.Mode = bundle.WipeQuick
		}
	}
	return nil
}

// open opens pl as the step's target, checking that it exists, fits its
// device and can be written, and records where it is.
func (r *resolver) open(pl place, ps *planned) (handlers.Target, error) {
	d, err := handlers.Open(pl.path, handlers.Options{Write: !r.cfg.ReadOnly, Direct: !r.cfg.Buffered})
	if err != nil {
		return nil, targetError(ps.step.Target, err)
	}
	var t handlers.Target = d
	ps.path, ps.off, ps.size = pl.path, 0, d.Size()
	if pl.size >= 0 {
		size := pl.size
		if size == 0 && pl.partition == "" {
			size = max(0, d.Size()-pl.off) // a range of size 0 runs to the end
		}
		w, err := handlers.NewWindow(d, pl.off, size)
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("%w: %s [%d, +%d) does not fit %s (%d bytes): %w", ErrTargetTooSmall, ps.step.Target, pl.off, size, pl.path, d.Size(), err)
		}
		t, ps.off, ps.size, ps.window = w, pl.off, size, true
	}
	if !r.cfg.ReadOnly && ps.step.Type != bundle.StepPartition {
		// The partitions package decides for tables, which may be
		// rewritten under mounted partitions that keep their place.
		what, err := handlers.InUse(pl.path, ps.off, ps.size)
		if err == nil && what != "" {
			t.Close()
			return nil, fmt.Errorf("%w: %s: %s [%d, +%d) is in use: %s", ErrTargetIO, ps.step.Target, pl.path, ps.off, ps.size, what)
		}
	}
	ps.info.Via, ps.info.Path, ps.info.Partition, ps.info.Offset, ps.info.Size = pl.via, pl.path, pl.partition, ps.off, ps.size
	return t, nil
}

func targetError(name string, err error) error {
	switch {
	case errors.Is(err, handlers.ErrNotFound):
		return fmt.Errorf("%w: %s: %w", ErrTargetMissing, name, err)
	case errors.Is(err, handlers.ErrReadOnly):
		return fmt.Errorf("%w: %s: %w", ErrTargetIO, name, err)
	case errors.Is(err, handlers.ErrUnsupported):
		return fmt.Errorf("%w: %s: %w", ErrTargetMissing, name, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrTargetIO, name, err)
}

// resolve finds the target called name, for step n. The order: the
// command line, the board profile, a partition of that name in a table
// the bundle writes, a partition of that name on one of the profile's
// disks.
func (r *resolver) resolve(name string, n int) (place, error) {
	if path, ok := r.cfg.Targets[name]; ok {
		if mtd.IsCharDevice(path) {
			return place{via: viaCommandLine, flash: &boards.TargetSpec{MTD: path}}, nil
		}
		return place{via: viaCommandLine, path: path, size: -1}, nil
	}
	if b := r.cfg.Board; b != nil {
		bp, err := r.cfg.Resolver.Resolve(b, name)
		switch {
		case err == nil:
			return r.profilePlace(bp)
		case errors.Is(err, boards.ErrNoDevice):
			return place{}, fmt.Errorf("%w: %w", ErrTargetMissing, err)
		case !errors.Is(err, boards.ErrUnknownTarget):
			return place{}, err
		}
	}
	for _, bt := range r.tablesFor(n) {
		if part, ok := bt.layout.Find(name); ok {
			return place{via: viaBundleTable, path: bt.path, partition: name, off: part.Start, size: part.Size}, nil
		}
	}
	if b := r.cfg.Board; b != nil {
		for _, dev := range sortedNames(b.Storage) {
			path, err := r.cfg.Resolver.Device(b, dev)
			if err != nil || r.repartitioned(path) {
				// A disk the bundle repartitions is searched above, in
				// its new table; its old one does not count.
				continue
			}
			if l := r.diskLayout(path); l != nil {
				if part, ok := l.Find(name); ok {
					return place{via: viaDiskTable, path: path, partition: name, off: part.Start, size: part.Size}, nil
				}
			}
		}
	}
	return place{}, fmt.Errorf("%w: %q is not given with --target, not in the board profile, and no partition of the bundle's tables or of the board's disks has that name", ErrTargetMissing, name)
}

// profilePlace turns a profile's place into a window, finding a named
// partition in the table the bundle writes to that disk or else the one
// on it.
func (r *resolver) profilePlace(bp boards.Place) (place, error) {
	if bp.Flash != nil {
		return place{via: viaProfile, flash: bp.Flash}, nil
	}
	pl := place{via: viaProfile, path: bp.Path, size: -1}
	if bp.Partition == "" {
		if bp.Offset != 0 || bp.Size != 0 {
			pl.off, pl.size = bp.Offset, bp.Size
		}
		return pl, nil
	}
	var l *partitions.Layout
	for _, bt := range r.tables {
		if samePath(bt.path, bp.Path) {
			l = bt.layout
		}
	}
	if l == nil {
		l = r.diskLayout(bp.Path)
	}
	if l == nil {
		err := r.disk[bp.Path].err
		return place{}, fmt.Errorf("%w: %s: no partition table on %s: %v", ErrTargetMissing, bp.Name, bp.Path, err)
	}
	part, ok := l.Find(bp.Partition)
	if !ok {
		return place{}, fmt.Errorf("%w: %s: no partition %q on %s", ErrTargetMissing, bp.Name, bp.Partition, bp.Path)
	}
	pl.partition, pl.off, pl.size = bp.Partition, part.Start, part.Size
	return pl, nil
}

// tablesFor lists the bundle's tables to search for step n: those of the
// steps before it, latest first, then those after it.
func (r *resolver) tablesFor(n int) []bundleTable {
	var before, after []bundleTable
	for _, bt := range r.tables {
		if bt.step < n {
			before = append([]bundleTable{bt}, before...)
		} else {
			after = append(after, bt)
		}
	}
	return append(before, after...)
}

func (r *resolver) repartitioned(path string) bool {
	for _, bt := range r.tables {
		if samePath(bt.path, path) {
			return true
		}
	}
	return false
}

// diskLayout reads the partition table on the disk at path, once.
func (r *resolver) diskLayout(path string) *partitions.Layout {
	if dt, ok := r.disk[path]; ok {
		return dt.layout
	}
	var dt diskTable
	dt.layout, dt.err = partitions.ReadDevice(path)
	r.disk[path] = dt
	return dt.layout
}

func (r *resolver) planPartition(ps *planned) error {
	s := ps.step
	pl, err := r.resolve(s.Target, ps.n)
	if err != nil {
		return err
	}
	if pl.flash != nil {
		return fmt.Errorf("%w: %q is raw flash (%s): a partition table goes on a whole disk", ErrTargetMissing, s.Target, pl.flash.Kind())
	}
	if pl.size >= 0 || pl.partition != "" {
		return fmt.Errorf("%w: a partition table goes on a whole disk, and %q is %s [%d, +%d)", ErrTargetMissing, s.Target, pl.path, pl.off, pl.size)
	}
	t, err := r.open(pl, ps)
	if err != nil {
		return err
	}
	t.Close()
	res, err := partitions.Check(pl.path, s.Table)
	if err != nil {
		if errors.Is(err, partitions.ErrTooSmall) {
			return fmt.Errorf("%w: %w", ErrTargetTooSmall, err)
		}
		return err
	}
	ps.layout = res.Layout
	ps.info.Changes = res.Differences
	r.tables = append(r.tables, bundleTable{step: ps.n, path: pl.path, layout: res.Layout})
	// The disk's current table no longer says where partitions are.
	delete(r.disk, pl.path)
	return nil
}

func (r *resolver) planEnv(ps *planned) error {
	s := ps.step
	et := EnvTarget{Name: s.Target, Create: s.Create}
	ps.info.Via = viaBootEnv
	inProfile := false
	if path, ok := r.cfg.Targets[s.Target]; ok {
		et.Path, ps.info.Via, ps.info.Path = path, viaCommandLine, path
	} else if r.cfg.Board != nil {
		_, inProfile = r.cfg.Board.BootEnv[s.Target]
	}
	if et.Path == "" && !inProfile {
		return fmt.Errorf("%w: no bootloader environment %q in the board profile", ErrTargetMissing, s.Target)
	}
	if r.cfg.ReadOnly {
		// Verify compares images only.
		return nil
	}
	if r.cfg.Env == nil {
		return fmt.Errorf("%w: bootloader environment %q: this build cannot change bootloader environments", ErrTargetMissing, s.Target)
	}
	for k := range s.Set {
		ps.info.Set = append(ps.info.Set, k)
	}
	sort.Strings(ps.info.Set)
	ps.info.Unset = append(ps.info.Unset, s.Unset...)
	if inProfile {
		if later, err := r.envInNewPartition(ps, r.cfg.Board.BootEnv[s.Target]); later || err != nil {
			if later {
				ps.envLater = &et
			}
			return err
		}
	}
	st, err := r.cfg.Env(et)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, boards.ErrNoDevice) {
			return fmt.Errorf("%w: bootloader environment %q: %w", ErrTargetMissing, s.Target, err)
		}
		return fmt.Errorf("bootloader environment %q: %w", s.Target, err)
	}
	ps.env = st
	// An environment that is not there when the plan is made is refused
	// here, even if an earlier step of the bundle writes its place (the
	// boot partition image holding uboot.env): such a step says create,
	// and then finds what that image wrote when its turn comes.
	if err := st.Check(s.Set, s.Unset); err != nil {
		return envError(s.Target, err)
	}
	return nil
}

// envInNewPartition reports whether the environment of entry e lives in
// a partition of a disk that an earlier step of the bundle repartitions:
// it does not exist yet, so the plan checks only what the change itself
// can be checked for (names, values, room in an empty environment of
// that kind), and the step opens the environment when it runs. Such a
// step must say create, unless an earlier image step writes that
// partition (with an environment in it).
func (r *resolver) envInNewPartition(ps *planned, e boards.BootEnv) (bool, error) {
	if e.Device == "" || e.Partition == "" {
		return false, nil
	}
	dev, err := r.cfg.Resolver.Device(r.cfg.Board, e.Device)
	if err != nil || !r.repartitioned(dev) {
		return false, nil
	}
	s := ps.step
	if err := checkEmptyEnv(e, s.Set, s.Unset); err != nil {
		return true, envError(s.Target, err)
	}
	if !s.Create && !r.writesPartition(dev, e.Partition) {
		return true, fmt.Errorf("%w: bootloader environment %q lives in partition %q, which this bundle makes and no earlier step writes: the step needs create", ErrTargetMissing, s.Target, e.Partition)
	}
	ps.info.Path, ps.info.Partition = dev, e.Partition
	ps.info.Changes = append(ps.info.Changes, "opened when the step runs: its partition is made by this bundle")
	return true, nil
}

// writesPartition reports whether a step planned so far writes an image
// into partition name of the disk at path.
func (r *resolver) writesPartition(path, name string) bool {
	for _, w := range r.images {
		if samePath(w.path, path) && w.partition == name {
			return true
		}
	}
	return false
}

// checkEmptyEnv makes the change in an empty environment of e's kind and
// size: what no environment of that kind could take is refused.
func checkEmptyEnv(e boards.BootEnv, set map[string]string, unset []string) error {
	var env bootenv.Env
	switch e.Type {
	case boards.EnvGRUB:
		env = bootenv.NewGRUBEnv()
	default:
		size := int(e.Size)
		if size == 0 {
			size = 1 << 20 // unknown: check names and values only
		}
		u, err := bootenv.NewUBootEnv(size, e.Redundant != 0)
		if err != nil {
			return err
		}
		env = u
	}
	for _, n := range unset {
		if err := env.Unset(n); err != nil {
			return err
		}
	}
	for _, n := range slices.Sorted(maps.Keys(set)) {
		if err := env.Set(n, set[n]); err != nil {
			return err
		}
	}
	return nil
}

// envMissing reports an environment with no valid copy: blank storage,
// or both copies damaged.
func envMissing(err error) bool {
	return errors.Is(err, bootenv.ErrBadCRC) || errors.Is(err, bootenv.ErrCorrupt) || errors.Is(err, os.ErrNotExist)
}

// envError gives a refused env step its class: a change the format cannot
// hold is the bundle's fault, one that does not fit the environment a
// target too small, an environment with no valid copy a missing target.
func envError(name string, err error) error {
	switch {
	case errors.Is(err, bootenv.ErrInvalidName), errors.Is(err, bootenv.ErrInvalidValue):
		return fmt.Errorf("%w: bootloader environment %q cannot hold it: %w", bundle.ErrFormat, name, err)
	case errors.Is(err, bootenv.ErrTooFull), errors.Is(err, bootenv.ErrSize):
		return fmt.Errorf("%w: bootloader environment %q: %w", ErrTargetTooSmall, name, err)
	case envMissing(err):
		return fmt.Errorf("%w: bootloader environment %q has no valid copy (blank or damaged storage; an env step with create makes one): %w", ErrTargetMissing, name, err)
	}
	return fmt.Errorf("%w: bootloader environment %q: %w", ErrTargetIO, name, err)
}

func samePath(a, b string) bool {
	if filepath.Clean(a) == filepath.Clean(b) {
		return true
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

func sortedNames[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
