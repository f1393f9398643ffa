package guest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
)

// GoodBlocksSHA256 returns the hex SHA-256 of the first size bytes held
// by d's good erase blocks in [0, limit) (limit 0: the whole device):
// how an image written past bad blocks reads back.
func GoodBlocksSHA256(d *mtd.Dev, size, limit int64) (string, error) {
	if limit <= 0 {
		limit = d.Info().Size
	}
	es := d.Info().EraseSize
	h := sha256.New()
	buf := make([]byte, es)
	left := size
	for off := int64(0); left > 0 && off < limit; off += es {
		bad, err := d.IsBad(off)
		if err != nil {
			return "", err
		}
		if bad {
			continue
		}
		if _, err := d.ReadAt(buf, off); err != nil {
			return "", err
		}
		k := min(left, es)
		h.Write(buf[:k])
		left -= k
	}
	if left > 0 {
		return "", fmt.Errorf("region ended with %d bytes left", left)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// UBIVolume finds the volume name of the UBI device attached to MTD
// device mtdNum and returns whether UBI marks it corrupted (nil: no such
// volume) and the hex SHA-256 of its first size bytes. A volume whose
// update was interrupted cannot be read: then err says so and corrupted
// is still set.
func UBIVolume(mtdNum int, name string, size int64) (corrupted *bool, sum string, err error) {
	sysfs := ubi.Sysfs(ubi.SysClassUBI)
	n, ok := sysfs.Attached(mtdNum)
	if !ok {
		return nil, "", fmt.Errorf("mtd%d is not attached to UBI", mtdNum)
	}
	vols, err := sysfs.Volumes(n)
	if err != nil {
		return nil, "", err
	}
	for _, v := range vols {
		if v.Name != name {
			continue
		}
		f, err := os.Open(fmt.Sprintf("/dev/ubi%d_%d", n, v.ID))
		if err != nil {
			return &v.Corrupted, "", err
		}
		defer f.Close()
		sum, err := SHA256(io.LimitReader(f, size))
		return &v.Corrupted, sum, err
	}
	return nil, "", fmt.Errorf("no volume %s on ubi%d", name, n)
}
