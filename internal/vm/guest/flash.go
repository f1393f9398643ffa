package guest

import (
	"fmt"
	"io"
	"os"

	"github.com/lifeboat-updater/lifeboat/handlers/mtd"
	"github.com/lifeboat-updater/lifeboat/handlers/ubi"
)

// GoodBlocksSHA256 returns the hex SHA-256 of the first size bytes held
// by d's good erase blocks in [0, limit) (limit 0: the whole device):
// how an image written past bad blocks reads back (mtd.Reader).
func GoodBlocksSHA256(d mtd.Device, size, limit int64) (string, error) {
	r, err := mtd.NewReader(d, 0, max(limit, 0))
	if err != nil {
		return "", err
	}
	if left := size - r.Size(); left > 0 {
		return "", fmt.Errorf("region ended with %d bytes left", left)
	}
	return SHA256(io.NewSectionReader(r, 0, size))
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
