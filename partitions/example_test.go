package partitions_test

import (
	"fmt"

	"github.com/lifeboat-updater/lifeboat/bundle"
	"github.com/lifeboat-updater/lifeboat/partitions"
)

func ExampleResolve() {
	table := &bundle.Table{Type: "gpt", Partitions: []bundle.Partition{
		{Name: "boot", Type: "esp", Size: 64 << 20, Bootable: true},
		{Name: "rootA", Type: "linux", Size: 512 << 20},
		{Name: "rootB", Type: "linux", Size: 512 << 20},
		{Name: "data", Type: "linux-home"},
	}}
	l, err := partitions.Resolve(table, 4<<30, 512)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(l)
	root, _ := l.Find("rootB")
	fmt.Printf("rootB: write its image at byte %d of the disk, at most %d bytes\n", root.Start, root.Size)
	// Output:
	// gpt table, disk 4 GiB (8388608 sectors of 512 bytes), disk GUID (any)
	// #  name   start     end       size      type        guid  flags
	// 1  boot   1 MiB     65 MiB    64 MiB    esp         -     bootable
	// 2  rootA  65 MiB    577 MiB   512 MiB   linux       -     -
	// 3  rootB  577 MiB   1089 MiB  512 MiB   linux       -     -
	// 4  data   1089 MiB  4095 MiB  3006 MiB  linux-home  -     -
	// rootB: write its image at byte 605028352 of the disk, at most 536870912 bytes
}

func ExampleResolve_tooSmall() {
	table := &bundle.Table{Type: "mbr", Partitions: []bundle.Partition{
		{Name: "boot", Type: "fat32", Size: 64 << 20},
		{Name: "root", Type: "linux", Size: 1 << 30},
	}}
	_, err := partitions.Resolve(table, 1<<30, 512)
	fmt.Println(err)
	// Output:
	// partitions: disk too small: the partitions need a disk of 1141899264 bytes (1089 MiB), the disk has 1073741824 bytes (1 GiB)
}
