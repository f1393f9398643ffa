package demo

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"text/template"

	"github.com/lifeboat-updater/lifeboat/bootenv"
)

// DefaultGRUBDir is where Debian's grub-pc-bin puts the i386-pc images and
// modules.
const DefaultGRUBDir = "/usr/lib/grub/i386-pc"

// Offsets into GRUB's i386-pc images (grub-core/boot/i386/pc/boot.S and
// diskboot.S, include/grub/i386/pc/boot.h), as grub-bios-setup patches them.
const (
	// MBRCodeSize is the boot code part of the MBR; the disk signature
	// and the partition table follow it and must stay as they are.
	MBRCodeSize = 440

	bootKernelSector = 0x5c // boot.img: uint64 LBA of core.img's first sector
	bootDrive        = 0x64 // boot.img: 0xff = use the drive the BIOS booted
	bootDriveCheck   = 0x66 // boot.img: jmp over the buggy-BIOS drive check

	// diskboot.img, core.img's first sector, loads the rest of core.img
	// from a list of blocks that grows down from the sector's end; one
	// entry is enough for a contiguous core.img.
	blocklistStart   = 0x1f4 // uint64 first LBA
	blocklistLen     = 0x1fc // uint16 sectors
	blocklistSegment = 0x1fe // uint16 real-mode segment to load at
	// kernelSegment is where the sectors after the first go: 0x8000
	// (GRUB_BOOT_I386_PC_KERNEL_SEG) plus the one sector boot.img loaded.
	kernelSegment = 0x820
)

// grubModules go into core.img. Everything grub.cfg uses is built in, so
// the boot partition needs no i386-pc/ module folder.
var grubModules = []string{
	"biosdisk", "part_gpt", "ext2", // find and read the rescue and boot partitions
	"normal", "configfile", "echo", "test", "loadenv", "blocklist", "cat", "sleep",
	"serial", "terminal", // serial console
	"linux", "halt", "reboot",
}

// BootImage returns the first MBRCodeSize bytes of GRUB's boot.img with
// its kernel sector set to coreLBA, as grub-bios-setup would write them.
// The rest of the sector (disk signature, partition table, 0x55AA) is the
// partition table's and is not part of the result.
func BootImage(bootImg []byte, coreLBA uint64) ([]byte, error) {
	if len(bootImg) != SectorSize || bootImg[510] != 0x55 || bootImg[511] != 0xaa {
		return nil, fmt.Errorf("%w: boot.img is %d bytes or lacks 0x55AA", ErrGRUBImage, len(bootImg))
	}
	b := bytes.Clone(bootImg[:MBRCodeSize])
	binary.LittleEndian.PutUint64(b[bootKernelSector:], coreLBA)
	b[bootDrive] = 0xff
	// On a hard disk, trust the drive number the BIOS passes in DL, as
	// grub-bios-setup does for anything but a floppy: two NOPs replace
	// the jump over the check.
	b[bootDriveCheck], b[bootDriveCheck+1] = 0x90, 0x90
	return b, nil
}

// CoreImage pads core.img to whole sectors and points its first sector's
// blocklist at the rest of it, for a core.img written contiguously from
// coreLBA on. maxSize is the room there (the bios-boot partition's size).
//
// grub-bios-setup can also add Reed-Solomon recovery codes after core.img;
// this leaves them out, which GRUB's startup code accepts (redundancy 0).
func CoreImage(core []byte, coreLBA uint64, maxSize int) ([]byte, error) {
	if len(core) < 2*SectorSize {
		return nil, fmt.Errorf("%w: core.img of %d bytes is too short", ErrGRUBImage, len(core))
	}
	if seg := binary.LittleEndian.Uint16(core[blocklistSegment:]); seg != kernelSegment {
		return nil, fmt.Errorf("%w: core.img's first sector is not diskboot.img (segment %#x at %#x)", ErrGRUBImage, seg, blocklistSegment)
	}
	sectors := (len(core) + SectorSize - 1) / SectorSize
	if sectors*SectorSize > maxSize {
		return nil, fmt.Errorf("%w: core.img needs %d bytes, the partition has %d", ErrGRUBImage, sectors*SectorSize, maxSize)
	}
	if sectors-1 > 0xffff {
		return nil, fmt.Errorf("%w: core.img of %d sectors does not fit one blocklist entry", ErrGRUBImage, sectors)
	}
	b := make([]byte, sectors*SectorSize)
	copy(b, core)
	binary.LittleEndian.PutUint64(b[blocklistStart:], coreLBA+1)
	binary.LittleEndian.PutUint16(b[blocklistLen:], uint16(sectors-1))
	binary.LittleEndian.PutUint16(b[blocklistSegment:], kernelSegment)
	return b, nil
}

// grubPrefix is where GRUB finds grub.cfg: the rescue partition, by
// number, on the disk the BIOS booted (hd0).
func grubPrefix() string {
	return fmt.Sprintf("(hd0,gpt%d)/grub", mustPart(PartRescue).Number())
}

// buildGRUB makes mbr.img and the patched core.img in dir.
func buildGRUB(ctx context.Context, grubDir, dir string) (mbrPath, corePath string, err error) {
	bios := mustPart(PartBIOSBoot)
	coreLBA := bios.Start / SectorSize
	boot, err := os.ReadFile(filepath.Join(grubDir, "boot.img"))
	if err != nil {
		return "", "", fmt.Errorf("%w (install grub-pc-bin)", err)
	}
	mbr, err := BootImage(boot, coreLBA)
	if err != nil {
		return "", "", err
	}
	raw := filepath.Join(dir, "core.raw")
	defer os.Remove(raw)
	args := append([]string{"-O", "i386-pc", "-d", grubDir, "-p", grubPrefix(), "-o", raw}, grubModules...)
	if err := run(ctx, "grub-mkimage", args...); err != nil {
		return "", "", err
	}
	rawCore, err := os.ReadFile(raw)
	if err != nil {
		return "", "", err
	}
	core, err := CoreImage(rawCore, coreLBA, int(bios.Size))
	if err != nil {
		return "", "", err
	}
	mbrPath, corePath = filepath.Join(dir, "mbr.img"), filepath.Join(dir, "core.img")
	if err := os.WriteFile(mbrPath, mbr, 0o644); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(corePath, core, 0o644); err != nil {
		return "", "", err
	}
	return mbrPath, corePath, nil
}

// GRUBEnvSize is the size of a GRUB environment block.
const GRUBEnvSize = bootenv.GRUBEnvSize

// GRUBEnvFile is the GRUB environment's file in the grubenv partition's
// ext2 file system.
const GRUBEnvFile = "/grubenv"

// GRUBEnvOffset is where GRUBEnvFile's GRUBEnvSize bytes lie, from the start
// of the grubenv partition. Linux reads and rewrites them there in place,
// as GRUB's save_env does, without mounting anything; Build checks that
// mke2fs put them here.
//
// Why a file system at all: GRUB 2.06 reads an environment block from a
// raw blocklist ("load_env --file (hd0,gpt3)0+2") but refuses to write one
// there ("save_env: sparse file not allowed"), and boot counting needs
// GRUB to write. In a file on ext2 it can.
const GRUBEnvOffset = 54 * 1024

// buildGRUBEnv makes the grubenv partition's image at out: a 1 KiB-block
// ext2 holding only GRUBEnvFile, so the block is one contiguous fs block.
func buildGRUBEnv(ctx context.Context, vars map[string]string, stageDir, out string) error {
	env, err := GRUBEnvBlock(vars)
	if err != nil {
		return err
	}
	if err := stage(stageDir, []file{{path: GRUBEnvFile[1:], data: env, mode: 0o644}}, nil); err != nil {
		return err
	}
	if err := mkfs(ctx, "ext2", PartGRUBEnv, stageDir, out, mustPart(PartGRUBEnv).Size, GRUBEnvSize); err != nil {
		return err
	}
	off, err := fileOffset(ctx, out, GRUBEnvFile, GRUBEnvSize)
	if err != nil {
		return err
	}
	if off != GRUBEnvOffset {
		return fmt.Errorf("%w: mke2fs put %s at offset %d, the board expects %d", ErrGRUBEnv, GRUBEnvFile, off, GRUBEnvOffset)
	}
	return nil
}

// GRUBEnvBlock returns a GRUB environment block holding vars, byte for byte
// as grub-editenv writes it (package bootenv's GRUB codec): the header,
// name=value lines in name order, '#' padding.
func GRUBEnvBlock(vars map[string]string) ([]byte, error) {
	env := bootenv.NewGRUBEnv()
	for _, k := range sortedKeys(vars) {
		if err := env.Set(k, vars[k]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrGRUBEnv, err)
		}
	}
	b, err := env.Encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGRUBEnv, err)
	}
	return b, nil
}

// grubCfg is the device's grub.cfg, on the rescue partition. Paths are
// absolute GRUB device paths so that it does not depend on $root.
var grubCfg = template.Must(template.New("grub.cfg").Funcs(template.FuncMap{
	"inc": func(n int) int { return n + 1 },
}).Parse(`# {{.Product}}: GRUB configuration of the demo device.
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial

# The boot environment: boot counting and "boot good" marks go here, and
# save_env --file $envfile writes it back.
set envfile={{.EnvFile}}
load_env --file $envfile

set default=production
# A one-shot choice, as grub-reboot makes it: boot that entry this once.
if [ -n "${next_entry}" ]; then
	set default="${next_entry}"
	set next_entry=
	save_env --file $envfile next_entry
fi

# The contract with the rescue (the board profile's recovery section,
# preset "grub"): an install that has not finished ({{.Marker}}=1)
# boots the rescue, which finishes it; so does a production system that
# failed to come up more than {{.Limit}} times in a row. Each boot of
# production counts in {{.Counter}}; production resets it to 0 once it
# works, the rescue after it reinstalled. GRUB has no arithmetic: the
# count goes up by cases.
if [ "${ {{- .Marker -}} }" = "1" ]; then
	set default=rescue
	echo "An install did not finish: booting the rescue."
elif [ "${default}" = "production" -a -n "${ {{- .Limit -}} }" ]; then
	if [ "${ {{- .Counter -}} }" -gt "${ {{- .Limit -}} }" ]; then
		set default=rescue
		echo "Production failed ${ {{- .Counter -}} } boots in a row (limit ${ {{- .Limit -}} }): booting the rescue."
	fi
fi
if [ "${default}" = "production" -a -n "${ {{- .Limit -}} }" ]; then
	if [ -z "${ {{- .Counter -}} }" ]; then set {{.Counter}}=0; fi
{{- range .Counts}}
	{{if eq . 0}}if{{else}}elif{{end}} [ "${ {{- $.Counter -}} }" = "{{.}}" ]; then set {{$.Counter}}={{inc .}}
{{- end}}
	fi
	save_env --file $envfile {{.Counter}}
fi
# {{.Args}}: more kernel parameters for the rescue's next boot only
# (lifeboat.url=..., lifeboat.reason=...), as next_entry is for one boot.
set rescue_args=
if [ "${default}" = "rescue" -a -n "${ {{- .Args -}} }" ]; then
	set rescue_args="${ {{- .Args -}} }"
	# unset, so that save_env removes it from the block.
	unset {{.Args}}
	save_env --file $envfile {{.Args}}
fi
export rescue_args
set timeout_style=menu
set timeout={{.Timeout}}

menuentry "production ({{.Product}} {{.Version}})" --id production {
	echo "Loading {{.Product}} {{.Version}} ..."
	linux {{.Boot}}/vmlinuz {{.Cmdline}}
	initrd {{.Boot}}/initrd.img
}

menuentry "rescue" --id rescue {
	echo "Loading the rescue system ..."
	linux {{.Rescue}}/rescue/vmlinuz {{.RescueCmdline}} ${rescue_args}
	initrd {{.Rescue}}/rescue/initrd.img
}
`))

type grubCfgData struct {
	Product, Version       string
	Timeout                int
	EnvFile                string
	Boot, Rescue           string // GRUB devices, (hd0,gptN)
	Cmdline, RescueCmdline string
	// The boot counting variables.
	Marker, Counter, Limit, Args string
	Counts                       []int // the counter values GRUB counts up from
}

// The GRUB environment variables of the demo device's boot counting, as
// the board profile's recovery preset "grub" names them
// (boards.Presets), and the device's own.
const (
	GRUBMarker  = "lifeboat_transaction" // set while the rescue installs
	GRUBCounter = "boot_count"           // boots of production not yet good
	GRUBLimit   = "boot_limit"           // more boots than this: the rescue
	// GRUBRescueArgs are more kernel parameters for the rescue's next
	// boot; GRUB clears them once used.
	GRUBRescueArgs = "lifeboat_args"
	// GRUBSecurityVersion keeps the device's security version across
	// rescue boots (the qemu-x86_64 profile's recovery.security_version).
	GRUBSecurityVersion = "lifeboat_security_version"
	// DefaultBootLimit is the boot limit of the initial environment.
	DefaultBootLimit = 3
	// maxCount is how far GRUB counts; a counter beyond it stays there,
	// which is over any limit below it.
	maxCount = 9
)

// DefaultGRUBEnv is the initial GRUB environment of a device built with
// no Options.GRUBEnv: the boot counter at 0 and its limit, and the
// security version. The rescue and production write only these
// variables, and only to values they had, so a device that booted well is
// still identical to its bundle.
func DefaultGRUBEnv(securityVersion uint64) map[string]string {
	return map[string]string{
		GRUBCounter:         "0",
		GRUBLimit:           fmt.Sprint(DefaultBootLimit),
		GRUBSecurityVersion: fmt.Sprint(securityVersion),
	}
}

func renderGRUBCfg(o *Options) ([]byte, error) {
	dev := func(name string) string { return fmt.Sprintf("(hd0,gpt%d)", mustPart(name).Number()) }
	d := grubCfgData{
		Product:       Product,
		Version:       o.Version,
		Timeout:       o.GRUBTimeout,
		EnvFile:       dev(PartGRUBEnv) + GRUBEnvFile,
		Boot:          dev(PartBoot),
		Rescue:        dev(PartRescue),
		Cmdline:       o.Cmdline,
		RescueCmdline: o.RescueCmdline,
		Marker:        GRUBMarker,
		Counter:       GRUBCounter,
		Limit:         GRUBLimit,
		Args:          GRUBRescueArgs,
	}
	for i := 0; i <= maxCount; i++ {
		d.Counts = append(d.Counts, i)
	}
	var b bytes.Buffer
	if err := grubCfg.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// grubEnvVars are the initial GRUB environment's variables: o.GRUBEnv,
// else DefaultGRUBEnv.
func grubEnvVars(o *Options) map[string]string {
	if o.GRUBEnv != nil {
		return o.GRUBEnv
	}
	return DefaultGRUBEnv(o.SecurityVersion)
}
