package mdns_test

import (
	"fmt"

	"github.com/lifeboat-updater/lifeboat/mdns"
)

func ExampleHostName() {
	fmt.Println(mdns.HostName("qemu-x86_64", "525400123456")) // a MAC address
	fmt.Println(mdns.HostName("Board 2", "SN 0042/B"))
	fmt.Println(mdns.HostName("rpi4", "10000000abcdef01"))
	// Output:
	// qemu-x86-64-525400123456.local
	// board-2-sn-0042-b.local
	// rpi4-10000000abcdef01.local
}
