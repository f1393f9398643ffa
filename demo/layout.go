package demo

import "fmt"

const (
	kib = 1 << 10
	mib = 1 << 20

	// SectorSize is the logical sector size the layout and the GRUB
	// blocklists are computed for.
	SectorSize = 512
)

// Partition is one partition of the demo device's disk. Start and Size
// are in bytes; a Size of 0 means "to the end of the disk".
type Partition struct {
	Name  string // GPT partition name, and the bundle target that writes it
	Type  string // type alias, as a bundle spec writes it
	Start uint64
	Size  uint64
}

// Number is the partition's 1-based number in Layout, as GRUB ("gptN")
// and Linux ("vdaN") count it.
func (p Partition) Number() int {
	for i, q := range Layout {
		if q.Name == p.Name {
			return i + 1
		}
	}
	return 0
}

// The partition names of the demo device.
const (
	PartBIOSBoot = "bios-boot" // GRUB's core.img, where grub-install would embed it
	PartRescue   = "rescue"    // grub.cfg and the rescue kernel and initramfs
	PartGRUBEnv  = "grubenv"   // the GRUB environment: GRUBEnvSize bytes at GRUBEnvOffset
	PartBoot     = "boot"      // the production kernel and initramfs
	PartRootfs   = "rootfs"    // the production root filesystem, mounted read-only
	PartData     = "data"      // the rest of the disk, for the device's own data
)

// Layout is the demo device's GPT layout, in partition-number order.
//
// GRUB and the rescue live apart from the production system: an update
// bundle rewrites boot and rootfs only, so a power cut during an update
// never takes away the bootloader or the rescue that finishes the job.
// The factory bundle (Spec) writes everything. GRUB's core.img and prefix
// name partitions by number, so the order here is part of the bootloader
// build: change it and the device no longer boots.
var Layout = []Partition{
	{Name: PartBIOSBoot, Type: "bios-boot", Start: 1 * mib, Size: 1 * mib},
	{Name: PartRescue, Type: "linux", Start: 2 * mib, Size: 64 * mib},
	{Name: PartGRUBEnv, Type: "linux", Start: 66 * mib, Size: 1 * mib},
	{Name: PartBoot, Type: "linux", Start: 67 * mib, Size: 64 * mib},
	{Name: PartRootfs, Type: "linux", Start: 131 * mib, Size: 128 * mib},
	{Name: PartData, Type: "linux", Start: 259 * mib},
}

// gptTypes maps the aliases Layout uses to GPT type GUIDs.
var gptTypes = map[string]string{
	"bios-boot": "21686148-6449-6E6F-744E-656564454649",
	"linux":     "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
}

// MinDiskSize is the smallest disk the layout fits: every fixed partition,
// 16 MiB of data and the backup GPT.
const MinDiskSize = 259*mib + 16*mib + 1*mib

// DefaultDiskSize is the virtual disk size the demo and tests use.
const DefaultDiskSize = 512 * mib

// Part returns the layout's partition named name.
func Part(name string) (Partition, error) {
	for _, p := range Layout {
		if p.Name == name {
			return p, nil
		}
	}
	return Partition{}, fmt.Errorf("%w: %q", ErrNoPartition, name)
}

func mustPart(name string) Partition {
	p, err := Part(name)
	if err != nil {
		panic(err) // Layout is a constant table; a test covers every name.
	}
	return p
}
