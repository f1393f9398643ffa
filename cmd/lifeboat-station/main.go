// Command lifeboat-station is the factory line's station: it network-boots
// blank boards, gives each its identity, serves the bundle and records
// every unit (docs/station.md).
package main

import (
	"context"
	"os"

	"github.com/lifeboat-updater/lifeboat/station"
)

func main() {
	os.Exit(station.Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
