package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
)

// AssembleDisk writes the disk the factory bundle would produce, without
// the installer: a sparse file of size bytes at path with Layout's GPT
// (made by sgdisk, a reference independent of Lifeboat's own partition
// code), every partition image at its offset, and GRUB's boot code in the
// first MBRCodeSize bytes. A test boots the result to check the images, or
// compares it with what an install wrote.
func AssembleDisk(ctx context.Context, a *Artifacts, path string, size int64) error {
	if size < MinDiskSize {
		return fmt.Errorf("%w: disk of %d bytes, the layout needs %d", ErrOptions, size, MinDiskSize)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	args := []string{"--clear"}
	for i, p := range Layout {
		n := strconv.Itoa(i + 1)
		first := p.Start / SectorSize
		last := "0" // the end of the disk
		if p.Size != 0 {
			last = strconv.FormatUint(first+p.Size/SectorSize-1, 10)
		}
		args = append(args,
			"--new="+n+":"+strconv.FormatUint(first, 10)+":"+last,
			"--typecode="+n+":"+gptTypes[p.Type],
			"--change-name="+n+":"+p.Name)
	}
	args = append(args, path)
	if err := run(ctx, "sgdisk", args...); err != nil {
		return err
	}
	for _, p := range Layout {
		img, ok := a.Images[p.Name]
		if !ok {
			continue
		}
		if err := writeImage(f, img, int64(p.Start), int64(p.Size)); err != nil {
			return fmt.Errorf("partition %s: %w", p.Name, err)
		}
	}
	if err := writeImage(f, a.MBR, 0, MBRCodeSize); err != nil {
		return fmt.Errorf("boot code: %w", err)
	}
	return f.Sync()
}

// writeImage copies the image file at src into w at off, skipping zero
// blocks so the disk file stays sparse: w must read as zeros there. It
// refuses an image larger than max bytes.
func writeImage(w io.WriterAt, src string, off, max int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > max {
		return fmt.Errorf("%w: %s is %d bytes, the room is %d", ErrOptions, src, fi.Size(), max)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	for pos := int64(0); ; {
		n, err := io.ReadFull(f, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := w.WriteAt(buf[:n], off+pos); werr != nil {
				return werr
			}
		}
		pos += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
