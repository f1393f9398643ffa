// Package partitions describes, compares, writes and re-reads GPT and MBR
// partition tables.
//
// A bundle's partition step carries a bundle.Table. Resolve places it on a
// disk of known size and sector size as a Layout with exact byte offsets;
// Read returns the Layout a disk holds; Diff says, for a person, how they
// differ; Write writes a Layout (with github.com/diskfs/go-diskfs). Apply
// does all of it on a file or block device and writes only when the disk
// differs, so repeated installs leave the table, and the flash, alone.
// Check is the same without writing: a dry run; Plan is Check on an
// io.ReaderAt. Apply takes a block device's size and logical sector size
// from the kernel (BLKGETSIZE64, BLKSSZGET) and treats an image file as
// 512-byte sectors; for an image of a 4096-byte-sector disk use Plan and
// Write with the sector size given. Layout.Find maps a
// partition name to its byte range, so that images are written at an
// offset of the whole disk and no partition device nodes are needed.
//
// This package writes partition tables only, never partition contents:
// go-diskfs writes those 512 bytes at a time, and the install engine
// streams images itself.
//
// # Placement
//
//   - A partition without Start begins where the previous one ends,
//     rounded up to 1 MiB (Alignment); the first one at 1 MiB.
//   - An explicit Start is kept as given, since some boot ROMs dictate odd
//     offsets; it must be a whole number of logical sectors and must not
//     reach into the table itself.
//   - Sizes must be whole numbers of logical sectors. A Size of 0, allowed
//     on the last partition only, takes the rest of the disk, ending at the
//     last 1 MiB boundary before the backup GPT on a GPT, before the end of
//     the disk (or the 2^32-sector limit) on an MBR. Its size therefore
//     depends on the disk.
//   - GPT: 128 entries of 128 bytes, both headers, and a protective MBR
//     (size field 0xFFFFFFFF beyond 2^32 sectors). The Bootable flag sets
//     attribute bit 2, legacy BIOS bootable.
//   - MBR: at most 4 primary partitions; no extended or logical ones.
//     Starts and sizes must fit 32-bit sector fields (2 TiB with 512-byte
//     sectors). The disk identifier (Table.GUID, 8 hex digits) is what
//     Linux builds PARTUUIDs from; an MBR stores no partition names and no
//     partition GUIDs, so names live only in the bundle. The boot code in
//     the first 440 bytes is left untouched.
//   - Logical sector sizes of 512, 1024, 2048 and 4096 bytes.
//
// # Comparing
//
// GUIDs a bundle leaves empty match anything on the disk: otherwise every
// install would rewrite the table. When a table is rewritten, the disk GUID
// and the GUIDs of partitions that keep their number and start are kept;
// other empty GUIDs become random (math/rand/v2, which never blocks on a
// board without entropy at boot). Names are compared on GPT only.
// Read reports as Problems what a rewrite repairs: a damaged primary or
// backup GPT, a backup GPT that is not at the end of the disk (an image
// made for a smaller disk), a missing or hybrid protective MBR. Diff lists
// them, so Apply repairs them. A hybrid MBR is thus replaced by a plain
// protective one.
//
// # Reading
//
// Read follows the kernel: a GPT when LBA 1 holds a GPT header or the MBR
// has a 0xEE entry (falling back to the backup GPT), else an MBR. It
// returns ErrNoTable when there is neither, which is how the rescue
// recognises blank storage; note that a disk holding a bare filesystem and
// no table is "no table" too. ErrBadTable means a table signature with an
// unusable table; Apply overwrites both. GPT headers with entry sizes
// other than 128 bytes or more than 4096 entries are refused as
// ErrBadTable before anything large is allocated.
//
// # The kernel's view
//
// After writing to a block device Apply asks the kernel to re-read the
// table (BLKRRPART). While a partition of the disk is open or mounted the
// kernel refuses; Apply then deletes and adds, with BLKPG, only the
// partitions whose place changed, and returns ErrReread (with a valid
// Result) if one of those is in use. BLKPG also covers kernels built
// without the GPT or MBR parser, which find no partitions on BLKRRPART.
// The kernel's partitions are read from sysfs, so /sys must be mounted for
// the fallback. When the disk already matches, Apply still brings stale
// kernel partitions up to date. A loop device without partscan gets the
// table and ErrReread; a partition given instead of a whole disk is
// refused with ErrDevice before anything is written.
//
// Apply opens the device without O_EXCL and takes no lock: nothing else
// may write the table at the same time. Partition contents are not
// touched, but a rewritten table can make existing filesystems
// unreachable: that is the bundle's decision.
package partitions
